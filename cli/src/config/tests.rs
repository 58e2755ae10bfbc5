//! Tests of configuration loading: defaults, layers, and the errors a user sees.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::*;

/// A temporary directory holding `config.toml` and `.prfix.toml` when given.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new(global: Option<&str>, repo: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        if let Some(text) = global {
            std::fs::write(dir.path().join("config.toml"), text).expect("write config.toml");
        }
        if let Some(text) = repo {
            std::fs::write(dir.path().join(".prfix.toml"), text).expect("write .prfix.toml");
        }
        Self { dir }
    }

    fn global(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    fn repo(&self) -> PathBuf {
        self.dir.path().join(".prfix.toml")
    }

    fn load(&self, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        load_from(Some(&self.global()), Some(&self.repo()), &|name| env.get(name).cloned())
    }
}

fn error_text(global: Option<&str>, repo: Option<&str>) -> (String, Files) {
    let files = Files::new(global, repo);
    let error = files.load(&[]).expect_err("the configuration is refused");
    let text = error.to_string();
    assert!(!text.contains('\n'), "one line: {text}");
    (text, files)
}

#[test]
fn without_files_or_variables_the_defaults_apply() {
    let config = Files::new(None, None).load(&[]).expect("defaults");
    assert_eq!(config, Config::default());
    assert_eq!(config.gateway, "http://127.0.0.1:8080");
    assert_eq!(config.output.format, Format::Terminal);
    assert_eq!(config.output.color, ColorChoice::Auto);
    assert_eq!(config.fix.max_rounds, 3);
    assert!(!config.fix.allow_new_files);
    assert!(config.review.ignore.is_empty() && config.review.fail_on.is_none());
    assert!(config.sources.is_empty(), "missing files are skipped");
}

const GLOBAL: &str = r#"
gateway = "https://prfix.example.com/"
[output]
format = "markdown"
color = "never"
[review]
model = "global-model"
ignore = ["global/**"]
max_findings = 10
[fix]
max_rounds = 5
"#;

const REPO: &str = r#"
[review]
ignore = ["vendor/**", "*.lock"]
min_severity = "minor"
fail_on = "major"
instructions = "Prefer early returns."
[fix]
check = "cargo test"
planner_model = "planner"
coder_model = "coder"
allow_new_files = true
"#;

#[test]
fn the_repository_file_overrides_the_user_file_which_overrides_defaults() {
    let files = Files::new(Some(GLOBAL), Some(REPO));
    let config = files.load(&[]).expect("valid files");
    assert_eq!(config.gateway, "https://prfix.example.com", "a trailing slash is dropped");
    assert_eq!(config.output, Output { format: Format::Markdown, color: ColorChoice::Never });
    assert_eq!(config.review.model.as_deref(), Some("global-model"), "kept when the repository says nothing");
    assert_eq!(config.review.ignore, ["vendor/**", "*.lock"], "lists are replaced, not merged");
    assert_eq!(config.review.max_findings, Some(10));
    assert_eq!(config.review.min_severity.as_deref(), Some("minor"));
    assert_eq!(config.review.fail_on.as_deref(), Some("major"));
    assert_eq!(config.review.instructions.as_deref(), Some("Prefer early returns."));
    assert_eq!(config.fix.max_rounds, 5);
    assert_eq!(config.fix.check.as_deref(), Some("cargo test"));
    assert_eq!(config.fix.planner_model.as_deref(), Some("planner"));
    assert_eq!(config.fix.coder_model.as_deref(), Some("coder"));
    assert!(config.fix.allow_new_files);
    assert_eq!(config.sources, [files.global(), files.repo()]);
}

#[test]
fn environment_variables_override_both_files() {
    let files = Files::new(Some(GLOBAL), Some(REPO));
    let config = files
        .load(&[
            ("PRFIX_GATEWAY", "http://10.0.0.1:9000"),
            ("PRFIX_FORMAT", "sarif"),
            ("PRFIX_COLOR", "always"),
            ("PRFIX_REVIEW_MODEL", "env-model"),
            ("PRFIX_FAIL_ON", "none"),
            ("PRFIX_FIX_CHECK", "make check"),
        ])
        .expect("valid variables");
    assert_eq!(config.gateway, "http://10.0.0.1:9000");
    assert_eq!(config.output, Output { format: Format::Sarif, color: ColorChoice::Always });
    assert_eq!(config.review.model.as_deref(), Some("env-model"));
    assert_eq!(config.review.fail_on.as_deref(), Some("none"));
    assert_eq!(config.fix.check.as_deref(), Some("make check"));
}

#[test]
fn empty_environment_variables_count_as_unset() {
    let files = Files::new(Some(GLOBAL), None);
    let config = files.load(&[("PRFIX_GATEWAY", ""), ("PRFIX_FORMAT", "")]).expect("valid");
    assert_eq!(config.gateway, "https://prfix.example.com");
    assert_eq!(config.output.format, Format::Markdown);
}

#[test]
fn an_unknown_key_in_the_repository_file_is_named_with_the_file_and_the_known_keys() {
    let (text, files) = error_text(None, Some("[review]\nmodle = \"x\"\n"));
    let path = files.repo().display().to_string();
    assert_eq!(
        text,
        format!(
            "unknown key `review.modle` in {path} (known: ignore, model, min_severity, fail_on, instructions, max_findings)"
        )
    );
    let (text, _) = error_text(None, Some("[fix]\nchek = \"make\"\n"));
    assert!(text.starts_with("unknown key `fix.chek` in "), "{text}");
    assert!(text.ends_with("(known: check, max_rounds, planner_model, coder_model, allow_new_files)"), "{text}");
    let (text, _) = error_text(None, Some("review.modle = 1\n"));
    assert!(text.starts_with("unknown key `review.modle` in "), "dotted keys too: {text}");
    let (text, _) = error_text(None, Some("[reveiw]\nmodel = \"x\"\n"));
    assert!(text.starts_with("unknown key `reveiw` in ") && text.ends_with("(known: review, fix, eval)"), "{text}");
}

#[test]
fn a_repository_cannot_choose_the_gateway() {
    let (text, files) = error_text(None, Some("gateway = \"https://evil.example\"\n"));
    assert_eq!(text, format!("unknown key `gateway` in {} (known: review, fix, eval)", files.repo().display()));
}

#[test]
fn an_unknown_key_in_the_user_file_is_named_with_the_file() {
    let (text, files) = error_text(Some("gatway = \"http://x\"\n"), None);
    let path = files.global().display().to_string();
    assert_eq!(text, format!("unknown key `gatway` in {path} (known: gateway, output, review, fix, eval)"));
    let (text, files) = error_text(Some("[output]\ncolour = \"never\"\n"), None);
    let path = files.global().display().to_string();
    assert_eq!(text, format!("unknown key `output.colour` in {path} (known: format, color)"));
    let (text, _) = error_text(Some("[review]\nmax_finding = 3\n"), None);
    assert!(text.starts_with("unknown key `review.max_finding` in "), "{text}");
}

#[test]
fn a_value_of_the_wrong_type_names_its_key() {
    let (text, files) = error_text(None, Some("[fix]\nmax_rounds = \"3\"\n"));
    let path = files.repo().display().to_string();
    assert_eq!(
        text,
        format!(
            "invalid value for `fix.max_rounds` in {path}: invalid type: string \"3\", expected a whole number of 0 or more"
        )
    );
    let (text, _) = error_text(None, Some("[review]\nignore = \"vendor\"\n"));
    assert!(text.starts_with("invalid value for `review.ignore` in ") && text.ends_with("expected an array"), "{text}");
    let (text, _) = error_text(None, Some("[review]\nignore = [\"a\", 3]\n"));
    assert!(text.starts_with("invalid value for `review.ignore` in "), "{text}");
    let (text, _) = error_text(None, Some("[fix]\nallow_new_files = \"yes\"\n"));
    assert!(text.starts_with("invalid value for `fix.allow_new_files` in "), "{text}");
    let (text, _) = error_text(None, Some("review = 3\n"));
    assert!(text.starts_with("invalid value for `review` in ") && text.ends_with("expected a table"), "{text}");
}

#[test]
fn a_value_outside_its_choices_names_the_key_and_the_choices() {
    let (text, files) = error_text(Some("[output]\nformat = \"xml\"\n"), None);
    let path = files.global().display().to_string();
    assert_eq!(
        text,
        format!(
            "invalid value for `output.format` in {path}: `xml`: expected one of terminal, json, sarif, markdown, github"
        )
    );
    let (text, _) = error_text(Some("[output]\ncolor = \"sometimes\"\n"), None);
    assert!(text.ends_with("`sometimes`: expected one of auto, always, never"), "{text}");
    let (text, _) = error_text(None, Some("[review]\nmin_severity = \"none\"\n"));
    assert!(text.starts_with("invalid value for `review.min_severity`"), "none is not a minimum: {text}");
    let (text, _) = error_text(None, Some("[review]\nfail_on = \"Major\"\n"));
    assert!(text.ends_with("`Major`: expected one of info, minor, major, critical, none"), "{text}");
    let (text, _) = error_text(None, Some("[fix]\nmax_rounds = 0\n"));
    assert!(text.starts_with("invalid value for `fix.max_rounds`"), "{text}");
    let (text, _) = error_text(Some("gateway = \"127.0.0.1:8080\"\n"), None);
    assert!(text.ends_with("expected an http:// or https:// URL"), "{text}");
}

#[test]
fn invalid_toml_gives_the_file_line_and_column() {
    let (text, files) = error_text(None, Some("[review]\nmodel = \n"));
    let prefix = format!("invalid TOML in {} at line 2, column ", files.repo().display());
    assert!(text.starts_with(&prefix), "{text}");
    let (text, _) = error_text(None, Some("[fix]\nmax_rounds = 1\nmax_rounds = 2\n"));
    assert!(text.contains("at line 3"), "a duplicate key is a syntax error: {text}");
}

#[test]
fn bad_environment_values_name_the_variable() {
    let files = Files::new(None, None);
    let text = files.load(&[("PRFIX_FORMAT", "xml")]).expect_err("bad format").to_string();
    assert_eq!(text, "invalid PRFIX_FORMAT=`xml`: expected one of terminal, json, sarif, markdown, github");
    let text = files.load(&[("PRFIX_COLOR", "yes")]).expect_err("bad color").to_string();
    assert_eq!(text, "invalid PRFIX_COLOR=`yes`: expected one of auto, always, never");
    let text = files.load(&[("PRFIX_FAIL_ON", "high")]).expect_err("bad fail_on").to_string();
    assert_eq!(text, "invalid PRFIX_FAIL_ON=`high`: expected one of info, minor, major, critical, none");
    let text = files.load(&[("PRFIX_GATEWAY", "localhost")]).expect_err("bad gateway").to_string();
    assert_eq!(text, "invalid PRFIX_GATEWAY=`localhost`: expected an http:// or https:// URL");
}

#[test]
fn the_config_directory_prefers_prfix_config_dir_then_xdg_then_home() {
    let dir = |pairs: &[(&str, &str)]| {
        let env: HashMap<&str, &str> = pairs.iter().copied().collect();
        config_dir_with(&|name| env.get(name).map(|value| (*value).to_owned()))
    };
    let all = [("PRFIX_CONFIG_DIR", "/p"), ("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")];
    assert_eq!(dir(&all).expect("dir"), Path::new("/p"));
    assert_eq!(dir(&all[1..]).expect("dir"), Path::new("/x/prfix"));
    assert_eq!(dir(&all[2..]).expect("dir"), Path::new("/h/.config/prfix"));
    assert_eq!(dir(&[("XDG_CONFIG_HOME", "relative"), ("HOME", "/h")]).expect("dir"), Path::new("/h/.config/prfix"));
    let error = dir(&[]).expect_err("no home");
    assert_eq!(error.to_string(), "cannot find the configuration directory: set HOME or PRFIX_CONFIG_DIR");
}

#[test]
fn color_choices_read_as_they_are_written() {
    for choice in [ColorChoice::Auto, ColorChoice::Always, ColorChoice::Never] {
        assert_eq!(ColorChoice::from_name(choice.as_str()), Some(choice));
    }
}
