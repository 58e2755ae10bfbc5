//! Re-indenting REPLACE lines when the model's indentation differs from the file's.
//!
//! The lines that correspond between the SEARCH and the file give a map from the model's
//! indentation widths to the file's indentation strings; a REPLACE line at a known width takes
//! the file's string, a deeper or shallower one is extrapolated from the nearest known width,
//! in tabs when the file indents with tabs.

use super::lines::indentation;

/// How many columns a tab is worth in the model's text.
const MODEL_TAB_COLUMNS: usize = 4;

/// Maps the model's indentation to the file's.
pub(super) struct Reindenter {
    /// Model indentation width → the file's indentation for it, sorted by width.
    map: Vec<(usize, String)>,
    /// Whether the file indents these lines with tabs.
    file_tabs: bool,
    /// Columns per indentation level in the model's text (the width one tab stands for).
    unit: usize,
    /// File columns per model column (2 when the model halved the file's indentation).
    scale: usize,
}

impl Reindenter {
    /// A re-indenter from corresponding `(model line, file line)` pairs, every model line (to
    /// find the model's indentation unit) and the matched file lines (to see tabs or spaces).
    pub(super) fn new<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        model_lines: impl IntoIterator<Item = &'a str>,
        window: &[&str],
    ) -> Self {
        let file_tabs = window.iter().any(|l| indentation(l).contains('\t'));
        let divisor = model_lines
            .into_iter()
            .filter(|l| !l.trim().is_empty())
            .map(|l| columns(indentation(l), MODEL_TAB_COLUMNS))
            .filter(|w| *w > 0)
            .fold(0, gcd);
        let unit = if (2..=8).contains(&divisor) { divisor } else { MODEL_TAB_COLUMNS };
        let mut map: Vec<(usize, String)> = Vec::new();
        for (model, file) in pairs {
            if model.trim().is_empty() || file.trim().is_empty() {
                continue;
            }
            let width = columns(indentation(model), MODEL_TAB_COLUMNS);
            if !map.iter().any(|(w, _)| *w == width) {
                map.push((width, indentation(file).to_string()));
            }
        }
        map.sort_by_key(|(w, _)| *w);
        let mut reindenter = Reindenter { map, file_tabs, unit, scale: 1 };
        reindenter.scale = reindenter.detect_scale();
        reindenter
    }

    /// `line` with its indentation translated to the file's.
    pub(super) fn apply(&self, line: &str) -> String {
        let rest = line.trim_start();
        if rest.is_empty() {
            return String::new();
        }
        let width = columns(indentation(line), MODEL_TAB_COLUMNS);
        if let Some((_, file)) = self.map.iter().find(|(w, _)| *w == width) {
            return format!("{file}{rest}");
        }
        if let Some((known, file)) = self.map.iter().rev().find(|(w, _)| *w < width) {
            let extra = (width - known).saturating_mul(self.scale);
            return format!("{file}{}{rest}", self.render(extra));
        }
        if let Some((known, file)) = self.map.first() {
            let less = (known - width).saturating_mul(self.scale);
            let cols = self.file_columns(file).saturating_sub(less);
            return format!("{}{rest}", self.render(cols));
        }
        line.to_string()
    }

    /// File columns per model column, from the widest and narrowest known widths.
    fn detect_scale(&self) -> usize {
        let (Some((m0, f0)), Some((m1, f1))) = (self.map.first(), self.map.last()) else { return 1 };
        let (model_span, file_span) = (m1 - m0, self.file_columns(f1).saturating_sub(self.file_columns(f0)));
        if self.file_tabs || model_span == 0 || file_span % model_span != 0 {
            return 1;
        }
        (file_span / model_span).clamp(1, 4)
    }

    /// The width of a file indentation, a tab counting one model level.
    fn file_columns(&self, indent: &str) -> usize {
        columns(indent, self.unit)
    }

    /// `cols` columns of indentation in the file's style.
    fn render(&self, cols: usize) -> String {
        if self.file_tabs {
            format!("{}{}", "\t".repeat(cols / self.unit), " ".repeat(cols % self.unit))
        } else {
            " ".repeat(cols)
        }
    }
}

/// The width of a model line's indentation, a tab counting [`MODEL_TAB_COLUMNS`].
pub(super) fn model_width(line: &str) -> usize {
    columns(indentation(line), MODEL_TAB_COLUMNS)
}

/// The width of whitespace `ws`, a tab counting `tab` columns.
fn columns(ws: &str, tab: usize) -> usize {
    ws.chars().map(|c| if c == '\t' { tab } else { 1 }).fold(0, usize::saturating_add)
}

/// The greatest common divisor.
fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces_from_the_model_become_tabs_in_a_tab_indented_file() {
        let search = ["    x := 1", "    if x {"];
        let window = ["\tx := 1", "\tif x {"];
        let replace = ["    x := 2", "    if x {", "        y()", "    }"];
        let r = Reindenter::new(search.into_iter().zip(window), search.into_iter().chain(replace), &window);
        let out: Vec<String> = replace.iter().map(|l| r.apply(l)).collect();
        assert_eq!(out, vec!["\tx := 2", "\tif x {", "\t\ty()", "\t}"]);
    }

    #[test]
    fn a_halved_indentation_is_scaled_back_up() {
        let search = ["def f():", "  return 1"];
        let window = ["    def f():", "        return 1"];
        let replace = ["def f():", "  if x:", "    return 2"];
        let r = Reindenter::new(search.into_iter().zip(window), search.into_iter().chain(replace), &window);
        let out: Vec<String> = replace.iter().map(|l| r.apply(l)).collect();
        assert_eq!(out, vec!["    def f():", "        if x:", "            return 2"]);
    }

    #[test]
    fn a_line_shallower_than_every_known_width_is_dedented() {
        let search = ["        a()"];
        let window = ["    a()"];
        let replace = ["    b()", "        a()"];
        let r = Reindenter::new(search.into_iter().zip(window), search.into_iter().chain(replace), &window);
        assert_eq!(r.apply(replace[0]), "b()");
        assert_eq!(r.apply(replace[1]), "    a()");
    }
}
