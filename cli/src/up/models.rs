//! What `prfix up` says about Ollama before the first review: for each endpoint, whether it answers
//! and which of the models the agent is set to use it lacks, with the `ollama pull` line to run.

use std::collections::BTreeSet;
use std::time::Duration;

use prfix_agent::ollama::{Ollama, canonical_model};

/// The default endpoint, where a plain `ollama pull` goes.
const LOCAL: &str = "http://127.0.0.1:11434";

/// The models of `wanted` that `present` lacks, in `wanted`'s order, each once.
fn missing(wanted: &[String], present: &[String]) -> Vec<String> {
    let present: BTreeSet<String> = present.iter().map(|m| canonical_model(m)).collect();
    let mut seen = BTreeSet::new();
    wanted
        .iter()
        .filter(|m| !present.contains(&canonical_model(m)) && seen.insert(canonical_model(m)))
        .cloned()
        .collect()
}

/// The command that pulls `model` onto `endpoint`.
fn pull_line(endpoint: &str, model: &str) -> String {
    let endpoint = endpoint.trim_end_matches('/');
    if endpoint == LOCAL || endpoint == "http://localhost:11434" {
        format!("ollama pull {model}")
    } else {
        format!("OLLAMA_HOST={endpoint} ollama pull {model}")
    }
}

/// One line per endpoint (and per missing model) for the banner, `wanted` being the agent's models.
pub async fn report(endpoints: &str, wanted: &[String]) -> Vec<String> {
    let endpoints: Vec<String> =
        endpoints.split(',').map(|e| e.trim().trim_end_matches('/').to_owned()).filter(|e| !e.is_empty()).collect();
    let client = match Ollama::new(endpoints.clone(), Duration::from_secs(2), Duration::from_secs(5), 8_192, 1) {
        Ok(client) => client,
        Err(e) => return vec![format!("cannot check the Ollama endpoints: {e}")],
    };
    let mut lines = Vec::new();
    for endpoint in &endpoints {
        match client.tags(endpoint).await {
            Err(e) => lines.push(format!("{endpoint} does not answer ({e}): start `ollama serve` there")),
            Ok(models) => {
                let present: Vec<String> = models.into_iter().map(|m| m.name).collect();
                let missing = missing(wanted, &present);
                if missing.is_empty() {
                    lines.push(format!("{endpoint} has {}", wanted.join(", ")));
                }
                for model in missing {
                    lines.push(format!("{endpoint} lacks {model}: run `{}`", pull_line(endpoint, &model)));
                }
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_is_missing_unless_pulled_under_its_name_or_as_latest() {
        let wanted = ["qwen2.5-coder:14b".to_owned(), "llama3".to_owned(), "qwen2.5-coder:14b".to_owned()];
        assert_eq!(missing(&wanted, &[]), ["qwen2.5-coder:14b", "llama3"]);
        assert_eq!(missing(&wanted, &["llama3:latest".to_owned()]), ["qwen2.5-coder:14b"]);
        assert!(missing(&wanted, &["qwen2.5-coder:14b".to_owned(), "llama3".to_owned()]).is_empty());
    }

    #[test]
    fn the_pull_line_names_a_remote_endpoint() {
        assert_eq!(pull_line("http://127.0.0.1:11434/", "m:1b"), "ollama pull m:1b");
        assert_eq!(pull_line("http://gpu-box:11434", "m:1b"), "OLLAMA_HOST=http://gpu-box:11434 ollama pull m:1b");
    }
}
