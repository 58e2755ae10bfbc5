//! Suggestion blocks across forges. prfix writes GitHub's form, a ```` ```suggestion ```` fence that
//! replaces every line the comment spans. GitLab's plain ```` ```suggestion ```` replaces only the
//! line the comment sits on; a range is written ```` ```suggestion:-N+0 ```` (N lines above it).
//! Gitea and Forgejo have no suggestions: the block shows as code there, the lines to write.

use crate::error::ForgeError;
use crate::{Forge, PostedReview, PullRequest, Review};

impl Forge {
    /// Posts `review` (a fix's suggestions) on `pr` whatever prfix posted before on its head (unlike
    /// [`Forge::post_review`], which posts one review per head), `marker` ending it. GitLab, which has
    /// no review object, gets the body as a note after the comments' discussions; a review without
    /// comments is posted as a comment.
    pub async fn post_suggestions(
        &self,
        pr: &PullRequest,
        review: &Review,
        marker: &str,
    ) -> Result<PostedReview, ForgeError> {
        let mut review = review.clone();
        review.body = format!("{}\n\n{marker}\n", review.body.trim_end());
        if review.comments.is_empty() {
            self.reply(pr, &review.body).await?;
            return Ok(PostedReview { url: None, comments: 0, fallback: None, already: false });
        }
        match self {
            Self::GitHub(f) => f.post_review(pr, &review).await,
            Self::Gitea(f) => f.post_review(pr, &review).await,
            Self::GitLab(f) => {
                let posted = f.post_review(pr, &review, marker).await?;
                self.reply(pr, &review.body).await?;
                Ok(posted)
            }
        }
    }
}

/// `body` with each suggestion fence opening rewritten for GitLab, for a comment on the last of
/// `above + 1` lines.
pub(crate) fn for_gitlab(body: &str, above: u32) -> String {
    if above == 0 {
        return body.to_owned();
    }
    let mut out = String::with_capacity(body.len() + 8);
    for line in body.split_inclusive('\n') {
        let (text, end) = match line.strip_suffix('\n') {
            Some(text) => (text, "\n"),
            None => (line, ""),
        };
        let ticks = text.len() - text.trim_start_matches('`').len();
        if ticks >= 3 && &text[ticks..] == "suggestion" {
            out.push_str(&format!("{text}:-{above}+0{end}"));
        } else {
            out.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::for_gitlab;

    #[test]
    fn a_range_suggestion_names_the_lines_above_for_gitlab() {
        let body = "**SQL injection**\n\n````suggestion\nx = 1\n````\n\n```python\ny\n```";
        assert_eq!(for_gitlab(body, 2), "**SQL injection**\n\n````suggestion:-2+0\nx = 1\n````\n\n```python\ny\n```");
        assert_eq!(for_gitlab(body, 0), body);
        assert_eq!(for_gitlab("```suggestion", 1), "```suggestion:-1+0");
    }
}
