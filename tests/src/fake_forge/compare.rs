//! Two commits of a real repository compared as a forge's compare API answers: the commits one has
//! that the other has not, both ways, and the diff from their merge base (`git diff base...head`).
//! The fakes answer their compare endpoints from these (`add_history` of [`super::FakeGitHub`],
//! [`super::FakeGitLab`] and [`super::FakeGitea`]).

use crate::git::Repo;

/// `base` compared with `head`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    /// The commit compared from.
    pub base: String,
    /// The commit compared to.
    pub head: String,
    /// Commits of `head` that `base` has not (`git rev-list base..head`), newest first.
    pub ahead: Vec<String>,
    /// Commits of `base` that `head` has not.
    pub behind: Vec<String>,
    /// `git diff base...head`: from their merge base to `head`.
    pub diff: String,
    /// The files each commit of `ahead` touches, in the same order.
    pub touched: Vec<Vec<String>>,
}

impl Compare {
    /// Compares `base` with `head` in `repo`.
    pub fn of(repo: &Repo, base: &str, head: &str) -> Self {
        let list = |range: String| -> Vec<String> {
            repo.git(&["rev-list", &range]).lines().map(str::to_owned).filter(|l| !l.is_empty()).collect()
        };
        let ahead = list(format!("{base}..{head}"));
        let touched = ahead
            .iter()
            .map(|sha| {
                let names = repo.git(&["diff-tree", "--no-commit-id", "--name-only", "-r", sha]);
                names.lines().map(str::to_owned).filter(|l| !l.is_empty()).collect()
            })
            .collect();
        Self {
            base: base.to_owned(),
            head: head.to_owned(),
            ahead,
            behind: list(format!("{head}..{base}")),
            diff: repo.git(&["diff", "--no-color", &format!("{base}...{head}")]),
            touched,
        }
    }

    /// Every ordered pair of `commits` compared.
    pub fn all(repo: &Repo, commits: &[&str]) -> Vec<Self> {
        let mut out = Vec::new();
        for base in commits {
            for head in commits {
                if base != head {
                    out.push(Self::of(repo, base, head));
                }
            }
        }
        out
    }
}
