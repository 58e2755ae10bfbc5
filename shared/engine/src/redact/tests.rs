//! The rule table's positive and negative examples, the placeholder guarantees, and properties on
//! arbitrary text. Fake secrets are built at run time (see `samples`) so no scanner flags this file.

use proptest::prelude::*;

use super::samples::{key_body, key_marker, noise, secret_corpus};
use super::*;

const B62: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn r62(len: usize, seed: u64) -> String {
    noise(len, seed, B62)
}

/// (rule, text, secret): the rule must find the secret in the text.
fn positives() -> Vec<(&'static str, String, String)> {
    let mut cases = secret_corpus();
    let mut add = |rule: &'static str, text: String, secret: String| cases.push((rule, text, secret));

    let body = key_body(3, 100);
    let ssh =
        format!("+{}\n+{}\n+{}\n+{}", key_marker("BEGIN", "OPENSSH"), body[0], body[1], key_marker("END", "OPENSSH"));
    add("private-key-block", ssh, body[1].clone());
    let checksum = format!("={}", noise(4, 101, B62));
    let pgp = format!(
        "{} BLOCK-----\nVersion: GnuPG v2\n\n{}\n{checksum}\n{}",
        key_marker("BEGIN", "PGP").trim_end_matches('-'),
        body[2],
        key_marker("END", "PGP")
    );
    add("private-key-block", pgp.clone(), body[2].clone());
    add("private-key-block", pgp, checksum);
    let yaml =
        format!("tls:\n  key: |\n    {}\n    {}\n    {}", key_marker("BEGIN", "EC"), body[0], key_marker("END", "EC"));
    add("private-key-block", yaml, body[0].clone());
    let python = format!("KEY = (\n    \"{}\\n\"\n    \"{}\\n\"\n)", key_marker("BEGIN", ""), body[1]);
    add("private-key-block", python, body[1].clone());

    let spaced = format!(" {} ", noise(120, 102, B64));
    add(
        "private-key-inline",
        format!("SSH_KEY=\"{}{spaced}{}\"", key_marker("BEGIN", "RSA"), key_marker("END", "RSA")),
        spaced,
    );

    let id = format!("AS{}{}", "IA", noise(16, 103, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"));
    add("aws-access-key-id", format!(r#"{{"AccessKeyId": "{id}", "Expiration": "2030-01-01"}}"#), id);
    let secret = noise(40, 104, B64);
    add("aws-secret-access-key", format!("  aws_secret_access_key: \"{secret}\""), secret);
    let gcp = format!("AI{}{}", "za", noise(35, 105, B62));
    add("gcp-api-key", format!("fetch(`https://maps.googleapis.com/api?key={gcp}&q=x`)"), gcp);
    let sas = format!("{}=", noise(43, 106, B64));
    add(
        "azure-storage-key",
        format!("Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={sas}"),
        sas,
    );
    let pat = format!("github_{}_{}_{}", "pat", r62(22, 107), r62(59, 108));
    add("github-token", format!("export GH_TOKEN={pat}"), pat);
    let ghs = format!("gh{}_{}", "s", r62(36, 109));
    add("github-token", format!("git clone https://x-access-token:{ghs}@github.com/org/repo"), ghs);
    let gitlab = format!("gl{}-{}", "pat", r62(20, 110));
    add(
        "gitlab-token",
        format!("curl --header \"PRIVATE-TOKEN: {gitlab}\" https://gitlab.com/api/v4/projects"),
        gitlab,
    );
    let slack = format!("xo{}-{}-{}", "xp", noise(12, 111, b"0123456789"), r62(32, 112));
    add("slack-token", format!("SLACK_USER_TOKEN={slack}"), slack);
    let hook = format!("T{}/B{}/{}", r62(9, 113), r62(9, 114), r62(24, 115));
    add("slack-webhook", format!("requests.post(\"https://hooks.slack.com/services/{hook}\", json=msg)"), hook);
    let rk = format!("rk_{}_{}", "live", r62(24, 116));
    add("stripe-key", format!("STRIPE_RESTRICTED={rk}"), rk);
    let ant = format!("sk-{}-api03-{}", "ant", r62(90, 117));
    add("anthropic-key", format!("ANTHROPIC_API_KEY={ant}"), ant);
    let legacy = format!("sk-{}", r62(48, 118));
    add("openai-key", format!("const client = new OpenAI({{ apiKey: '{legacy}' }});"), legacy);
    let npm = format!("np{}_{}", "m", r62(36, 119));
    add("npm-token", format!("NODE_AUTH_TOKEN: {npm}"), npm);
    let pypi = format!("py{}-AgEIcHlwaS5vcmc{}", "pi", r62(70, 120));
    add("pypi-token", format!("  password: {pypi}"), pypi);
    let jwt = format!("eyJ{}.eyJ{}.{}", r62(20, 121), r62(60, 122), r62(43, 123));
    add("jwt", format!("Authorization: Bearer {jwt}"), jwt);
    for (seed, scheme) in [(124, "mongodb+srv"), (125, "redis"), (126, "amqp"), (127, "mysql"), (128, "https")] {
        let password = r62(16, seed);
        add("url-password", format!("url = \"{scheme}://svc:{password}@host.internal/x\""), password);
    }
    let redis = r62(18, 129);
    add("url-password", format!("REDIS_URL=redis://:{redis}@cache:6379/0"), redis);
    let basic = format!("{}==", noise(26, 130, B64));
    add("authorization-header", format!("  Authorization: Basic {basic}"), basic);
    let token = r62(40, 131);
    add("authorization-header", format!("headers = {{\"Authorization\": \"Token {token}\"}}"), token);

    let generic = [
        ("API_KEY={}", 140),
        ("export GITHUB_APP_SECRET={}", 141),
        ("client_secret: {}", 142),
        ("  \"apiKey\": \"{}\",", 143),
        ("SECRET_KEY = 'django-insecure-{}'", 144),
        ("  password = \"{}\"", 145),
        ("const accessToken: string = \"{}\";", 146),
        ("api_token: str = \"{}\"", 147),
        ("\tPassword: \"{}\",", 148),
        ("+DB_PASSWORD={}", 149),
        ("spring.datasource.password={}", 150),
    ];
    for (template, seed) in generic {
        let value = r62(20, seed);
        let secret = if template.contains("django") { format!("django-insecure-{value}") } else { value.clone() };
        add("generic-secret-assignment", template.replace("{}", &value), secret);
    }
    let escaped = format!("{}\\\"{}", r62(10, 152), r62(10, 153));
    add("generic-secret-assignment", format!("{{\"password\": \"{escaped}\"}}"), escaped);
    let letters = noise(20, 151, LETTERS);
    add("generic-secret-assignment", format!("password: {letters}"), letters);
    cases
}

/// (rule, text): lookalikes, variables, documentation placeholders; nothing may be redacted.
fn negatives() -> Vec<(&'static str, String)> {
    let body = key_body(1, 200);
    let x = |n: usize| "x".repeat(n);
    vec![
        ("private-key-block", format!("if line.startswith(\"{}\"):\n    {}\n", key_marker("BEGIN", "RSA"), body[0])),
        ("private-key-block", format!("{}\n...\n{}", key_marker("BEGIN", "RSA"), key_marker("END", "RSA"))),
        ("private-key-block", format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----", body[0])),
        ("private-key-block", format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----", body[0])),
        ("private-key-inline", format!("\"-----BEGIN CERTIFICATE-----\\n{}\\n-----END CERTIFICATE-----\"", body[0])),
        ("private-key-inline", format!("\"{}\\n<your key>\\n{}\"", key_marker("BEGIN", ""), key_marker("END", ""))),
        ("aws-access-key-id", format!("aws_access_key_id = AKIA{}", "IOSFODNN7EXAMPLE")),
        ("aws-access-key-id", format!("id = \"AKIA{}\"", "Q7XK2M9PLR4TZ8W")),
        ("aws-access-key-id", format!("XAKIA{}", "Q7XK2M9PLR4TZ8WN")),
        ("aws-secret-access-key", format!("aws_secret_access_key = {}", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")),
        ("aws-secret-access-key", "aws_secret_access_key = ${AWS_SECRET_ACCESS_KEY}".to_owned()),
        ("aws-secret-access-key", format!("aws_secret_access_key={}", x(40))),
        ("gcp-api-key", format!("key=AIza{}", r62(20, 201))),
        ("gcp-api-key", format!("key=AIzaSy{}", "X".repeat(33))),
        ("azure-storage-key", "AccountKey=<storage-account-key>;".to_owned()),
        ("azure-storage-key", "AccountKey=${STORAGE_KEY}".to_owned()),
        ("azure-storage-key", format!("AccountKey={}", "A".repeat(40))),
        ("github-token", format!("GITHUB_TOKEN=ghp_{}", x(36))),
        ("github-token", format!("ghp_{}", r62(20, 202))),
        ("github-token", format!("ghx_{}", r62(36, 203))),
        ("github-token", "commit 3f786850e387550fdab836ed7e6dc881de23001b".to_owned()),
        ("gitlab-token", format!("glpat-{}", x(20))),
        ("gitlab-token", "PRIVATE-TOKEN: glpat-<token>".to_owned()),
        ("slack-token", "SLACK_BOT_TOKEN=xoxb-your-bot-token".to_owned()),
        ("slack-token", format!("xoxz-{}", r62(30, 204))),
        (
            "slack-webhook",
            format!("https://hooks.slack.com/services/{}/{}/{}", "X".repeat(9), "X".repeat(9), "X".repeat(24)),
        ),
        ("slack-webhook", "url: https://hooks.slack.com/services/${SLACK_WEBHOOK_PATH}".to_owned()),
        ("stripe-key", format!("publishable = \"pk_live_{}\"", r62(24, 205))),
        ("stripe-key", format!("sk_live_{}", x(24))),
        ("anthropic-key", "ANTHROPIC_API_KEY=sk-ant-your-api-key-here-please".to_owned()),
        ("openai-key", "pip install sk-learn-compatible-transformer-pipeline".to_owned()),
        ("openai-key", format!("task-{}", r62(30, 206))),
        ("openai-key", "OPENAI_API_KEY=sk-your-openai-api-key-here".to_owned()),
        ("npm-token", "npm_config_registry=https://registry.npmjs.org/".to_owned()),
        ("npm-token", format!("npm_{}", x(36))),
        ("pypi-token", format!("pypi-{}", r62(60, 207))),
        ("pypi-token", "pypi-AgEIcHlwaS5vcmc...".to_owned()),
        ("jwt", "header = \"eyJhbGciOiJIUzI1NiJ9\"".to_owned()),
        ("jwt", "eyJhbGc.eyJzdWI.sig".to_owned()),
        ("jwt", "greeting = base64(\"aGVsbG8gd29ybGQ=\")".to_owned()),
        ("url-password", "DATABASE_URL=postgres://user:${DB_PASSWORD}@localhost/db".to_owned()),
        ("url-password", "postgres://user:password@localhost:5432/db".to_owned()),
        ("url-password", "see https://github.com/org/repo and git@github.com:org/repo.git".to_owned()),
        ("url-password", "mongodb+srv://cluster0.mongodb.net/test?retryWrites=true".to_owned()),
        ("url-password", "dsn = \"postgresql://%s:%s@%s/%s\" % (user, pw, host, db)".to_owned()),
        ("url-password", "https://example.com:8443/path/to@thing".to_owned()),
        ("authorization-header", "Authorization: Bearer <token>".to_owned()),
        ("authorization-header", "curl -H \"Authorization: Bearer $TOKEN\" https://api".to_owned()),
        ("authorization-header", "headers = {\"Authorization\": f\"Bearer {token}\"}".to_owned()),
        ("authorization-header", "headers[\"Authorization\"] = \"Bearer \" + token".to_owned()),
        ("authorization-header", "Bearer authentication tokens are issued by the identity provider".to_owned()),
        ("authorization-header", "Authorization: Bearer PRFIX_REDACTED_3".to_owned()),
        ("generic-secret-assignment", "password = \"changeme\"".to_owned()),
        ("generic-secret-assignment", "DB_PASSWORD=${DB_PASSWORD}".to_owned()),
        ("generic-secret-assignment", "token: \"<your-token>\"".to_owned()),
        ("generic-secret-assignment", "API_KEY = os.environ[\"X\"]".to_owned()),
        ("generic-secret-assignment", "secret = \"xxxxxxxx\"".to_owned()),
        ("generic-secret-assignment", "const token = process.env.TOKEN;".to_owned()),
        ("generic-secret-assignment", "password = None".to_owned()),
        ("generic-secret-assignment", "password = \"\"".to_owned()),
        ("generic-secret-assignment", "api_key = \"PRFIX_REDACTED_3\"".to_owned()),
        ("generic-secret-assignment", "let token = lexer.next_token();".to_owned()),
        ("generic-secret-assignment", "token = get_token_for_installation(installation_id)".to_owned()),
        ("generic-secret-assignment", "max_tokens = 4096".to_owned()),
        ("generic-secret-assignment", "tokenizer = \"bert-base-multilingual-cased\"".to_owned()),
        (
            "generic-secret-assignment",
            "token_url = \"https://login.microsoftonline.com/common/oauth2/v2.0/token\"".to_owned(),
        ),
        ("generic-secret-assignment", "secret_name = \"GITHUB_APP_PRIVATE_KEY\"".to_owned()),
        ("generic-secret-assignment", "password: \"{{ vault_db_password }}\"".to_owned()),
        ("generic-secret-assignment", "password = var.db_password".to_owned()),
        ("generic-secret-assignment", "request_id = \"123e4567-e89b-12d3-a456-426614174000\"".to_owned()),
        ("generic-secret-assignment", "password_min_length = 123456789012".to_owned()),
        ("generic-secret-assignment", "secret_id = \"prod/db-password\"".to_owned()),
        ("generic-secret-assignment", "export DB_PASSWORD".to_owned()),
    ]
}

/// Text every rule must leave alone: UUIDs, SHAs, base64 of words, ordinary code.
fn ordinary_text() -> Vec<&'static str> {
    vec![
        "id: 123e4567-e89b-12d3-a456-426614174000",
        "Merge commit 3f786850e387550fdab836ed7e6dc881de23001b into main",
        "encoded = \"SGVsbG8sIFdvcmxkIQ==\"  # Hello, World!",
        "fn tokenize(input: &str) -> Vec<Token> { input.split(' ').map(Token::from).collect() }",
        "if password.len() < MIN_PASSWORD_LENGTH { return Err(Error::WeakPassword); }",
        "let secret = vault.get(\"db\").await?;",
        "url = f\"https://{host}:{port}/api\"",
        "@@ -1,4 +1,6 @@ fn main() {",
        "sha256 = \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"",
        "",
    ]
}

fn redact(text: &str) -> (String, Vault) {
    let mut vault = Vault::default();
    let redacted = Redactor::new().redact(text, &mut vault);
    (redacted, vault)
}

#[test]
fn the_rule_table_compiles_with_unique_documented_names() {
    let rules = Redactor::new().rules();
    assert_eq!(rules.len(), rules::RULES.len());
    let mut names: Vec<&str> = rules.iter().map(|rule| rule.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), rules.len(), "rule names are unique");
    assert!(rules.iter().all(|rule| !rule.description.is_empty() && !rule.pattern().is_empty()));
}

#[test]
fn every_rule_has_positive_and_negative_examples_and_a_sample() {
    let (positives, negatives, samples) = (positives(), negatives(), secret_corpus());
    for rule in Redactor::new().rules() {
        assert!(positives.iter().any(|(name, ..)| *name == rule.name), "no positive for {}", rule.name);
        assert!(negatives.iter().any(|(name, _)| *name == rule.name), "no negative for {}", rule.name);
        assert_eq!(samples.iter().filter(|(name, ..)| *name == rule.name).count(), 1, "one sample for {}", rule.name);
    }
}

#[test]
fn every_positive_example_is_redacted_by_its_rule_and_restored_exactly() {
    for (rule, text, secret) in positives() {
        let (redacted, vault) = redact(&text);
        assert!(!redacted.contains(&secret), "{rule} left its secret in: {redacted}");
        assert!(vault.by_rule().contains_key(rule), "{rule} not credited for {text}: {:?}", vault.by_rule());
        assert_eq!(redacted.lines().count(), text.lines().count(), "{rule}: line count");
        assert_eq!(vault.restore(&redacted), text, "{rule}: restore");
        assert!(vault.contains_secret(&text) && !vault.contains_secret(&redacted));
    }
}

#[test]
fn no_negative_example_or_ordinary_text_is_touched() {
    let negatives = negatives().into_iter();
    let ordinary = ordinary_text().into_iter().map(|text| ("ordinary", text.to_owned()));
    for (rule, text) in negatives.chain(ordinary) {
        let (redacted, vault) = redact(&text);
        assert_eq!(redacted, text, "{rule} negative was redacted ({:?})", vault.by_rule());
        assert_eq!(vault.count(), 0);
    }
}

#[test]
fn placeholders_are_numbered_per_vault_and_reused_for_the_same_secret() {
    let token = format!("gh{}_{}", "p", r62(36, 300));
    let other = format!("gh{}_{}", "p", r62(36, 301));
    let redactor = Redactor::new();
    let mut vault = Vault::default();
    let file = redactor.redact(&format!("a = \"{token}\"\nb = \"{other}\"\n"), &mut vault);
    let diff = redactor.redact(&format!("+c = \"{token}\"\n"), &mut vault);
    assert_eq!(file, "a = \"PRFIX_REDACTED_1\"\nb = \"PRFIX_REDACTED_2\"\n");
    assert_eq!(diff, "+c = \"PRFIX_REDACTED_1\"\n");
    assert_eq!(vault.count(), 2);
    assert_eq!(vault.by_rule().get("github-token"), Some(&2));
    let mut fresh = Vault::default();
    assert_eq!(redactor.redact(&other, &mut fresh), "PRFIX_REDACTED_1");
}

#[test]
fn a_private_key_keeps_its_begin_and_end_lines_and_every_line_break() {
    let body = key_body(3, 310);
    let (begin, end) = (key_marker("BEGIN", "RSA"), key_marker("END", "RSA"));
    let diff = format!("@@ -0,0 +1,5 @@\n+{begin}\r\n+{}\r\n+{}\r\n+{}\r\n+{end}\r\n", body[0], body[1], body[2]);
    let (redacted, vault) = redact(&diff);
    let expected = format!(
        "@@ -0,0 +1,5 @@\n+{begin}\r\n+PRFIX_REDACTED_1\r\n+PRFIX_REDACTED_2\r\n+PRFIX_REDACTED_3\r\n+{end}\r\n"
    );
    assert_eq!(redacted, expected);
    assert_eq!(vault.by_rule().get("private-key-block"), Some(&3));
    assert_eq!(vault.restore(&redacted), diff);
}

#[test]
fn only_the_password_of_a_url_is_replaced() {
    let password = r62(16, 320);
    let (redacted, _) = redact(&format!("postgres://app:{password}@db.internal:5432/app?sslmode=require"));
    assert_eq!(redacted, "postgres://app:PRFIX_REDACTED_1@db.internal:5432/app?sslmode=require");
}

#[test]
fn placeholder_text_already_in_an_original_is_neither_reissued_nor_restored() {
    let token = format!("gh{}_{}", "o", r62(36, 330));
    let text = format!("docs mention PRFIX_REDACTED_1 here\ntoken = \"{token}\"\n");
    let (redacted, vault) = redact(&text);
    assert_eq!(redacted, "docs mention PRFIX_REDACTED_1 here\ntoken = \"PRFIX_REDACTED_2\"\n");
    assert_eq!(vault.restore(&redacted), text);
    assert!(vault.restore_checked(&redacted).is_ok());
}

#[test]
fn restoring_a_placeholder_the_vault_never_issued_is_refused() {
    let (_, vault) = redact(&format!("API_KEY={}", r62(20, 340)));
    let error = vault.restore_checked("key = PRFIX_REDACTED_7").expect_err("unknown placeholder");
    assert_eq!(error, RedactError::UnknownPlaceholder { placeholder: "PRFIX_REDACTED_7".to_owned() });
    assert!(error.to_string().contains("never issued"));
    assert_eq!(vault.restore("key = PRFIX_REDACTED_7"), "key = PRFIX_REDACTED_7");
    assert!(vault.contains_placeholder("x PRFIX_REDACTED_1 y") && !vault.contains_placeholder("PRFIX_REDACTED_7"));
}

#[test]
fn a_vault_never_prints_its_secrets() {
    let secret = r62(20, 350);
    let (_, vault) = redact(&format!("API_KEY={secret}"));
    let shown = format!("{vault:?}");
    assert!(!shown.contains(&secret) && shown.contains("count: 1"), "{shown}");
}

#[test]
fn every_sample_line_is_redacted_by_its_own_rule() {
    for (rule, line, secret) in secret_corpus() {
        let (redacted, vault) = redact(&line);
        assert!(line.contains(&secret), "{rule}: the sample line holds its secret");
        assert!(!redacted.contains(&secret), "{rule}: {redacted}");
        assert_eq!(vault.by_rule().keys().copied().collect::<Vec<_>>(), [rule], "{rule}: {line}");
    }
}

fn any_line() -> impl Strategy<Value = String> {
    let samples: Vec<String> = secret_corpus().into_iter().map(|(_, line, _)| line).collect();
    let negatives: Vec<String> = negatives().into_iter().map(|(_, text)| text).collect();
    prop_oneof![
        prop::sample::select(samples),
        prop::sample::select(negatives),
        any::<String>(),
        "[A-Za-z0-9_=:\"' +/.@-]{0,60}",
        Just("PRFIX_REDACTED_1".to_owned()),
    ]
}

fn diff_marker() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["", "+", "-", " "])
}

/// Whole lines mixing secrets, lookalikes and arbitrary text, as files and diffs.
fn file_text() -> impl Strategy<Value = String> {
    (prop::collection::vec((diff_marker(), any_line()), 0..12), any::<bool>()).prop_map(|(lines, crlf)| {
        let newline = if crlf { "\r\n" } else { "\n" };
        lines.into_iter().map(|(marker, line)| format!("{marker}{line}")).collect::<Vec<_>>().join(newline)
    })
}

/// The same pieces glued to each other, to digits and to placeholder text.
fn glued_text() -> impl Strategy<Value = String> {
    let separator = prop::sample::select(vec!["\n", "\r\n", "", " ", "7", "=", "\"", "PRFIX_REDACTED_2"]);
    prop::collection::vec((diff_marker(), any_line(), separator), 0..12).prop_map(|parts| {
        parts.into_iter().map(|(marker, line, separator)| format!("{marker}{line}{separator}")).collect()
    })
}

fn line_breaks(text: &str) -> usize {
    text.matches('\n').count()
}

proptest! {
    #[test]
    fn arbitrary_text_is_restored_exactly_with_its_line_breaks(text in any::<String>()) {
        let redactor = Redactor::new();
        let mut vault = Vault::default();
        let redacted = redactor.redact(&text, &mut vault);
        prop_assert_eq!(line_breaks(&redacted), line_breaks(&text));
        prop_assert_eq!(vault.restore(&redacted), text);
        prop_assert_eq!(redactor.redact(&redacted, &mut vault), redacted);
    }

    #[test]
    fn every_secret_of_a_file_or_diff_is_gone_and_restored(text in file_text()) {
        let mut vault = Vault::default();
        let redacted = Redactor::new().redact(&text, &mut vault);
        prop_assert_eq!(line_breaks(&redacted), line_breaks(&text));
        for (rule, line, secret) in secret_corpus() {
            if text.contains(&line) {
                prop_assert!(!redacted.contains(&secret), "{} secret left in {}", rule, redacted);
            }
        }
        prop_assert_eq!(vault.restore(&redacted), text);
    }

    #[test]
    fn glued_text_is_restored_and_redaction_is_idempotent(text in glued_text()) {
        let redactor = Redactor::new();
        let mut vault = Vault::default();
        let redacted = redactor.redact(&text, &mut vault);
        prop_assert_eq!(line_breaks(&redacted), line_breaks(&text));
        prop_assert_eq!(redacted.matches('\r').count(), text.matches('\r').count());
        prop_assert_eq!(vault.restore(&redacted), text.clone());
        let count = vault.count();
        prop_assert_eq!(redactor.redact(&redacted, &mut vault), redacted);
        prop_assert_eq!(vault.count(), count);
    }
}

#[test]
fn huge_lines_are_redacted_in_reasonable_time() {
    let started = std::time::Instant::now();
    let glued = "k=".repeat(300_000);
    let (redacted, _) = redact(&glued);
    assert_eq!(redacted, glued);
    let base64 = noise(1_000_000, 400, B64);
    let (redacted, vault) = redact(&format!("PRIVATE_KEY={base64}\n"));
    assert_eq!(redacted, "PRIVATE_KEY=PRFIX_REDACTED_1\n");
    assert_eq!(vault.count(), 1);
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "took {:?}", started.elapsed());
}
