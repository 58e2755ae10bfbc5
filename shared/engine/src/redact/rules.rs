//! The one table of secret-finding rules, and its compiled form.
//!
//! Each rule names a capture group holding the secret: only that text is replaced, so the
//! surrounding code (the variable name, the URL's user and host) stays readable for the model.
//! No pattern can match a line break, so redaction never changes line numbers; multi-line private
//! keys are handled line by line (see `pem`).

use std::sync::LazyLock;

use regex::Regex;

/// How a rule's matches are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A token whose format identifies it (a prefix, a fixed shape).
    Token,
    /// `name = value`: group 1 is the name, which must say it holds a secret; the value must not be
    /// code (a variable, an environment lookup) and must look random.
    Assignment,
    /// The body lines of a multi-line private key; the pattern matches the BEGIN line and captures
    /// what precedes the marker in group 1.
    KeyBlock,
}

/// One rule as written in the table.
pub(super) struct RuleDef {
    /// Short stable name, used in counts and reports.
    pub name: &'static str,
    /// What the rule finds, for documentation.
    pub description: &'static str,
    /// The regular expression (must never match a line break).
    pub pattern: &'static str,
    /// The secret is the first capture group, numbered this or higher, that took part in the match
    /// (so alternatives can each capture their own form).
    pub secret_group: usize,
    /// Minimum Shannon entropy in bits per character (lowered for short values, see `filters`).
    pub min_entropy: Option<f64>,
    /// Minimum secret length in characters.
    pub min_len: usize,
    /// The secret must hold both a letter and a digit.
    pub needs_digit: bool,
    /// How matches are judged.
    pub kind: Kind,
}

const fn token(name: &'static str, description: &'static str, pattern: &'static str) -> RuleDef {
    RuleDef {
        name,
        description,
        pattern,
        secret_group: 1,
        min_entropy: None,
        min_len: 1,
        needs_digit: false,
        kind: Kind::Token,
    }
}

/// The built-in rules, most specific first: when two rules find overlapping secrets the earlier
/// rule is credited.
pub(super) const RULES: &[RuleDef] = &[
    RuleDef {
        name: "private-key-block",
        description: "The body lines of a PEM, OpenSSH or PGP private key block; BEGIN and END lines are kept",
        pattern: r#"^(.*?)-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?:\\n|["'`,+ \t\\])*$"#,
        secret_group: 1,
        min_entropy: None,
        min_len: 1,
        needs_digit: false,
        kind: Kind::KeyBlock,
    },
    RuleDef {
        min_len: 16,
        ..token(
            "private-key-inline",
            "A private key written on one line with `\\n` escapes, as in a GCP service-account JSON `private_key`",
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----((?:\\[nr]|[A-Za-z0-9+/=:,. \t-])+?)-----END ",
        )
    },
    token(
        "aws-access-key-id",
        "An AWS access key id (AKIA…, ASIA…, ABIA…, ACCA… and 16 more characters)",
        r"\b((?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16})\b",
    ),
    RuleDef {
        min_entropy: Some(3.5),
        ..token(
            "aws-secret-access-key",
            "An AWS secret access key (40 characters) assigned to an aws_secret_access_key-like name",
            r#"(?i)aws_?secret_?(?:access_?)?key["']?[ \t]*(?::=|=>|=|:)[ \t]*["']?([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)"#,
        )
    },
    token(
        "gcp-api-key",
        "A Google Cloud API key (AIza and 35 more characters)",
        r"\b(AIza[0-9A-Za-z_-]{35})(?:[^0-9A-Za-z_-]|$)",
    ),
    RuleDef {
        min_entropy: Some(3.5),
        ..token(
            "azure-storage-key",
            "An Azure storage account or Service Bus key in a connection string (AccountKey=…, SharedAccessKey=…)",
            r"(?i)\b(?:AccountKey|SharedAccessKey)[ \t]*=[ \t]*([A-Za-z0-9+/]{20,}={0,2})",
        )
    },
    token(
        "github-token",
        "A GitHub token: personal, OAuth, user-to-server, server-to-server, refresh or fine-grained",
        r"\b((?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{50,255})\b",
    ),
    token("gitlab-token", "A GitLab personal access token (glpat-…)", r"\b(glpat-[A-Za-z0-9_-]{20,})"),
    token(
        "slack-token",
        "A Slack bot, app, user or refresh token (xoxb-, xoxa-, xoxp-, xoxr-, xoxs-)",
        r"\b(xox[baprs]-[A-Za-z0-9-]{10,})",
    ),
    RuleDef {
        min_len: 20,
        ..token(
            "slack-webhook",
            "The secret path of a Slack incoming webhook URL (hooks.slack.com/services/…)",
            r"hooks\.slack\.com/(?:services|workflows|triggers)/([A-Za-z0-9_/+-]+)",
        )
    },
    token(
        "stripe-key",
        "A Stripe secret or restricted key (sk_live_, rk_live_, and their _test_ forms)",
        r"\b((?:sk|rk)_(?:live|test)_[A-Za-z0-9]{20,})",
    ),
    token("anthropic-key", "An Anthropic API key (sk-ant-…)", r"\b(sk-ant-[A-Za-z0-9_-]{20,})"),
    RuleDef {
        min_entropy: Some(3.5),
        needs_digit: true,
        ..token(
            "openai-key",
            "An OpenAI-style API key (sk-…, sk-proj-…), random enough not to be a kebab-case name",
            r"\b(sk-[A-Za-z0-9_-]{20,})",
        )
    },
    token("npm-token", "An npm access token (npm_ and 36 characters)", r"\b(npm_[A-Za-z0-9]{36})\b"),
    token("pypi-token", "A PyPI upload token (pypi-AgEIcHlwaS5vcmc…)", r"\b(pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,})"),
    token(
        "jwt",
        "A JSON Web Token (eyJ….eyJ….signature)",
        r"\b(eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})",
    ),
    RuleDef {
        min_len: 3,
        ..token(
            "url-password",
            "The password of a URL with credentials (postgres, mysql, mongodb(+srv), redis, amqp, http(s), …); user and host are kept",
            r#"(?i)\b(?:postgres(?:ql)?|mysql|mariadb|mssql|sqlserver|mongodb(?:\+srv)?|rediss?|amqps?|https?|ftps?|sftp|smtps?|ldaps?|jdbc:[a-z]+)://[^:@/\s?#"'`<>]*:([^/\s?#"'`<>]+)@"#,
        )
    },
    RuleDef {
        min_len: 12,
        min_entropy: Some(3.3),
        ..token(
            "authorization-header",
            "The credentials of an `Authorization: Bearer|Basic|Token …` header, or of a bare `Bearer …`",
            r#"(?i)\b(?:authorization["']?\]?[ \t]*[:=][ \t]*["']?(?:bearer|basic|token)|bearer)[ \t]+([A-Za-z0-9._~+/-]+=*)"#,
        )
    },
    RuleDef {
        name: "generic-secret-assignment",
        description: "A value assigned to a name saying password, secret, token, api key, private key… (code, YAML, JSON, .env), when it looks random",
        pattern: r#"([A-Za-z_][A-Za-z0-9_.-]*)["']?(?:[ \t]*:[ \t]*[A-Za-z_][A-Za-z0-9_.\[\]|]*)?[ \t]*(?::=|=>|=|:)[ \t]*(?:"((?:[^"\\\r\n]|\\[^\r\n])*)"|'((?:[^'\\\r\n]|\\[^\r\n])*)'|`([^`\r\n]*)`|([^\s"'`,;#()\[\]{}<>]+))"#,
        secret_group: 2,
        min_entropy: Some(3.5),
        min_len: 12,
        needs_digit: false,
        kind: Kind::Assignment,
    },
];

/// A compiled rule of the built-in table.
#[derive(Debug)]
pub struct Rule {
    /// Short stable name (`github-token`, `generic-secret-assignment`, …), used in counts.
    pub name: &'static str,
    /// What the rule finds.
    pub description: &'static str,
    pub(super) regex: Regex,
    pub(super) secret_group: usize,
    pub(super) min_entropy: Option<f64>,
    pub(super) min_len: usize,
    pub(super) needs_digit: bool,
    pub(super) kind: Kind,
}

impl Rule {
    /// The regular expression the rule matches, for documentation.
    pub fn pattern(&self) -> &str {
        self.regex.as_str()
    }
}

/// The table compiled once per process.
pub(super) static COMPILED: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    RULES
        .iter()
        .map(|def| Rule {
            name: def.name,
            description: def.description,
            regex: Regex::new(def.pattern)
                .expect("the built-in rule patterns are valid regexes (a unit test compiles them)"),
            secret_group: def.secret_group,
            min_entropy: def.min_entropy,
            min_len: def.min_len,
            needs_digit: def.needs_digit,
            kind: def.kind,
        })
        .collect()
});
