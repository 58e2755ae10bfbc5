//! A corpus of realistic files holding fake secrets (a `.env`, a YAML config, a Django settings
//! module, a Terraform file, an OpenSSH private key, a diff adding secrets), redacted with one vault
//! as the agent does for one task: no secret survives, lines stay put, restore is exact.
//!
//! Every fake secret is built at run time so no secret scanner flags this file.

use std::collections::BTreeMap;

use prfix_engine::redact::samples::{key_body, key_marker, noise};
use prfix_engine::redact::{Redactor, Vault};

const B62: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Files by name, and every secret in them with the rule that must find it.
struct Corpus {
    files: Vec<(&'static str, String)>,
    secrets: Vec<(&'static str, String)>,
}

impl Corpus {
    fn secret(&mut self, rule: &'static str, value: String) -> String {
        self.secrets.push((rule, value.clone()));
        value
    }
}

fn corpus() -> Corpus {
    let mut c = Corpus { files: Vec::new(), secrets: Vec::new() };
    let r62 = |len, seed| noise(len, seed, B62);

    let db = c.secret("url-password", r62(20, 1));
    let cache = c.secret("url-password", r62(18, 2));
    let akid = c.secret("aws-access-key-id", format!("AK{}{}", "IA", noise(16, 3, UPPER)));
    let aws_secret = c.secret("aws-secret-access-key", noise(40, 4, B64));
    let stripe = c.secret("stripe-key", format!("sk_{}_{}", "live", r62(24, 5)));
    let openai = c.secret("openai-key", format!("sk-{}-{}", "proj", r62(48, 6)));
    let hook = c.secret("slack-webhook", format!("T{}/B{}/{}", r62(9, 7), r62(9, 8), r62(24, 9)));
    let session = c.secret("generic-secret-assignment", r62(32, 10));
    let env = format!(
        "# Local development settings\n\
         APP_ENV=production\n\
         DATABASE_URL=postgres://app:{db}@db.internal:5432/app\n\
         REDIS_URL=redis://:{cache}@cache.internal:6379/0\n\
         AWS_ACCESS_KEY_ID={akid}\n\
         AWS_SECRET_ACCESS_KEY={aws_secret}\n\
         STRIPE_SECRET_KEY={stripe}\n\
         OPENAI_API_KEY={openai}\n\
         SLACK_WEBHOOK_URL=https://hooks.slack.com/services/{hook}\n\
         SESSION_SECRET={session}\n\
         DB_PASSWORD=${{VAULT_DB_PASSWORD}}\n\
         LOG_LEVEL=debug\n\
         PORT=8080\n"
    );
    c.files.push((".env", env));

    let db_password = c.secret("generic-secret-assignment", r62(22, 11));
    let ghp = c.secret("github-token", format!("gh{}_{}", "p", r62(36, 12)));
    let glpat = c.secret("gitlab-token", format!("gl{}-{}", "pat", r62(20, 13)));
    let xoxb = c.secret("slack-token", format!("xo{}-{}-{}", "xb", noise(12, 14, b"0123456789"), r62(24, 15)));
    let npm = c.secret("npm-token", format!("np{}_{}", "m", r62(36, 16)));
    let signing = c.secret("generic-secret-assignment", noise(44, 17, B64));
    let client_secret = c.secret("generic-secret-assignment", r62(30, 18));
    let yaml = format!(
        "server:\n  port: 8443\n  tls:\n    cert_file: /etc/tls/cert.pem\n\
         database:\n  host: db.internal\n  user: app\n  password: \"{db_password}\"\n  pool_size: 10\n\
         integrations:\n  github:\n    app_id: 123456\n    token: {ghp}\n  gitlab:\n    token: {glpat}\n\
         \x20 slack:\n    bot_token: {xoxb}\n  npm_token: {npm}\n\
         auth:\n  jwt_signing_key: {signing}\n  client_secret: '{client_secret}'\n\
         \x20 token_url: https://login.corp.internal/oauth2/token\n  max_tokens: 4096\n"
    );
    c.files.push(("config.yaml", yaml));

    let django = c.secret("generic-secret-assignment", format!("django-insecure-{}", r62(40, 19)));
    let ant = c.secret("anthropic-key", format!("sk-{}-api03-{}", "ant", r62(90, 20)));
    let gcp = c.secret("gcp-api-key", format!("AI{}{}", "za", r62(35, 21)));
    let amqp = c.secret("url-password", r62(16, 22));
    let python = format!(
        "import os\n\nDEBUG = False\nSECRET_KEY = '{django}'\n\nDATABASES = {{\n    'default': {{\n\
         \x20       'ENGINE': 'django.db.backends.postgresql',\n        'PASSWORD': os.environ.get('DB_PASSWORD'),\n\
         \x20       'HOST': 'localhost',\n    }}\n}}\n\nANTHROPIC_API_KEY = \"{ant}\"\nGOOGLE_MAPS_KEY = \"{gcp}\"\n\
         SENTRY_TOKEN = os.environ[\"SENTRY_TOKEN\"]\nCELERY_BROKER_URL = \"amqp://celery:{amqp}@rabbit:5672//\"\n"
    );
    c.files.push(("settings.py", python));

    let akid2 = c.secret("aws-access-key-id", format!("AK{}{}", "IA", noise(16, 23, UPPER)));
    let tf_secret = c.secret("generic-secret-assignment", noise(40, 24, B64));
    let azure = c.secret("azure-storage-key", format!("{}==", noise(86, 25, B64)));
    let terraform = format!(
        "provider \"aws\" {{\n  region     = \"eu-west-1\"\n  access_key = \"{akid2}\"\n  secret_key = \"{tf_secret}\"\n}}\n\n\
         variable \"db_password\" {{\n  type      = string\n  sensitive = true\n}}\n\n\
         resource \"aws_db_instance\" \"main\" {{\n  username = \"app\"\n  password = var.db_password\n}}\n\n\
         locals {{\n  storage = \"DefaultEndpointsProtocol=https;AccountName=prfix;AccountKey={azure};EndpointSuffix=core.windows.net\"\n}}\n"
    );
    c.files.push(("main.tf", terraform));

    let body = key_body(5, 26);
    for line in &body {
        c.secret("private-key-block", line.clone());
    }
    let key = format!("{}\n{}\n{}\n", key_marker("BEGIN", "OPENSSH"), body.join("\n"), key_marker("END", "OPENSSH"));
    c.files.push(("id_ed25519", key));

    let jwt = c.secret("jwt", format!("eyJ{}.eyJ{}.{}", r62(30, 27), r62(60, 28), r62(43, 29)));
    let pypi = c.secret("pypi-token", format!("py{}-AgEIcHlwaS5vcmc{}", "pi", r62(70, 30)));
    let pat = c.secret("github-token", format!("github_{}_{}_{}", "pat", r62(22, 31), r62(59, 32)));
    let diff = format!(
        "diff --git a/src/client.ts b/src/client.ts\nindex 3f78685..e3b0c44 100644\n--- a/src/client.ts\n+++ b/src/client.ts\n\
         @@ -1,3 +1,6 @@\n import {{ Octokit }} from \"@octokit/rest\";\n-const token = process.env.GITHUB_TOKEN;\n\
         +const token = \"{ghp}\";\n+const headers = {{ Authorization: `Bearer {jwt}` }};\n+const pypi = \"{pypi}\";\n\
         +const fine = \"{pat}\";\n export const client = new Octokit({{ auth: token }});\n"
    );
    c.files.push(("client.ts.diff", diff));
    c
}

#[test]
fn no_secret_of_the_corpus_survives_redaction() {
    let corpus = corpus();
    let redactor = Redactor::new();
    let mut vault = Vault::default();
    for (name, text) in &corpus.files {
        let redacted = redactor.redact(text, &mut vault);
        for (rule, secret) in &corpus.secrets {
            assert!(!redacted.contains(secret.as_str()), "{name}: the {rule} secret survived:\n{redacted}");
        }
        assert!(!vault.contains_secret(&redacted), "{name}");
    }
}

#[test]
fn redaction_keeps_every_line_and_leaves_lines_without_secrets_alone() {
    let corpus = corpus();
    let mut vault = Vault::default();
    for (name, text) in &corpus.files {
        let redacted = Redactor::new().redact(text, &mut vault);
        assert_eq!(redacted.lines().count(), text.lines().count(), "{name}");
        assert_eq!(redacted.matches('\n').count(), text.matches('\n').count(), "{name}");
        for (before, after) in text.lines().zip(redacted.lines()) {
            let holds_secret = corpus.secrets.iter().any(|(_, secret)| before.contains(secret.as_str()));
            if !holds_secret {
                assert_eq!(before, after, "{name}: a line without a secret changed");
            }
        }
    }
}

#[test]
fn restore_gives_every_file_back_exactly() {
    let corpus = corpus();
    let mut vault = Vault::default();
    let redacted: Vec<String> = corpus.files.iter().map(|(_, text)| Redactor::new().redact(text, &mut vault)).collect();
    for ((name, text), redacted) in corpus.files.iter().zip(&redacted) {
        assert_eq!(&vault.restore(redacted), text, "{name}");
        assert_eq!(&vault.restore_checked(redacted).expect("only issued placeholders"), text, "{name}");
    }
}

#[test]
fn the_vault_counts_each_distinct_secret_once_under_its_rule() {
    let corpus = corpus();
    let mut vault = Vault::default();
    for (_, text) in &corpus.files {
        Redactor::new().redact(text, &mut vault);
    }
    let mut expected: BTreeMap<&str, usize> = BTreeMap::new();
    let mut seen = Vec::new();
    for (rule, secret) in &corpus.secrets {
        if !seen.contains(secret) {
            seen.push(secret.clone());
            *expected.entry(rule).or_default() += 1;
        }
    }
    assert_eq!(vault.count(), seen.len());
    assert_eq!(vault.by_rule(), expected);
}

#[test]
fn a_secret_in_a_file_and_in_a_diff_gets_the_same_placeholder() {
    let corpus = corpus();
    let mut vault = Vault::default();
    let redactor = Redactor::new();
    let find = |name: &str| corpus.files.iter().find(|(n, _)| *n == name).map(|(_, text)| text.clone());
    let yaml = redactor.redact(&find("config.yaml").expect("the YAML file"), &mut vault);
    let diff = redactor.redact(&find("client.ts.diff").expect("the diff"), &mut vault);
    let token_line =
        yaml.lines().find(|line| line.trim_start().starts_with("token: PRFIX_")).expect("github token line");
    let placeholder = token_line.trim_start().trim_start_matches("token: ");
    assert!(diff.contains(&format!("+const token = \"{placeholder}\";")), "{diff}");
}

#[test]
fn redacting_the_corpus_twice_changes_nothing_more() {
    let corpus = corpus();
    let mut vault = Vault::default();
    for (name, text) in &corpus.files {
        let once = Redactor::new().redact(text, &mut vault);
        let count = vault.count();
        assert_eq!(Redactor::new().redact(&once, &mut vault), once, "{name}");
        assert_eq!(vault.count(), count, "{name}");
    }
}
