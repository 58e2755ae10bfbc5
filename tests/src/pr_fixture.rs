//! Pull requests of real size, made with real `git`: a generated Python project (a package of
//! modules with classes, methods, docstrings and tests) and a branch that rewrites, adds and removes
//! functions across it, the way a large refactoring does.
//!
//! The generator is deterministic (a seeded PRNG), so a failure reproduces. Sizes are not
//! promised by construction: [`Branch::numstat`] reads them back from git, and the tests assert
//! that a fixture is at least as large as what they claim to cover.

use crate::git::Repo;

/// A tiny deterministic generator (SplitMix64): fixtures must be the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const NOUNS: &[&str] = &[
    "order", "invoice", "customer", "payment", "ledger", "account", "session", "token", "report", "shipment", "refund",
    "basket", "coupon", "tenant", "webhook", "schedule", "export", "metric", "audit", "profile",
];
const VERBS: &[&str] =
    &["load", "save", "validate", "compute", "render", "merge", "split", "apply", "resolve", "sync", "parse", "emit"];

/// One function of a module, as lines without a trailing newline.
fn function(rng: &mut Rng, name: &str, indent: &str, version: u32) -> Vec<String> {
    let noun = rng.pick(NOUNS);
    let other = rng.pick(NOUNS);
    let mut lines = vec![
        format!("{indent}def {name}(self, {noun}, {other}=None, *, strict=False):"),
        format!("{indent}    \"\"\"{} the {noun} against the {other} (v{version}).", capital(rng.pick(VERBS))),
        String::new(),
        format!("{indent}    Raises ValueError when the {noun} is incomplete and strict is set."),
        format!("{indent}    \"\"\""),
        format!("{indent}    if {noun} is None:"),
        format!("{indent}        raise ValueError(\"{noun} is required\")"),
        format!("{indent}    result = {{}}"),
    ];
    let body = 6 + rng.below(12);
    for i in 0..body {
        let field = rng.pick(NOUNS);
        lines.push(match (i + version as usize) % 6 {
            0 => format!("{indent}    result[\"{field}_{i}\"] = getattr({noun}, \"{field}\", None)"),
            1 => format!("{indent}    if strict and not result.get(\"{field}_{}\"):", i.saturating_sub(1)),
            2 => format!("{indent}        log.warning(\"missing %s on %r\", \"{field}\", {noun})"),
            3 => format!(
                "{indent}    total_{i} = sum(item.amount for item in getattr({other} or {noun}, \"items\", []))"
            ),
            4 => format!("{indent}    result[\"total_{}\"] = round(total_{} * {}.{:02}, 2)", i - 1, i - 1, version, i),
            _ => format!("{indent}    self._cache.setdefault(\"{field}\", []).append(result)"),
        });
    }
    lines.push(format!("{indent}    return result"));
    lines.push(String::new());
    lines
}

fn capital(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}

/// A module: a header, then `functions` methods of one class.
struct Module {
    path: String,
    header: Vec<String>,
    /// Each function's lines.
    functions: Vec<Vec<String>>,
}

impl Module {
    fn generate(rng: &mut Rng, path: String, class: &str, functions: usize) -> Self {
        let header = vec![
            format!("\"\"\"{class}: generated fixture module.\"\"\""),
            String::new(),
            "import logging".to_owned(),
            "from decimal import Decimal".to_owned(),
            String::new(),
            "log = logging.getLogger(__name__)".to_owned(),
            String::new(),
            String::new(),
            format!("class {class}:"),
            "    def __init__(self):".to_owned(),
            "        self._cache = {}".to_owned(),
            String::new(),
        ];
        let functions = (0..functions)
            .map(|i| {
                let name = format!("{}_{}_{i}", rng.pick(VERBS), rng.pick(NOUNS));
                function(rng, &name, "    ", 1)
            })
            .collect();
        Self { path, header, functions }
    }

    fn text(&self) -> String {
        let mut out = String::new();
        for line in self.header.iter().chain(self.functions.iter().flatten()) {
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    fn lines(&self) -> usize {
        self.header.len() + self.functions.iter().map(Vec::len).sum::<usize>()
    }

    /// Rewrites about `rewrite` in 10 functions, removes `remove` in 10 and adds `add` new ones per
    /// 10 existing, as a refactoring branch does.
    fn edit(&mut self, rng: &mut Rng, rewrite: usize, remove: usize, add: usize) {
        let mut edited = Vec::new();
        for (i, existing) in std::mem::take(&mut self.functions).into_iter().enumerate() {
            let roll = rng.below(10);
            if roll < remove {
                continue;
            }
            if roll < remove + rewrite {
                // Keep the signature and docstring, change the body.
                let name =
                    existing[0].trim_start().trim_start_matches("def ").split('(').next().unwrap_or("f").to_owned();
                let mut new = function(rng, &name, "    ", 2);
                new[0] = existing[0].clone();
                edited.push(new);
            } else {
                edited.push(existing);
            }
            if rng.below(10) < add {
                let name = format!("{}_{}_new_{i}", rng.pick(VERBS), rng.pick(NOUNS));
                edited.push(function(rng, &name, "    ", 3));
            }
        }
        self.functions = edited;
    }
}

/// A branch of a generated project, committed with real git.
pub struct Branch {
    /// The repository: `main` at the base commit's parent state, HEAD on the branch.
    pub repo: Repo,
    /// The base commit.
    pub base: String,
}

/// Lines added and removed, and files changed, as `git diff --numstat` counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Numstat {
    /// Files changed.
    pub files: usize,
    /// Lines added.
    pub added: usize,
    /// Lines removed.
    pub removed: usize,
}

impl Branch {
    /// `git diff --numstat base..HEAD`, summed; `only` limits it to one path.
    pub fn numstat(&self, only: Option<&str>) -> Numstat {
        let range = format!("{}..HEAD", self.base);
        let mut args = vec!["diff", "--numstat", range.as_str()];
        if let Some(path) = only {
            args.extend(["--", path]);
        }
        let mut stat = Numstat::default();
        for line in self.repo.git(&args).lines() {
            let mut fields = line.split('\t');
            let added = fields.next().and_then(|n| n.parse::<usize>().ok()).unwrap_or(0);
            let removed = fields.next().and_then(|n| n.parse::<usize>().ok()).unwrap_or(0);
            stat.files += 1;
            stat.added += added;
            stat.removed += removed;
        }
        stat
    }

    /// Lines of a file at HEAD.
    pub fn lines_of(&self, path: &str) -> usize {
        self.repo.read(path).lines().count()
    }
}

/// The large module of [`refactoring_branch`], over 2,000 lines.
pub const LARGE_MODULE: &str = "shop/ledger/core.py";

/// A project of 86 modules (one of them over 2,000 lines) and a branch that changes 84 of them
/// (over +9,000 −3,400 lines in all), and 2 new test modules.
pub fn refactoring_branch() -> Branch {
    let mut rng = Rng(0x0005_eed0_f9e7_u64);
    let repo = Repo::init();
    let mut modules: Vec<Module> = Vec::new();
    modules.push(Module::generate(&mut rng, LARGE_MODULE.to_owned(), "Ledger", 125));
    for i in 0..85 {
        let area = NOUNS[i % NOUNS.len()];
        let path = format!("shop/{area}/module_{i:02}.py");
        let functions = 14 + rng.below(8);
        modules.push(Module::generate(&mut rng, path, &format!("{}{i}", capital(area)), functions));
    }
    repo.write("README.md", "# shop\n\nA generated fixture project.\n");
    repo.write("poetry.lock", "# lock\n");
    for module in &modules {
        repo.write(&module.path, &module.text());
    }
    repo.commit("base");
    let base = repo.git(&["rev-parse", "HEAD"]).trim().to_owned();
    repo.git(&["checkout", "-q", "-b", "refactor"]);
    for (i, module) in modules.iter_mut().enumerate() {
        if i == 0 {
            module.edit(&mut rng, 2, 1, 2);
        } else if i % 43 != 42 {
            module.edit(&mut rng, 2, 1, 3);
        } else {
            continue;
        }
        repo.write(&module.path, &module.text());
    }
    for t in 0..2 {
        let test = Module::generate(&mut rng, format!("tests/test_generated_{t}.py"), &format!("TestGenerated{t}"), 20);
        repo.write(&test.path, &test.text());
    }
    repo.write("poetry.lock", "# lock\nversion = 2\n");
    repo.commit("refactor the shop");
    debug_assert!(modules[0].lines() > 2000);
    Branch { repo, base }
}
