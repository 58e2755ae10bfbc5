//! Suggestion blocks across forges. prfix writes GitHub's form, a ```` ```suggestion ```` fence that
//! replaces every line the comment spans. GitLab's plain ```` ```suggestion ```` replaces only the
//! line the comment sits on; a range is written ```` ```suggestion:-N+0 ```` (N lines above it).

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
