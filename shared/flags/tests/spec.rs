//! The Unleash client specification's tests (tests/spec/, copied from `@unleash/client-specification`)
//! run against this crate's evaluator: every toggle test and every variant test of each copied file.

use std::collections::BTreeMap;
use std::path::Path;

use prfix_flags::context::UnleashContext;
use prfix_flags::evaluate::evaluate;
use prfix_flags::model::FeaturesResponse;
use serde::Deserialize;

#[derive(Deserialize)]
struct SpecFile {
    name: String,
    state: FeaturesResponse,
    #[serde(default)]
    tests: Vec<ToggleTest>,
    #[serde(default, rename = "variantTests")]
    variant_tests: Vec<VariantTest>,
}

#[derive(Deserialize)]
struct ToggleTest {
    description: String,
    context: SpecContext,
    #[serde(rename = "toggleName")]
    toggle: String,
    #[serde(rename = "expectedResult")]
    expected: bool,
}

#[derive(Deserialize)]
struct VariantTest {
    description: String,
    context: SpecContext,
    #[serde(rename = "toggleName")]
    toggle: String,
    #[serde(rename = "expectedResult")]
    expected: ExpectedVariant,
}

#[derive(Deserialize)]
struct ExpectedVariant {
    name: String,
    #[serde(default)]
    payload: Option<prfix_flags::model::Payload>,
    enabled: bool,
    #[serde(default)]
    feature_enabled: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct SpecContext {
    user_id: Option<String>,
    session_id: Option<String>,
    remote_address: Option<String>,
    environment: Option<String>,
    app_name: Option<String>,
    current_time: Option<String>,
    properties: BTreeMap<String, serde_json::Value>,
}

impl SpecContext {
    fn to_context(&self) -> UnleashContext {
        UnleashContext {
            user_id: self.user_id.clone(),
            session_id: self.session_id.clone(),
            remote_address: self.remote_address.clone(),
            environment: self.environment.clone(),
            app_name: self.app_name.clone(),
            current_time: self.current_time.clone(),
            properties: self
                .properties
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                .collect(),
        }
    }
}

#[test]
fn the_evaluator_passes_every_copied_test_of_the_unleash_client_specification() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/spec");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/spec is readable")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 14, "the copied specification files are missing from {}", dir.display());
    let (mut failures, mut passed) = (Vec::new(), 0);
    for path in files {
        let text = std::fs::read_to_string(&path).expect("spec file is readable");
        let spec: SpecFile = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let feature = |name: &str| spec.state.features.iter().find(|f| f.name == name);
        for test in &spec.tests {
            let got = evaluate(feature(&test.toggle), &test.context.to_context()).enabled;
            if got == test.expected {
                passed += 1;
            } else {
                failures.push(format!("{}: {}: expected {}, got {got}", spec.name, test.description, test.expected));
            }
        }
        for test in &spec.variant_tests {
            let got = evaluate(feature(&test.toggle), &test.context.to_context());
            let expected = &test.expected;
            let variant_enabled = got.has_variant();
            let ok = got.variant == expected.name
                && variant_enabled == expected.enabled
                && expected.feature_enabled.is_none_or(|f| f == got.enabled)
                && (expected.payload.is_none() || got.payload == expected.payload);
            if ok {
                passed += 1;
            } else {
                failures.push(format!(
                    "{}: {}: expected {} (enabled {}, payload {:?}), got {} (feature {}, payload {:?})",
                    spec.name,
                    test.description,
                    expected.name,
                    expected.enabled,
                    expected.payload,
                    got.variant,
                    got.enabled,
                    got.payload
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{} passed, {} failed:\n{}", passed, failures.len(), failures.join("\n"));
    assert!(passed >= 150, "only {passed} specification tests ran");
}
