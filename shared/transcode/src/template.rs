//! Path templates of `google.api.http` rules (the grammar of `google/api/http.proto`): parsing,
//! matching a request path with its variable bindings, and the OpenAPI form of the path.
//!
//! ```text
//! Template = "/" Segments [ Verb ] ;
//! Segments = Segment { "/" Segment } ;
//! Segment  = "*" | "**" | LITERAL | Variable ;
//! Variable = "{" FieldPath [ "=" Segments ] "}" ;
//! FieldPath = IDENT { "." IDENT } ;
//! Verb     = ":" LITERAL ;
//! ```

use std::fmt;

use percent_encoding::percent_decode_str;

/// Why a path template does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid path template `{template}` at byte {position}: {reason}")]
pub struct TemplateError {
    /// The template as written.
    pub template: String,
    /// Byte offset of the problem in the template.
    pub position: usize,
    /// What is wrong.
    pub reason: String,
}

/// One path segment of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Matches exactly this text.
    Literal(String),
    /// `*`: one non-empty segment.
    Single,
    /// `**`: the rest of the path (zero or more segments); always last.
    Multi,
}

/// A variable: the field it binds and the segments it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Variable {
    field: String,
    start: usize,
    end: usize,
}

/// A parsed path template such as `/v1/{name=projects/*/things/*}/items/{id}:cancel`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    source: String,
    segments: Vec<Segment>,
    variables: Vec<Variable>,
    verb: Option<String>,
}

impl PathTemplate {
    /// Parses a template; the error names the template and the position of the problem.
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        Parser { source: template, pos: 0, segments: Vec::new(), variables: Vec::new() }.template()
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The field paths of the variables, in order (`name`, `id`, `a.b`).
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.variables.iter().map(|v| v.field.as_str())
    }

    /// The custom verb (`cancel` of `…:cancel`), if any.
    pub fn verb(&self) -> Option<&str> {
        self.verb.as_deref()
    }

    /// Matches a request path (without its query string). Returns the variable bindings, each the
    /// field path and the percent-decoded text it covers (for multi-segment variables the joined
    /// segments, where `%2F` stays encoded); `None` when the path does not match, including paths
    /// with empty segments (`//`, a trailing `/`) and values that do not decode as UTF-8.
    pub fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let mut rest = path.strip_prefix('/')?;
        if let Some(verb) = &self.verb {
            rest = rest.strip_suffix(verb.as_str())?.strip_suffix(':')?;
        }
        let parts: Vec<&str> = if rest.is_empty() { Vec::new() } else { rest.split('/').collect() };
        let multi = matches!(self.segments.last(), Some(Segment::Multi));
        let fixed = if multi { self.segments.len() - 1 } else { self.segments.len() };
        if parts.len() < fixed || (!multi && parts.len() != fixed) || parts.iter().any(|p| p.is_empty()) {
            return None;
        }
        for (segment, part) in self.segments.iter().zip(&parts) {
            if let Segment::Literal(literal) = segment
                && literal != part
            {
                return None;
            }
        }
        let mut bindings = Vec::with_capacity(self.variables.len());
        for variable in &self.variables {
            let end = if multi && variable.end == self.segments.len() { parts.len() } else { variable.end };
            let raw = parts.get(variable.start..end)?.join("/");
            let single = end - variable.start == 1 && self.segments.get(variable.start) == Some(&Segment::Single);
            let value = if single { decode(&raw)? } else { decode_keeping_slashes(&raw)? };
            bindings.push((variable.field.clone(), value));
        }
        Some(bindings)
    }

    /// The path in OpenAPI form: every variable as `{field.path}`, for example
    /// `/v1/{name}/items/{id}:cancel`. Wildcards outside variables stay as `*` and `**`.
    pub fn openapi_path(&self) -> String {
        let mut out = String::new();
        let mut index = 0;
        while index < self.segments.len() {
            out.push('/');
            if let Some(variable) = self.variables.iter().find(|v| v.start == index) {
                out.push('{');
                out.push_str(&variable.field);
                out.push('}');
                index = variable.end;
                continue;
            }
            match &self.segments[index] {
                Segment::Literal(literal) => out.push_str(literal),
                Segment::Single => out.push('*'),
                Segment::Multi => out.push_str("**"),
            }
            index += 1;
        }
        if let Some(verb) = &self.verb {
            out.push(':');
            out.push_str(verb);
        }
        out
    }

    /// An example path that matches the template, with the bindings it gives (for documentation
    /// and tests): every `*` becomes `s<i>`, every `**` the two segments `m<i>a/m<i>b`.
    pub fn example(&self) -> (String, Vec<(String, String)>) {
        let texts: Vec<String> = self
            .segments
            .iter()
            .enumerate()
            .map(|(i, segment)| match segment {
                Segment::Literal(literal) => literal.clone(),
                Segment::Single => format!("s{i}"),
                Segment::Multi => format!("m{i}a/m{i}b"),
            })
            .collect();
        let mut path = format!("/{}", texts.join("/"));
        if let Some(verb) = &self.verb {
            path.push(':');
            path.push_str(verb);
        }
        let bindings = self.variables.iter().map(|v| (v.field.clone(), texts[v.start..v.end].join("/"))).collect();
        (path, bindings)
    }

    /// How specific the template is, larger first: literal segments, then a verb, then no `**`,
    /// then more segments. Among templates matching one path, the most specific wins.
    pub(crate) fn specificity(&self) -> (usize, bool, bool, usize) {
        let literals = self.segments.iter().filter(|s| matches!(s, Segment::Literal(_))).count();
        let multi = self.segments.contains(&Segment::Multi);
        (literals, self.verb.is_some(), !multi, self.segments.len())
    }

    /// The template without variable names: two templates with the same shape match the same paths.
    pub(crate) fn shape(&self) -> String {
        let parts: Vec<&str> = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::Literal(literal) => literal.as_str(),
                Segment::Single => "*",
                Segment::Multi => "**",
            })
            .collect();
        format!("/{}{}", parts.join("/"), self.verb.as_ref().map(|v| format!(":{v}")).unwrap_or_default())
    }
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Percent-decodes one segment; `None` if the result is not UTF-8.
fn decode(raw: &str) -> Option<String> {
    percent_decode_str(raw).decode_utf8().ok().map(|s| s.into_owned())
}

/// Percent-decodes a multi-segment value except `%2F`, which stays encoded (http.proto's rule).
fn decode_keeping_slashes(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find("%2F").into_iter().chain(rest.find("%2f")).min() {
        out.push_str(&decode(&rest[..at])?);
        out.push_str(&rest[at..at + 3]);
        rest = &rest[at + 3..];
    }
    out.push_str(&decode(rest)?);
    Some(out)
}

/// Whether `c` may appear in a literal segment or verb.
fn literal_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()+,;=@:%".contains(c)
}

/// A recursive-descent parser over the template text.
struct Parser<'a> {
    source: &'a str,
    pos: usize,
    segments: Vec<Segment>,
    variables: Vec<Variable>,
}

impl Parser<'_> {
    fn error(&self, reason: impl Into<String>) -> TemplateError {
        TemplateError { template: self.source.to_owned(), position: self.pos, reason: reason.into() }
    }

    fn peek(&self) -> Option<char> {
        self.source[self.pos..].chars().next()
    }

    fn eat(&mut self, c: char) -> bool {
        let found = self.peek() == Some(c);
        if found {
            self.pos += c.len_utf8();
        }
        found
    }

    fn template(mut self) -> Result<PathTemplate, TemplateError> {
        if !self.eat('/') {
            return Err(self.error("must start with `/`"));
        }
        let mut verb = None;
        loop {
            self.segment(true)?;
            match self.peek() {
                Some('/') => self.pos += 1,
                Some(':') => {
                    self.pos += 1;
                    verb = Some(self.literal("verb")?);
                    if self.peek().is_some() {
                        return Err(self.error("the verb must end the template"));
                    }
                    break;
                }
                None => break,
                Some(c) => return Err(self.error(format!("unexpected `{c}`"))),
            }
        }
        // A `:` in the last literal segment starts the verb (in earlier segments it is ordinary).
        let last_in_variable = self.variables.last().is_some_and(|v| v.end == self.segments.len());
        if verb.is_none()
            && !last_in_variable
            && let Some(Segment::Literal(last)) = self.segments.last_mut()
            && let Some(at) = last.rfind(':')
        {
            let (literal, suffix) = (last[..at].to_owned(), last[at + 1..].to_owned());
            if literal.is_empty() || suffix.is_empty() {
                return Err(self.error("a verb needs a segment before it and a name after it"));
            }
            *last = literal;
            verb = Some(suffix);
        }
        if let Some(at) = self.segments.iter().position(|s| *s == Segment::Multi)
            && at + 1 != self.segments.len()
        {
            return Err(self.error("`**` must be the last segment"));
        }
        let Parser { source, segments, variables, .. } = self;
        Ok(PathTemplate { source: source.to_owned(), segments, variables, verb })
    }

    /// One segment; at the top level (`top`) a segment may be a variable.
    fn segment(&mut self, top: bool) -> Result<(), TemplateError> {
        if self.eat('*') {
            let multi = self.eat('*');
            self.segments.push(if multi { Segment::Multi } else { Segment::Single });
        } else if self.peek() == Some('{') {
            if !top {
                return Err(self.error("variables cannot nest"));
            }
            self.variable()?;
        } else {
            let literal = self.literal("segment")?;
            self.segments.push(Segment::Literal(literal));
        }
        Ok(())
    }

    fn variable(&mut self) -> Result<(), TemplateError> {
        self.pos += 1; // `{`
        let field_start = self.pos;
        loop {
            let ident_start = self.pos;
            while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                self.pos += 1;
            }
            let ident = &self.source[ident_start..self.pos];
            if !ident.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
                return Err(self.error("expected a field name"));
            }
            if !self.eat('.') {
                break;
            }
        }
        let field = self.source[field_start..self.pos].to_owned();
        if self.variables.iter().any(|v| v.field == field) {
            return Err(self.error(format!("field `{field}` is bound twice")));
        }
        let start = self.segments.len();
        if self.eat('=') {
            loop {
                self.segment(false)?;
                if !self.eat('/') {
                    break;
                }
            }
        } else {
            self.segments.push(Segment::Single);
        }
        if !self.eat('}') {
            return Err(self.error("expected `}`"));
        }
        self.variables.push(Variable { field, start, end: self.segments.len() });
        Ok(())
    }

    /// A non-empty run of literal characters.
    fn literal(&mut self, what: &str) -> Result<String, TemplateError> {
        let start = self.pos;
        while self.peek().is_some_and(literal_char) {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(self.error(match self.peek() {
                Some(c) => format!("unexpected `{c}` where a {what} was expected"),
                None => format!("a {what} was expected at the end"),
            }));
        }
        Ok(self.source[start..self.pos].to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(template: &str) -> PathTemplate {
        PathTemplate::parse(template).expect("parses")
    }

    #[test]
    fn shape_ignores_variable_names() {
        assert_eq!(parse("/v1/{a}/x:run").shape(), parse("/v1/{b=*}/x:run").shape());
        assert_ne!(parse("/v1/{a}").shape(), parse("/v1/{a=**}").shape());
    }

    #[test]
    fn specificity_prefers_literals_then_verbs() {
        assert!(parse("/v1/things/{x}").specificity() > parse("/v1/{x=**}").specificity());
        assert!(parse("/v1/{x}:run").specificity() > parse("/v1/{x}").specificity());
        assert!(parse("/v1/{x}").specificity() > parse("/v1/{x=**}").specificity());
    }
}
