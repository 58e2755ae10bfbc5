//! Fake secrets, one per rule, for the tests of code that must never let a secret reach a model.
//!
//! Every value is built at run time from a deterministic pseudo-random generator, so this source
//! holds no string a secret scanner would flag. None of them is a real credential.

const BASE62: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const UPPER_DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const DIGITS: &[u8] = b"0123456789";

/// `len` characters of `alphabet`, the same for the same `seed`, with no long runs of one character.
pub fn noise(len: usize, seed: u64, alphabet: &[u8]) -> String {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = String::with_capacity(len);
    let mut previous = None;
    while out.len() < len && !alphabet.is_empty() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let index = usize::try_from(state % alphabet.len() as u64).unwrap_or(0);
        let c = char::from(alphabet[index]);
        if Some(c) != previous || alphabet.len() < 2 {
            out.push(c);
            previous = Some(c);
        }
    }
    out
}

/// A private-key marker line (`-----BEGIN RSA PRIVATE KEY-----`), built so no scanner sees it here.
pub fn key_marker(edge: &str, kind: &str) -> String {
    let label = if kind.is_empty() { String::new() } else { format!("{kind} ") };
    format!("{}{edge} {label}{} {}{}", "-".repeat(5), "PRIVATE", "KEY", "-".repeat(5))
}

/// Base64 key material lines of 64 characters, as in a PEM body.
pub fn key_body(lines: usize, seed: u64) -> Vec<String> {
    (0..lines).map(|i| noise(64, seed.wrapping_add(i as u64), BASE64)).collect()
}

/// One sample per rule of the built-in table: (rule name, a line of code holding a fake secret, the
/// secret). For `private-key-block` the "line" is a three-line key block and the secret its first
/// body line.
pub fn secret_corpus() -> Vec<(&'static str, String, String)> {
    let mut corpus = Vec::new();

    let body = key_body(2, 11);
    let block = format!("{}\n{}\n{}\n{}", key_marker("BEGIN", "RSA"), body[0], body[1], key_marker("END", "RSA"));
    corpus.push(("private-key-block", block, body[0].clone()));

    let inline = format!("\\n{}\\n{}\\n", noise(64, 12, BASE64), noise(40, 13, BASE64));
    let line = format!(r#"  "private_key": "{}{inline}{}\n","#, key_marker("BEGIN", ""), key_marker("END", ""));
    corpus.push(("private-key-inline", line, inline));

    let id = format!("AK{}{}", "IA", noise(16, 14, UPPER_DIGITS));
    corpus.push(("aws-access-key-id", format!("aws_access_key_id = {id}"), id));

    let secret = noise(40, 15, BASE64);
    corpus.push(("aws-secret-access-key", format!("AWS_SECRET_ACCESS_KEY={secret}"), secret));

    let gcp = format!("AI{}{}", "za", noise(35, 16, BASE62));
    corpus.push(("gcp-api-key", format!("const MAPS_KEY = \"{gcp}\";"), gcp));

    let azure = format!("{}==", noise(86, 17, BASE64));
    let line = format!(
        "Storage=DefaultEndpointsProtocol=https;AccountName=prfixdev;AccountKey={azure};EndpointSuffix=core.windows.net"
    );
    corpus.push(("azure-storage-key", line, azure));

    let github = format!("gh{}_{}", "p", noise(36, 18, BASE62));
    corpus.push(("github-token", format!("    token: {github}"), github));

    let gitlab = format!("gl{}-{}", "pat", noise(20, 19, BASE62));
    corpus.push(("gitlab-token", format!("GITLAB_TOKEN={gitlab}"), gitlab));

    let slack = format!("xo{}-{}-{}-{}", "xb", noise(12, 20, DIGITS), noise(13, 21, DIGITS), noise(24, 22, BASE62));
    corpus.push(("slack-token", format!("client = WebClient(token=\"{slack}\")"), slack));

    let hook = format!("T{}/B{}/{}", noise(8, 23, UPPER_DIGITS), noise(8, 24, UPPER_DIGITS), noise(24, 25, BASE62));
    corpus.push(("slack-webhook", format!("webhook_url: https://hooks.slack.com/services/{hook}"), hook));

    let stripe = format!("sk_{}_{}", "live", noise(24, 26, BASE62));
    corpus.push(("stripe-key", format!("stripe.api_key = '{stripe}'"), stripe));

    let anthropic = format!("sk-{}-api03-{}", "ant", noise(93, 27, BASE62));
    corpus.push(("anthropic-key", format!("client = Anthropic(api_key=\"{anthropic}\")"), anthropic));

    let openai = format!("sk-{}-{}", "proj", noise(48, 28, BASE62));
    corpus.push(("openai-key", format!("openai.api_key = \"{openai}\""), openai));

    let npm = format!("np{}_{}", "m", noise(36, 29, BASE62));
    corpus.push(("npm-token", format!("//registry.npmjs.org/:_authToken={npm}"), npm));

    let pypi = format!("py{}-AgEIcHlwaS5vcmc{}", "pi", noise(60, 30, BASE62));
    corpus.push(("pypi-token", format!("password = {pypi}"), pypi));

    let jwt = format!("eyJ{}.eyJ{}.{}", noise(30, 31, BASE62), noise(40, 32, BASE62), noise(43, 33, BASE62));
    corpus.push(("jwt", format!("const session = \"{jwt}\";"), jwt));

    let password = noise(20, 34, BASE62);
    let line = format!("DATABASE_URL=postgres://app:{password}@db.internal:5432/app");
    corpus.push(("url-password", line, password));

    let bearer = noise(40, 35, BASE62);
    let line = format!("curl -H \"Authorization: Bearer {bearer}\" https://api.internal/v1/jobs");
    corpus.push(("authorization-header", line, bearer));

    let generic = noise(24, 36, BASE62);
    corpus.push(("generic-secret-assignment", format!("DB_PASSWORD = \"{generic}\""), generic));

    corpus
}
