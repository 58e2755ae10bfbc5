//! Outlines of source files: the symbols a file defines (functions, classes, structs, impls,
//! traits, methods…) with their 1-based line ranges, so a prompt can show a large file as a map
//! and a model can name the part it needs by symbol or by lines.
//!
//! Files in Rust, Python, JavaScript, TypeScript (and TSX), Go and Java are parsed with their
//! tree-sitter grammars, which tolerate syntax errors (a broken file still has an outline). Any
//! other file, and a parsed file that defines no symbol, is outlined as windows of
//! [`WINDOW_LINES`] lines, so every file has regions to name.

mod grammar;

use std::fmt;

/// How many lines one window of the line-window fallback spans.
pub const WINDOW_LINES: usize = 60;

/// The languages with a grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Language {
    /// `.rs`
    Rust,
    /// `.py`, `.pyi`
    Python,
    /// `.js`, `.mjs`, `.cjs`, `.jsx`
    JavaScript,
    /// `.ts`, `.mts`, `.cts`
    TypeScript,
    /// `.tsx`
    Tsx,
    /// `.go`
    Go,
    /// `.java`
    Java,
}

impl Language {
    /// The language of a file, from its extension; `None` for files without a grammar.
    pub fn of_path(path: &str) -> Option<Self> {
        let name = path.rsplit('/').next().unwrap_or(path);
        let (_, ext) = name.rsplit_once('.')?;
        Some(match ext.to_ascii_lowercase().as_str() {
            "rs" => Language::Rust,
            "py" | "pyi" => Language::Python,
            "js" | "mjs" | "cjs" | "jsx" => Language::JavaScript,
            "ts" | "mts" | "cts" => Language::TypeScript,
            "tsx" => Language::Tsx,
            "go" => Language::Go,
            "java" => Language::Java,
            _ => return None,
        })
    }
}

/// What a symbol is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SymbolKind {
    /// A free function.
    Function,
    /// A function inside a class, impl, trait or interface (or with a receiver, in Go).
    Method,
    /// A class (Python, JavaScript/TypeScript, Java; records too).
    Class,
    /// A struct (Rust, Go).
    Struct,
    /// An enum.
    Enum,
    /// A trait (Rust).
    Trait,
    /// An `impl` block (Rust).
    Impl,
    /// An interface (TypeScript, Go, Java).
    Interface,
    /// A module with a body (Rust `mod x { … }`).
    Module,
    /// Another named type (a type alias, a Go type).
    Type,
    /// A window of lines, for files without symbols.
    Lines,
}

impl SymbolKind {
    /// The lowercase word for prompts.
    pub fn as_str(self) -> &'static str {
        match self {
            SymbolKind::Function => "function",
            SymbolKind::Method => "method",
            SymbolKind::Class => "class",
            SymbolKind::Struct => "struct",
            SymbolKind::Enum => "enum",
            SymbolKind::Trait => "trait",
            SymbolKind::Impl => "impl",
            SymbolKind::Interface => "interface",
            SymbolKind::Module => "module",
            SymbolKind::Type => "type",
            SymbolKind::Lines => "lines",
        }
    }
}

/// One symbol of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    /// What it is.
    pub kind: SymbolKind,
    /// Its name as written (`total`; `Display for Cart` for a Rust trait impl; `lines 61-120`
    /// for a window).
    pub name: String,
    /// The qualified name of the symbol it is nested in (`Cart`, `outer.Inner`), if any.
    pub parent: Option<String>,
    /// Its first line, from 1 (decorators and attributes the grammar attaches included).
    pub start_line: usize,
    /// Its last line, from 1, inclusive.
    pub end_line: usize,
}

impl Symbol {
    /// `parent.name`, or the name alone at the top level.
    pub fn qualified_name(&self) -> String {
        match &self.parent {
            Some(parent) => format!("{parent}.{}", self.name),
            None => self.name.clone(),
        }
    }

    /// How many levels deep it is nested (0 at the top level).
    pub fn depth(&self) -> usize {
        self.parent.as_deref().map_or(0, |p| p.matches('.').count() + 1)
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == SymbolKind::Lines {
            return write!(f, "lines {}-{}", self.start_line, self.end_line);
        }
        write!(f, "{} {} (lines {}-{})", self.kind.as_str(), self.qualified_name(), self.start_line, self.end_line)
    }
}

/// A file's outline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outline {
    /// The grammar that parsed the file; `None` when it was cut into windows.
    pub language: Option<Language>,
    /// The symbols in the order they start (a nested symbol after its parent), or the windows.
    pub symbols: Vec<Symbol>,
    /// How many lines the file has.
    pub lines: usize,
}

impl Outline {
    /// The outline as prompt text: one symbol a line, indented by nesting.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for symbol in &self.symbols {
            out.push_str(&"  ".repeat(symbol.depth()));
            out.push_str(&symbol.to_string());
            out.push('\n');
        }
        out
    }

    /// The symbols whose qualified name is `name`, or that end in `.name`, or whose name is `name`.
    pub fn find(&self, name: &str) -> Vec<&Symbol> {
        let name = name.trim().trim_end_matches("()");
        let exact: Vec<&Symbol> = self.symbols.iter().filter(|s| s.qualified_name() == name).collect();
        if !exact.is_empty() {
            return exact;
        }
        let suffix = format!(".{name}");
        let tail: Vec<&Symbol> = self
            .symbols
            .iter()
            .filter(|s| s.kind != SymbolKind::Lines && (s.qualified_name().ends_with(&suffix) || s.name == name))
            .collect();
        tail
    }
}

/// The outline of the file at `path` whose text is `text`.
pub fn outline(path: &str, text: &str) -> Outline {
    let lines = line_count(text);
    if let Some(language) = Language::of_path(path)
        && let Some(symbols) = grammar::symbols(language, text)
        && !symbols.is_empty()
    {
        return Outline { language: Some(language), symbols, lines };
    }
    Outline { language: None, symbols: line_windows(text, WINDOW_LINES), lines }
}

/// The file cut into windows of `size` lines (the last one shorter), as [`SymbolKind::Lines`].
pub fn line_windows(text: &str, size: usize) -> Vec<Symbol> {
    let lines = line_count(text);
    let size = size.max(1);
    (0..lines.div_ceil(size))
        .map(|i| {
            let (start_line, end_line) = (i * size + 1, ((i + 1) * size).min(lines));
            Symbol {
                kind: SymbolKind::Lines,
                name: format!("lines {start_line}-{end_line}"),
                parent: None,
                start_line,
                end_line,
            }
        })
        .collect()
}

/// How many lines `text` has (a last line without `\n` counts; `""` has none).
pub fn line_count(text: &str) -> usize {
    text.lines().count()
}
