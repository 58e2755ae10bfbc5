//! Symbols from tree-sitter syntax trees: which node kinds of each grammar are symbols, and
//! where their names are.

use tree_sitter::{Node, Parser};

use super::{Language, Symbol, SymbolKind};

/// The symbols of `text` in `language`, in the order they start; `None` when the grammar cannot
/// be loaded or the parse gives up.
pub(super) fn symbols(language: Language, text: &str) -> Option<Vec<Symbol>> {
    let grammar: tree_sitter::Language = match language {
        Language::Rust => tree_sitter_rust::LANGUAGE.into(),
        Language::Python => tree_sitter_python::LANGUAGE.into(),
        Language::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
        Language::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
        Language::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
        Language::Go => tree_sitter_go::LANGUAGE.into(),
        Language::Java => tree_sitter_java::LANGUAGE.into(),
    };
    let mut parser = Parser::new();
    parser.set_language(&grammar).ok()?;
    let tree = parser.parse(text, None)?;
    let source = text.as_bytes();
    let mut found = Vec::new();
    // Depth first with an explicit stack (generated files nest deeper than a thread's stack
    // would like); each entry carries the qualified name of the symbol it is inside.
    let mut stack: Vec<(Node<'_>, Option<String>, bool)> = vec![(tree.root_node(), None, false)];
    while let Some((node, parent, in_type)) = stack.pop() {
        let mut inner_parent = parent.clone();
        let mut inner_in_type = in_type;
        if let Some((kind, name)) = symbol_of(language, node, source, in_type) {
            let outer = outer_node(language, node);
            let symbol = Symbol {
                kind,
                name,
                parent: parent.clone(),
                start_line: outer.start_position().row + 1,
                end_line: last_line(outer),
            };
            inner_parent = Some(symbol.qualified_name());
            inner_in_type = !matches!(kind, SymbolKind::Function | SymbolKind::Method | SymbolKind::Module);
            found.push(symbol);
        } else if matches!(node.kind(), "function_item" | "function_definition") {
            inner_in_type = false;
        }
        let mut cursor = node.walk();
        let children: Vec<Node<'_>> = node.children(&mut cursor).collect();
        for child in children.into_iter().rev() {
            stack.push((child, inner_parent.clone(), inner_in_type));
        }
    }
    found.sort_by_key(|s| s.start_line);
    Some(found)
}

/// The node whose lines a symbol spans: a decorated Python definition starts at its decorators.
fn outer_node(language: Language, node: Node<'_>) -> Node<'_> {
    match (language, node.parent()) {
        (Language::Python, Some(parent)) if parent.kind() == "decorated_definition" => parent,
        _ => node,
    }
}

/// The last line of `node`, from 1: a node that ends at the start of a line ends on the line before.
fn last_line(node: Node<'_>) -> usize {
    let end = node.end_position();
    let start = node.start_position().row;
    if end.column == 0 && end.row > start { end.row } else { end.row + 1 }
}

/// The text of `node`'s field `field`, on one line.
fn field_text(node: Node<'_>, field: &str, source: &[u8]) -> Option<String> {
    let text = node.child_by_field_name(field)?.utf8_text(source).ok()?;
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    (!one_line.is_empty()).then_some(one_line)
}

/// Whether `node` is a symbol, and its kind and name. `in_type` says whether it sits directly
/// in a class, impl, trait or interface body (so a function there is a method).
fn symbol_of(language: Language, node: Node<'_>, source: &[u8], in_type: bool) -> Option<(SymbolKind, String)> {
    let name = |field: &str| field_text(node, field, source);
    let function = if in_type { SymbolKind::Method } else { SymbolKind::Function };
    let kind = match (language, node.kind()) {
        (Language::Rust, "function_item" | "function_signature_item") => function,
        (Language::Rust, "struct_item" | "union_item") => SymbolKind::Struct,
        (Language::Rust, "enum_item") => SymbolKind::Enum,
        (Language::Rust, "trait_item") => SymbolKind::Trait,
        (Language::Rust, "mod_item") if node.child_by_field_name("body").is_some() => SymbolKind::Module,
        (Language::Rust, "type_item") => SymbolKind::Type,
        (Language::Rust, "impl_item") => {
            let target = name("type")?;
            let title = match name("trait") {
                Some(t) => format!("{t} for {target}"),
                None => target,
            };
            return Some((SymbolKind::Impl, title));
        }
        (Language::Python, "function_definition") => function,
        (Language::Python, "class_definition") => SymbolKind::Class,
        (Language::JavaScript | Language::TypeScript | Language::Tsx, kind) => match kind {
            "function_declaration" | "generator_function_declaration" => SymbolKind::Function,
            "class_declaration" | "abstract_class_declaration" | "class" => SymbolKind::Class,
            "method_definition" => SymbolKind::Method,
            "interface_declaration" => SymbolKind::Interface,
            "enum_declaration" => SymbolKind::Enum,
            "type_alias_declaration" => SymbolKind::Type,
            "variable_declarator" => {
                let value = node.child_by_field_name("value")?;
                if !matches!(value.kind(), "arrow_function" | "function_expression" | "function") {
                    return None;
                }
                return Some((function, name("name")?));
            }
            _ => return None,
        },
        (Language::Go, "function_declaration") => SymbolKind::Function,
        (Language::Go, "method_declaration") => {
            let receiver = node
                .child_by_field_name("receiver")
                .and_then(|r| r.utf8_text(source).ok())
                .map(|r| r.trim_matches(|c| c == '(' || c == ')').split_whitespace().last().unwrap_or("").to_owned())
                .unwrap_or_default();
            let receiver = receiver.trim_start_matches('*');
            let method = name("name")?;
            return Some((
                SymbolKind::Method,
                if receiver.is_empty() { method } else { format!("{receiver}.{method}") },
            ));
        }
        (Language::Go, "type_spec") => match node.child_by_field_name("type").map(|t| t.kind()) {
            Some("struct_type") => SymbolKind::Struct,
            Some("interface_type") => SymbolKind::Interface,
            _ => SymbolKind::Type,
        },
        (Language::Java, kind) => match kind {
            "class_declaration" | "record_declaration" => SymbolKind::Class,
            "interface_declaration" | "annotation_type_declaration" => SymbolKind::Interface,
            "enum_declaration" => SymbolKind::Enum,
            "method_declaration" | "constructor_declaration" => SymbolKind::Method,
            _ => return None,
        },
        _ => return None,
    };
    Some((kind, name("name")?))
}
