//! The documentation tells the truth about the code: the configuration reference lists every setting the
//! services read (and nothing else), every page is in the book's table of contents, and the API reference
//! has a row for every method of the descriptor set with its route, roles and limits.
//!
//! The settings are read from the settings types themselves: a probing serde `Deserializer` records the
//! field list that each `Deserialize` implementation announces (`deserialize_struct`), and follows
//! nested sections (`[gateway.limits]`, `[agent.limits]`) by feeding one key at a time. Renames, new
//! fields and new nested sections show up without touching this file.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, ReflectMessage, Value};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};

/// The repository's root (the parent of the `tests` crate).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the tests crate is inside the workspace").to_path_buf()
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every `.rs` file under `dir` (relative to the root), skipping build output.
fn rust_sources(dir: &str) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    let mut pending = vec![root().join(dir)];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() && path.file_name().is_some_and(|n| n != "target") {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("a source file is text");
                files.push((path, text));
            }
        }
    }
    files
}

/// The string literals passed to `call(` in the sources under `dirs`: `secret_from_env("PRFIX_X")`.
fn literal_arguments(dirs: &[&str], call: &str) -> BTreeSet<String> {
    let needle = format!("{call}(\"");
    let mut found = BTreeSet::new();
    for dir in dirs {
        for (_, text) in rust_sources(dir) {
            for (at, _) in text.match_indices(&needle) {
                let rest = &text[at + needle.len()..];
                let end = rest.find('"').expect("a string literal ends");
                found.insert(rest[..end].to_owned());
            }
        }
    }
    found
}

// ---------------------------------------------------------------------------------------------------------
// The settings the code reads, from the `Deserialize` implementations.

/// How a probe ends (every probe ends in an error; what it learnt is recorded on the side).
#[derive(Debug)]
struct Stop(String);

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

/// A deserializer that walks down `path` (one map entry per level) and, at its end, records the field
/// names of the struct found there. Anything that is not a struct (or an option or newtype around one) is a
/// leaf: the probe stops without recording.
struct Probe<'a> {
    path: &'a [String],
    at_root: bool,
    fields: &'a RefCell<Option<&'static [&'static str]>>,
}

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Stop> {
        Err(Stop("a leaf setting".to_owned()))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        match self.path.split_first() {
            None => {
                *self.fields.borrow_mut() = Some(fields);
                Err(Stop("fields recorded".to_owned()))
            }
            Some((key, rest)) => visitor.visit_map(OneEntry {
                key: Some(key),
                value: Some(Probe { path: rest, at_root: false, fields: self.fields }),
            }),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Stop> {
        assert!(
            !self.at_root,
            "a settings section deserializes as a map (`#[serde(flatten)]`?): the probe cannot list its keys; \
             list them another way in tests/tests/docs.rs"
        );
        Err(Stop("a map-valued setting".to_owned()))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit unit_struct
        seq tuple tuple_struct enum identifier ignored_any
    }
}

/// A map of one entry: the next key of the probe's path, and the probe for the rest.
struct OneEntry<'a> {
    key: Option<&'a str>,
    value: Option<Probe<'a>>,
}

impl<'de> MapAccess<'de> for OneEntry<'_> {
    type Error = Stop;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Stop> {
        match self.key.take() {
            Some(key) => seed.deserialize(IntoDeserializer::<Stop>::into_deserializer(key)).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Stop> {
        seed.deserialize(self.value.take().expect("a value follows its key"))
    }
}

/// Every leaf setting of `T`, as dotted paths under `section` (`gateway.limits.default.per_minute`);
/// `section` empty for the top level.
fn setting_keys<T: DeserializeOwned>(section: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut pending: Vec<Vec<String>> = vec![Vec::new()];
    while let Some(path) = pending.pop() {
        let fields = RefCell::new(None);
        let outcome = T::deserialize(Probe { path: &path, at_root: true, fields: &fields });
        assert!(outcome.is_err(), "a probe never builds a value");
        match fields.into_inner() {
            Some(names) => {
                for name in names {
                    let mut child = path.clone();
                    child.push((*name).to_owned());
                    pending.push(child);
                }
            }
            None => {
                assert!(!path.is_empty(), "{} does not deserialize as a struct", std::any::type_name::<T>());
                keys.insert(join(section, &path.join(".")));
            }
        }
    }
    keys
}

/// The sections the services read (`layers.section("…")`) with their settings; the top level is "".
fn settings_read_by_the_code() -> Vec<(&'static str, BTreeSet<String>)> {
    let sections = vec![
        ("", setting_keys::<prfix_runtime::settings::CommonSettings>("")),
        ("gateway", setting_keys::<prfix_gateway::GatewaySettings>("gateway")),
        ("agent", setting_keys::<prfix_agent::AgentSettings>("agent")),
        ("audit", setting_keys::<prfix_audit::AuditSettings>("audit")),
        ("flags", setting_keys::<prfix_flags::FlagSettings>("flags")),
    ];
    // A section added to a service must be added above (and documented).
    let read: BTreeSet<String> = literal_arguments(&["services", "cli/src", "shared/flags"], ".section");
    let known: BTreeSet<String> = sections.iter().map(|(s, _)| (*s).to_owned()).filter(|s| !s.is_empty()).collect();
    assert_eq!(read, known, "the sections the services read (`layers.section(…)`) are not the ones this test knows");
    sections
}

// ---------------------------------------------------------------------------------------------------------
// Markdown tables.

/// A body row of a table, under the section its heading names.
#[derive(Debug)]
struct Row {
    /// The table's section: `gateway.limits` for a heading with `[gateway.limits]`, "" for the top level,
    /// `None` for a heading that names no section.
    section: Option<String>,
    /// The heading text.
    heading: String,
    /// The cells, trimmed (a `\|` inside a cell does not split it).
    cells: Vec<String>,
    /// The whole line.
    line: String,
}

/// The section a configuration heading names.
fn heading_section(heading: &str) -> Option<String> {
    if let Some(start) = heading.find("`[") {
        let rest = &heading[start + 2..];
        return rest.find("]`").map(|end| rest[..end].to_owned());
    }
    heading.to_lowercase().contains("top level").then(String::new)
}

fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    let mut cells = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cells.last_mut().expect("one cell at least").push('|');
                chars.next();
            }
            '|' => cells.push(String::new()),
            c => cells.last_mut().expect("one cell at least").push(c),
        }
    }
    cells.into_iter().map(|c| c.trim().to_owned()).collect()
}

fn is_separator(line: &str) -> bool {
    let line = line.trim();
    line.starts_with('|') && line.contains('-') && line.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '))
}

/// The body rows of the tables in `markdown`. Only real tables count (a header row, then a separator):
/// rows cut off from their header by a blank line render as text, not as a table.
fn table_rows(markdown: &str) -> Vec<Row> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut rows = Vec::new();
    let mut heading = String::new();
    let mut fence = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim_start().starts_with("```") {
            fence = !fence;
        } else if !fence && line.starts_with('#') {
            heading = line.trim_start_matches('#').trim().to_owned();
        } else if !fence && line.trim_start().starts_with('|') {
            let start = i;
            while i + 1 < lines.len() && lines[i + 1].trim_start().starts_with('|') {
                i += 1;
            }
            let block = &lines[start..=i];
            if block.len() >= 2 && is_separator(block[1]) {
                for line in &block[2..] {
                    rows.push(Row {
                        section: heading_section(&heading),
                        heading: heading.clone(),
                        cells: cells(line),
                        line: (*line).to_owned(),
                    });
                }
            }
        }
        i += 1;
    }
    rows
}

/// The names in backticks in `text`.
fn code_spans(text: &str) -> Vec<String> {
    text.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

fn join(section: &str, key: &str) -> String {
    if section.is_empty() { key.to_owned() } else { format!("{section}.{key}") }
}

/// Whether a row of the configuration reference documents `setting` (a dotted path): its key names it
/// (`[agent.limits]` + `max_files`, or `[gateway]` + `limits.default`), or names a part of it and the row
/// mentions the rest (`limits.default` with `{ per_minute = 1200, burst = 100 }`).
fn documents(row: &Row, setting: &str) -> bool {
    let Some(section) = &row.section else { return false };
    let Some(first) = row.cells.first() else { return false };
    code_spans(first).iter().any(|key| {
        let documented = join(section, key);
        if documented == setting {
            return true;
        }
        match setting.strip_prefix(&format!("{documented}.")) {
            Some(rest) => rest.split('.').all(|part| {
                row.line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).any(|word| word == part)
            }),
            None => false,
        }
    })
}

#[test]
fn the_configuration_reference_lists_every_setting_the_code_reads_in_its_section() {
    let reference = read("docs/configuration.md");
    let rows = table_rows(&reference);
    let mut missing = Vec::new();
    for (section, keys) in settings_read_by_the_code() {
        assert!(!keys.is_empty(), "no settings found for section `{section}`");
        for key in keys {
            if !rows.iter().any(|row| documents(row, &key)) {
                missing.push(if section.is_empty() { format!("{key} (top level)") } else { key });
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/configuration.md does not document these settings in their section's table:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn every_key_in_the_configuration_reference_is_a_setting_the_code_reads() {
    let settings: Vec<String> = settings_read_by_the_code().into_iter().flat_map(|(_, keys)| keys).collect();
    let reference = read("docs/configuration.md");
    let mut unknown = Vec::new();
    for row in table_rows(&reference) {
        let Some(section) = &row.section else { continue };
        for key in code_spans(row.cells.first().map_or("", String::as_str)) {
            let documented = join(section, &key);
            let prefix = format!("{documented}.");
            if !settings.iter().any(|s| *s == documented || s.starts_with(&prefix)) {
                unknown.push(format!("{documented} (under \"{}\")", row.heading));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "docs/configuration.md documents settings the code does not read:\n  {}",
        unknown.join("\n  ")
    );
}

#[test]
fn the_top_level_settings_are_documented_with_their_environment_variable() {
    let reference = read("docs/configuration.md");
    for row in table_rows(&reference).iter().filter(|row| row.section.as_deref() == Some("")) {
        let keys = code_spans(&row.cells[0]);
        if let [key] = keys.as_slice() {
            // A key of a nested table (`service_limits.default`) is `__`-separated in the environment.
            let variable = format!("PRFIX_{}", key.to_uppercase().replace('.', "__"));
            let environment = row.cells.get(1).map_or("", String::as_str);
            assert!(environment.contains(&format!("`{variable}`")), "the row of `{key}` should name `{variable}`");
        }
    }
}

#[test]
fn every_secret_the_code_reads_from_the_environment_is_documented_by_name() {
    let secrets = literal_arguments(&["services", "shared", "cli/src"], "secret_from_env");
    assert!(!secrets.is_empty(), "no `secret_from_env(\"…\")` call found: has the function been renamed?");
    let reference = read("docs/configuration.md");
    let missing: Vec<&String> = secrets.iter().filter(|name| !reference.contains(&format!("`{name}`"))).collect();
    assert!(missing.is_empty(), "docs/configuration.md does not name these secret variables: {missing:?}");
}

// ---------------------------------------------------------------------------------------------------------
// The book.

/// The pages the table of contents links to, in order.
fn summary_entries() -> Vec<String> {
    let summary = read("docs/SUMMARY.md");
    let mut entries = Vec::new();
    for part in summary.split("](").skip(1) {
        let end = part.find(')').expect("a link target ends with `)`");
        entries.push(part[..end].trim().to_owned());
    }
    entries
}

#[test]
fn every_page_is_in_the_summary_and_every_summary_entry_exists() {
    let docs = root().join("docs");
    let entries = summary_entries();
    let mut pages = BTreeSet::new();
    let mut pending = vec![docs.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("docs/ lists") {
            let path = entry.expect("a directory entry").path();
            // docs/book is the built book, not pages.
            if path.is_dir() && path != docs.join("book") {
                pending.push(path);
            } else if path.is_file() && path.extension().is_some_and(|e| e == "md") {
                let relative = path.strip_prefix(&docs).expect("under docs/").to_string_lossy().replace('\\', "/");
                if relative != "SUMMARY.md" {
                    pages.insert(relative);
                }
            }
        }
    }
    let listed: BTreeSet<String> = entries.iter().cloned().collect();
    assert_eq!(listed.len(), entries.len(), "a page is listed twice in docs/SUMMARY.md: {entries:?}");
    let unlisted: Vec<&String> = pages.difference(&listed).collect();
    assert!(unlisted.is_empty(), "pages missing from docs/SUMMARY.md: {unlisted:?}");
    let dangling: Vec<&String> = listed.difference(&pages).collect();
    assert!(dangling.is_empty(), "docs/SUMMARY.md lists pages that do not exist: {dangling:?}");
}

#[test]
fn the_book_builds_into_its_own_folder_which_git_ignores_and_opens_with_getting_started() {
    let book = read("docs/book.toml");
    assert!(book.contains("src = \".\""), "the book's sources are docs/ itself");
    assert!(book.contains("build-dir = \"book\""), "the book builds into docs/book");
    assert!(read("docs/.gitignore").lines().any(|l| l == "/book"), "git (and mdbook serve) ignore the built book");
    assert_eq!(
        summary_entries().first().map(String::as_str),
        Some("getting-started.md"),
        "the book starts with Getting started"
    );
}

// ---------------------------------------------------------------------------------------------------------
// The API reference.

/// The enum value names of `field` in `message` (a repeated or single enum field).
fn enum_names(message: &DynamicMessage, field: &str) -> Vec<String> {
    let Some(descriptor) = message.descriptor().get_field_by_name(field) else { return Vec::new() };
    let enumeration = descriptor.kind().as_enum().cloned().expect("an enum field");
    let value = message.get_field(&descriptor).into_owned();
    let numbers: Vec<i32> = match &value {
        Value::List(values) => values.iter().filter_map(Value::as_enum_number).collect(),
        Value::EnumNumber(n) => vec![*n],
        _ => Vec::new(),
    };
    numbers
        .into_iter()
        .map(|n| enumeration.get_value(n).map_or_else(|| n.to_string(), |v| v.name().to_owned()))
        .collect()
}

/// The REST routes of a method (`POST /v1/tasks:review`), additional bindings included.
fn routes(pool: &DescriptorPool, method: &MethodDescriptor) -> Vec<String> {
    let extension = pool.get_extension_by_name("google.api.http").expect("the http option is in the set");
    let options = method.options();
    if !options.has_extension(&extension) {
        return Vec::new();
    }
    let value = options.get_extension(&extension);
    let rule = value.as_message().expect("an HttpRule").clone();
    let mut rules = vec![rule.clone()];
    if let Some(Value::List(more)) = rule.get_field_by_name("additional_bindings").map(|v| v.into_owned()) {
        rules.extend(more.iter().filter_map(|v| v.as_message().cloned()));
    }
    rules
        .iter()
        .filter_map(|rule| {
            for verb in ["get", "put", "post", "delete", "patch"] {
                if rule.has_field_by_name(verb) {
                    let path = rule.get_field_by_name(verb).and_then(|v| v.as_str().map(str::to_owned));
                    return Some(format!("{} {}", verb.to_uppercase(), path.unwrap_or_default()));
                }
            }
            let custom = rule.get_field_by_name("custom")?.as_message()?.clone();
            let kind = custom.get_field_by_name("kind")?.as_str()?.to_owned();
            let path = custom.get_field_by_name("path")?.as_str()?.to_owned();
            Some(format!("{kind} {path}"))
        })
        .collect()
}

/// The row of the API reference for `method`:
/// `| method | kind | REST | roles | rate limit | access record |`.
fn api_row(pool: &DescriptorPool, method: &MethodDescriptor) -> String {
    let kind = match (method.is_client_streaming(), method.is_server_streaming()) {
        (false, false) => "unary",
        (false, true) => "server stream",
        (true, false) => "client stream",
        (true, true) => "bidirectional stream",
    };
    let rest = routes(pool, method);
    let rest = if rest.is_empty() {
        "gRPC only".to_owned()
    } else {
        rest.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(", ")
    };
    let extension = pool.get_extension_by_name("prfix.options.v1.policy").expect("the policy option is in the set");
    let options = method.options();
    let (roles, limit, audited) = if options.has_extension(&extension) {
        let value = options.get_extension(&extension);
        let policy = value.as_message().expect("a MethodPolicy").clone();
        let public = policy.get_field_by_name("public").and_then(|v| v.as_bool()).unwrap_or(false);
        let signed = policy.get_field_by_name("forge_signature").and_then(|v| v.as_bool()).unwrap_or(false);
        let roles = if signed {
            "the forge's signature (no token)".to_owned()
        } else if public {
            "public (no credentials)".to_owned()
        } else {
            let names: Vec<String> = enum_names(&policy, "roles")
                .iter()
                .map(|r| r.strip_prefix("ROLE_").unwrap_or(r).to_lowercase())
                .filter(|r| r != "unspecified")
                .collect();
            if names.is_empty() { "nobody".to_owned() } else { names.join(", ") }
        };
        let limit = enum_names(&policy, "rate_limit")
            .first()
            .map(|c| c.strip_prefix("RATE_LIMIT_CLASS_").unwrap_or(c).to_lowercase())
            .filter(|c| c != "unspecified")
            .unwrap_or_else(|| "default".to_owned());
        let audited = policy.get_field_by_name("audit").and_then(|v| v.as_bool()).unwrap_or(false);
        (roles, limit, if audited { "yes" } else { "no" })
    } else {
        ("nobody (no policy: denied)".to_owned(), "—".to_owned(), "no")
    };
    format!("| `{}` | {kind} | {rest} | {roles} | {limit} | {audited} |", method.name())
}

#[test]
fn the_api_reference_has_a_row_for_every_method_with_its_route_roles_and_limit() {
    let pool = DescriptorPool::decode(prfix_proto::FILE_DESCRIPTOR_SET).expect("the descriptor set decodes");
    let reference = read("docs/api.md");
    let rows = table_rows(&reference);
    let services: Vec<_> = pool.services().filter(|s| s.package_name().starts_with("prfix.")).collect();
    assert!(!services.is_empty(), "the descriptor set has prfix services");
    let mut wrong = Vec::new();
    for service in &services {
        let heading = format!("`{}`", service.full_name());
        let documented: Vec<String> =
            rows.iter().filter(|r| r.heading.contains(&heading)).map(|r| r.line.trim().to_owned()).collect();
        let expected: Vec<String> = service.methods().map(|m| api_row(&pool, &m)).collect();
        if documented != expected {
            wrong.push(format!("## {heading}\n\n{}", expected.join("\n")));
        }
    }
    let names: BTreeSet<String> = services.iter().map(|s| format!("`{}`", s.full_name())).collect();
    for row in &rows {
        let heading_names: Vec<String> = code_spans(&row.heading).into_iter().map(|n| format!("`{n}`")).collect();
        assert!(
            heading_names.iter().all(|n| names.contains(n)),
            "docs/api.md has a table under \"{}\", which is not a service of the descriptor set",
            row.heading
        );
    }
    assert!(
        wrong.is_empty(),
        "docs/api.md is out of date; the tables under these headings should read (| method | kind | REST | \
         roles | rate limit | access record |):\n\n{}",
        wrong.join("\n\n")
    );
}
