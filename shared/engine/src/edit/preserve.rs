//! The lines that take a matched window's place when the match had to ignore indentation (or
//! was fuzzy): only the lines the edit changes are written, every other line stays as the file
//! has it, byte for byte.
//!
//! The SEARCH and REPLACE parts are compared line by line as the model wrote them. A line the
//! model left unchanged is the file's line (its indentation, trailing spaces and all); a new or
//! changed line is re-indented from the model's indentation to the file's. That needs a map from
//! the model's indentation widths to the file's that is consistent: one file indentation per
//! model width, deeper in the model meaning deeper in the file. When the map is not consistent
//! (the model flattened nested lines, as happens with YAML), a changed line can still take the
//! indentation of the file line it replaces one for one; any other new line is refused, since
//! where it belongs in the nesting cannot be derived.

use similar::{Algorithm, DiffOp, capture_diff_slices};

use super::lines::indentation;
use super::reindent::{Reindenter, model_width};

/// The replacement for `window`, or why its indentation cannot be derived.
///
/// `aligned[i]` is the window line that SEARCH line `i` stands for, if any (every line for a
/// match that ignored indentation; the lines that correspond for a fuzzy match).
pub(super) fn replacement(
    search: &[String],
    replace: &[String],
    window: &[&str],
    aligned: &[Option<usize>],
) -> Result<Vec<String>, String> {
    let partner = |i: usize| aligned.get(i).copied().flatten().and_then(|j| window.get(j).copied());
    let pairs: Vec<(&str, &str)> =
        (0..search.len()).filter_map(|i| partner(i).map(|line| (search[i].as_str(), line))).collect();
    let consistent = inconsistency(&pairs).is_none();
    let reindenter = Reindenter::new(pairs.iter().copied(), search.iter().chain(replace).map(String::as_str), window);
    // A new line: re-indented by the map when it holds, else like the line it replaces.
    let new_line = |line: &str, replaces: Option<usize>| -> Result<String, String> {
        if line.trim().is_empty() {
            return Ok(String::new());
        }
        if consistent {
            return Ok(reindenter.apply(line));
        }
        let old = replaces.and_then(|i| search.get(i).map(|s| (s, partner(i))));
        match old {
            Some((old, Some(file_line))) if model_width(old) == model_width(line) && !file_line.trim().is_empty() => {
                Ok(format!("{}{}", indentation(file_line), line.trim_start()))
            }
            _ => Err(format!(
                "{} so where the new line `{}` belongs cannot be derived",
                inconsistency(&pairs).unwrap_or_default(),
                line.trim()
            )),
        }
    };
    let mut out = Vec::with_capacity(replace.len());
    for op in capture_diff_slices(Algorithm::Myers, search, replace) {
        match op {
            DiffOp::Equal { old_index, new_index, len } => {
                for k in 0..len {
                    match partner(old_index + k) {
                        Some(file_line) => out.push(file_line.to_string()),
                        None => out.push(new_line(&replace[new_index + k], None)?),
                    }
                }
            }
            DiffOp::Delete { .. } => {}
            DiffOp::Insert { new_index, new_len, .. } => {
                for line in &replace[new_index..new_index + new_len] {
                    out.push(new_line(line, None)?);
                }
            }
            DiffOp::Replace { old_index, old_len, new_index, new_len } => {
                for k in 0..new_len {
                    let replaces = (old_len == new_len).then_some(old_index + k);
                    out.push(new_line(&replace[new_index + k], replaces)?);
                }
            }
        }
    }
    Ok(out)
}

/// Why the `(model line, file line)` pairs give no consistent indentation map, if they do not:
/// one model width standing for two file indentations, or a deeper model line that is not
/// deeper in the file.
fn inconsistency(pairs: &[(&str, &str)]) -> Option<String> {
    let mut map: Vec<(usize, &str)> = Vec::new();
    for (model, file) in pairs {
        if model.trim().is_empty() || file.trim().is_empty() {
            continue;
        }
        let (width, indent) = (model_width(model), indentation(file));
        match map.iter().find(|(w, _)| *w == width) {
            Some((_, known)) if *known != indent => {
                return Some(format!(
                    "the edit's lines at one indentation stand for lines at different indentations in the file \
                     (`{}` is indented {} columns there, another line {}),",
                    file.trim(),
                    indent.len(),
                    known.len()
                ));
            }
            Some(_) => {}
            None => map.push((width, indent)),
        }
    }
    map.sort_by_key(|(w, _)| *w);
    let columns = |s: &str| s.chars().map(|c| if c == '\t' { 8 } else { 1 }).sum::<usize>();
    map.windows(2).any(|w| columns(w[0].1) >= columns(w[1].1)).then(|| {
        "the edit's nesting does not follow the file's (a deeper line in the edit is not deeper in the file),"
            .to_string()
    })
}

/// For a fuzzy match: which window line each SEARCH line stands for, from the lines equal once
/// trimmed, and the changed runs of equal length paired one for one.
pub(super) fn align(search: &[String], window: &[&str]) -> Vec<Option<usize>> {
    let trimmed_search: Vec<&str> = search.iter().map(|l| l.trim()).collect();
    let trimmed_window: Vec<&str> = window.iter().map(|l| l.trim()).collect();
    let mut aligned = vec![None; search.len()];
    for op in capture_diff_slices(Algorithm::Myers, &trimmed_search, &trimmed_window) {
        match op {
            DiffOp::Equal { old_index, new_index, len } => {
                for k in 0..len {
                    aligned[old_index + k] = Some(new_index + k);
                }
            }
            DiffOp::Replace { old_index, old_len, new_index, new_len } if old_len == new_len => {
                for k in 0..old_len {
                    aligned[old_index + k] = Some(new_index + k);
                }
            }
            _ => {}
        }
    }
    aligned
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn unchanged_lines_keep_the_files_bytes_even_with_odd_whitespace() {
        let window = ["  a: 1  ", "\t b: 2"];
        let search = owned(&["a: 1", " b: 2"]);
        let replace = owned(&["a: 1", " b: 3"]);
        let aligned = vec![Some(0), Some(1)];
        let out = replacement(&search, &replace, &window, &aligned).expect("consistent");
        assert_eq!(out, vec!["  a: 1  ", "\t b: 3"]);
    }

    #[test]
    fn a_flattened_insertion_into_nested_lines_is_refused() {
        let window = ["web:", "  image: x"];
        let search = owned(&["web:", "image: x"]);
        let replace = owned(&["web:", "image: x", "restart: always"]);
        let err = replacement(&search, &replace, &window, &[Some(0), Some(1)]).expect_err("ambiguous");
        assert!(err.contains("restart: always"), "{err}");
    }

    #[test]
    fn a_deeper_model_line_that_is_shallower_in_the_file_makes_the_map_inconsistent() {
        assert!(inconsistency(&[("a", "    a"), ("  b", "b")]).is_some());
        assert!(inconsistency(&[("a", "    a"), ("  b", "      b")]).is_none());
    }

    #[test]
    fn a_typo_line_is_aligned_with_its_window_line() {
        let search = owned(&["fn a() {", "  let totl = 1;", "}"]);
        let window = ["fn a() {", "    let total = 1;", "}"];
        assert_eq!(align(&search, &window), vec![Some(0), Some(1), Some(2)]);
    }
}
