//! Path templates: each grammar form, errors naming the template, matching rules, and properties
//! (nothing panics; a path built from a template matches it with the bindings it was built from).

use http::Method;
use prfix_transcode::{Match, PathTemplate, Routes};
use proptest::prelude::*;

fn bindings(template: &str, path: &str) -> Option<Vec<(String, String)>> {
    PathTemplate::parse(template).expect("template parses").matches(path)
}

fn pairs(items: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
    Some(items.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
}

#[test]
fn each_grammar_form_parses_and_matches() {
    assert_eq!(bindings("/v1/things", "/v1/things"), pairs(&[]));
    assert_eq!(bindings("/v1/*", "/v1/x"), pairs(&[]));
    assert_eq!(bindings("/v1/**", "/v1/x/y"), pairs(&[]));
    assert_eq!(bindings("/v1/**", "/v1"), pairs(&[]));
    assert_eq!(bindings("/v1/{x}", "/v1/a"), pairs(&[("x", "a")]));
    assert_eq!(bindings("/v1/{x=*}", "/v1/a"), pairs(&[("x", "a")]));
    assert_eq!(bindings("/v1/{x.y}", "/v1/a"), pairs(&[("x.y", "a")]));
    assert_eq!(bindings("/v1/{name=things/*}", "/v1/things/a"), pairs(&[("name", "things/a")]));
    assert_eq!(bindings("/v1/{name=things/*}", "/v1/other/a"), None);
    assert_eq!(bindings("/v1/{name=**}", "/v1/a/b/c"), pairs(&[("name", "a/b/c")]));
    assert_eq!(bindings("/v1/{name=things/**}", "/v1/things/a/b"), pairs(&[("name", "things/a/b")]));
    assert_eq!(bindings("/v1/{x}:run", "/v1/a:run"), pairs(&[("x", "a")]));
    assert_eq!(bindings("/v1/things:run", "/v1/things:run"), pairs(&[]));
    assert_eq!(bindings("/v1/*:run", "/v1/a:run"), pairs(&[]));
    assert_eq!(bindings("/v1/**:run", "/v1/a/b:run"), pairs(&[]));
    assert_eq!(bindings("/v1/{n=**}:run", "/v1/a/b:run"), pairs(&[("n", "a/b")]));
    // A `:` in an earlier segment is ordinary.
    assert_eq!(bindings("/v1/a:b/{x}", "/v1/a:b/c"), pairs(&[("x", "c")]));
    let template = PathTemplate::parse("/v1/a:b/{x}").expect("parses");
    assert_eq!(template.verb(), None);
    assert_eq!(template.openapi_path(), "/v1/a:b/{x}");
}

#[test]
fn matching_rules() {
    // Verbs: required when the template has one, part of the value when it has none.
    assert_eq!(bindings("/v1/{x}:run", "/v1/a"), None);
    assert_eq!(bindings("/v1/{x}:run", "/v1/a:walk"), None);
    assert_eq!(bindings("/v1/{x}", "/v1/a:run"), pairs(&[("x", "a:run")]));
    assert_eq!(bindings("/v1/things", "/v1/things:run"), None);
    // Trailing slashes and empty segments never match.
    assert_eq!(bindings("/v1/{x}", "/v1/a/"), None);
    assert_eq!(bindings("/v1/{x}", "/v1/"), None);
    assert_eq!(bindings("/v1/{x=**}", "/v1/a//b"), None);
    assert_eq!(bindings("/v1/things", "/v1/things/"), None);
    assert_eq!(bindings("/v1/{x}", "v1/a"), None);
    // `*` is one segment, `/` is not in it.
    assert_eq!(bindings("/v1/{x}", "/v1/a/b"), None);
    // Percent-decoding: fully for one segment, all but `%2F` for several.
    assert_eq!(bindings("/v1/{x}", "/v1/a%2Fb%20c%3A"), pairs(&[("x", "a/b c:")]));
    assert_eq!(bindings("/v1/{x=**}", "/v1/a%2fb/c%20d"), pairs(&[("x", "a%2fb/c d")]));
    assert_eq!(bindings("/v1/{x}", "/v1/%E2%9C%93"), pairs(&[("x", "✓")]));
    assert_eq!(bindings("/v1/{x}", "/v1/%FF"), None);
    // Literals match exactly.
    assert_eq!(bindings("/v1/things", "/v1/Things"), None);
}

#[test]
fn invalid_templates_are_errors_naming_the_template() {
    for bad in [
        "",
        "v1/things",
        "/",
        "/v1//things",
        "/v1/things/",
        "/v1/{x",
        "/v1/{}",
        "/v1/{1x}",
        "/v1/{x.}",
        "/v1/{x=}",
        "/v1/{x={y}}",
        "/v1/{x}/{x}",
        "/v1/**/things",
        "/v1/{x=**}/things",
        "/v1/{x}:",
        "/v1/:run",
        "/v1/things:",
        "/v1/{x}:run/more",
        "/v1/***",
        "/v1/th*ngs",
        "/v1/th ings",
        "/v1/things?x=1",
        "/v1/{x}y",
    ] {
        let error = PathTemplate::parse(bad).expect_err(bad);
        assert_eq!(error.template, bad);
        assert!(error.to_string().contains(&format!("`{bad}`")), "{error}");
    }
}

#[test]
fn specificity_and_method_not_allowed_through_routes() {
    let (routes, _) = Routes::prfix().expect("routes build");
    match routes.find(&Method::DELETE, "/v1/users") {
        Match::MethodNotAllowed { allowed } => assert_eq!(allowed, vec![Method::GET, Method::POST]),
        other => panic!("{other:?}"),
    }
}

/// A generated template: its text and a path with the bindings the path should give.
fn template_and_path() -> impl Strategy<Value = (String, String, Vec<(String, String)>)> {
    let literal = "[a-z][a-z0-9-]{0,5}";
    let value = "[A-Za-z0-9 ._~:/%-]{1,6}";
    // Each segment: literal, `*`, or a variable `{f<i>}` / `{f<i>=lit/*}`; optional `**` variable last.
    let segment = prop_oneof![
        literal.prop_map(|l| (0u8, l)),
        Just((1u8, String::new())),
        Just((2u8, String::new())),
        literal.prop_map(|l| (3u8, l)),
    ];
    (
        prop::collection::vec((segment, value), 1..5),
        prop::option::of(prop::collection::vec("[a-z0-9]{1,4}", 0..3)),
        prop::option::of("[a-z]{1,5}"),
    )
        .prop_map(|(segments, rest, verb)| {
            let mut template = String::new();
            let mut path = String::new();
            let mut expected = Vec::new();
            for (index, ((kind, literal), value)) in segments.into_iter().enumerate() {
                let field = format!("f{index}");
                let encoded = percent_encode(&value);
                match kind {
                    0 => {
                        template.push_str(&format!("/{literal}"));
                        path.push_str(&format!("/{literal}"));
                    }
                    1 => {
                        template.push_str("/*");
                        path.push_str(&format!("/{encoded}"));
                    }
                    2 => {
                        template.push_str(&format!("/{{{field}}}"));
                        path.push_str(&format!("/{encoded}"));
                        expected.push((field, value));
                    }
                    _ => {
                        template.push_str(&format!("/{{{field}={literal}/*}}"));
                        path.push_str(&format!("/{literal}/{encoded}"));
                        // Several segments: `%2F` stays encoded in the value.
                        expected.push((field, format!("{literal}/{}", value.replace('/', "%2F"))));
                    }
                }
            }
            if let Some(rest) = rest {
                template.push_str("/{rest=**}");
                for part in &rest {
                    path.push_str(&format!("/{part}"));
                }
                expected.push(("rest".to_owned(), rest.join("/")));
            }
            if let Some(verb) = verb {
                template.push_str(&format!(":{verb}"));
                path.push_str(&format!(":{verb}"));
            }
            (template, path, expected)
        })
}

/// Encodes everything but unreserved characters, as a client would for one segment.
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

proptest! {
    #[test]
    fn arbitrary_template_strings_never_panic(template in "\\PC{0,40}", grammarish in "[/{}*=.:a-z]{0,24}") {
        let _ = PathTemplate::parse(&template);
        if let Ok(parsed) = PathTemplate::parse(&grammarish) {
            let (path, bindings) = parsed.example();
            prop_assert_eq!(parsed.matches(&path), Some(bindings));
            let _ = parsed.openapi_path();
        }
    }

    #[test]
    fn arbitrary_paths_never_panic_find(path in "\\PC{0,60}", pathish in "[/a-z0-9:%?.]{0,40}") {
        let (routes, _) = Routes::prfix().expect("routes build");
        for method in [Method::GET, Method::POST, Method::DELETE] {
            let _ = routes.find(&method, &path);
            let _ = routes.find(&method, &pathish);
            let _ = routes.find(&method, &format!("/v1/{pathish}"));
        }
    }

    #[test]
    fn paths_built_from_templates_match_with_their_bindings((template, path, expected) in template_and_path()) {
        let parsed = PathTemplate::parse(&template).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(parsed.matches(&path), Some(expected), "{} {}", template, path);
    }
}
