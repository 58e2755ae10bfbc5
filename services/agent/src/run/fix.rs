//! The fix pipeline: a plan from the reasoning model, edits from the coding model as text, applied
//! in memory with retries that show the model what did not match, then a checked patch.

use std::collections::BTreeMap;

use prfix_engine::edit;
use prfix_engine::fix::{self, Budget, FixError, Problem};
use prfix_engine::prompt::Fence;
use prfix_engine::tokens;
use prfix_proto::agent::v1 as pb;

use super::{Job, RunError, model_or};
use crate::changeset;
use crate::ollama::{ChatMessage, Role};

/// Tokens kept for a retry of the plan: a short excerpt of the unusable answer and what was wrong.
const PLAN_RETRY_RESERVE: usize = 400;
/// At most this many tokens of an unusable plan are quoted back.
const ANSWER_EXCERPT_TOKENS: usize = 150;
/// Tokens kept for the feedback after edits that did not apply (the closest lines of each miss).
const FEEDBACK_TOKENS: usize = 1_200;
/// Below this many tokens for the user message, a fix cannot show anything useful.
const MIN_MESSAGE_TOKENS: usize = 300;

/// The room for the user message of a call to `model` with `system` and `format`: the context
/// less the answer, the margin, the system prompt, the schema and `reserve`, counted with the
/// model's learned ratio.
async fn room(
    job: &Job,
    model: &str,
    system: &str,
    format: Option<&serde_json::Value>,
    reserve: usize,
) -> Result<Budget, RunError> {
    let context = job.engine.ollama.model_context(model).await?;
    let estimator = job.estimator(model);
    let fixed = estimator.prompt_tokens(&[system, ""], format)
        + job.answer_budget(context) as usize
        + job.context_margin(context) as usize
        + reserve;
    let tokens = (context as usize).saturating_sub(fixed);
    if tokens < MIN_MESSAGE_TOKENS {
        return Err(RunError::Input(format!(
            "model {model} has a context of {context} tokens, too small for a fix: its instructions and answer \
             alone take about {fixed}"
        )));
    }
    Ok(Budget { estimator, tokens })
}

/// A prompt that cannot be made to fit is the input's fault, said with what is too large.
fn too_large(e: FixError) -> RunError {
    RunError::Input(e.to_string())
}

fn finding_line(f: &pb::Finding) -> String {
    let severity = pb::Severity::try_from(f.severity).map_or("unspecified", |s| s.as_str_name());
    format!("{}:{} [{severity}] {}: {}", f.path, f.line, f.title, f.body)
}

/// Runs a fix.
pub async fn run(job: &Job, request: pb::CreateFixRequest) -> Result<pb::FixResult, RunError> {
    let pb::CreateFixRequest { change_set, problem, options } = request;
    // The eval run id only tags the task (stored and audited at creation); the fix ignores it.
    let pb::FixOptions { planner_model, coder_model, max_attempts, allow_new_files, eval_run_id: _ } =
        options.unwrap_or_default();
    let settings = &job.engine.settings;
    let planner = model_or(&planner_model, &settings.reasoning_model);
    let coder = model_or(&coder_model, &settings.coding_model);
    let pb::FixProblem { check_command, check_output, findings, instruction } = problem.unwrap_or_default();
    let finding_lines: Vec<String> = findings.iter().map(finding_line).collect();
    let mut extra: Vec<&str> = vec![&check_command, &check_output, &instruction];
    extra.extend(finding_lines.iter().map(String::as_str));
    let mut prepared =
        changeset::prepare(&change_set.unwrap_or_default(), &job.engine.redactor, &extra).map_err(RunError::Input)?;
    let redactor = &job.engine.redactor;
    let problem = Problem {
        check_command: redactor.redact(&check_command, &mut prepared.vault),
        check_output: redactor.redact(&check_output, &mut prepared.vault),
        findings: finding_lines.iter().map(|f| redactor.redact(f, &mut prepared.vault)).collect(),
        instruction: redactor.redact(&instruction, &mut prepared.vault),
    };
    job.redactions
        .store(u32::try_from(prepared.vault.count()).unwrap_or(u32::MAX), std::sync::atomic::Ordering::Relaxed);
    // What the model may edit: the changed files and the context files, as redacted text.
    let mut editable: BTreeMap<String, String> = prepared.files.clone();
    editable.extend(prepared.context.clone());
    let mut originals: BTreeMap<String, String> = prepared.original_files.clone();
    originals.extend(prepared.original_context.clone());
    if editable.is_empty() {
        return Err(RunError::Input("the change set has no file contents to fix".to_owned()));
    }
    let fence = Fence::new();

    // Plan: a map of the change (whole files only when they fit in half the room).
    job.progress(format!("planning with {planner}"), 0, 2).await?;
    let plan_system = fix::plan_system_prompt(&fence);
    let schema = fix::plan_schema();
    let budget = room(job, &planner, &plan_system, Some(&schema), PLAN_RETRY_RESERVE).await?;
    let map = fix::plan_prompt(&fence, &problem, &editable, &prepared.diff, &budget).map_err(too_large)?;
    let plan_messages = vec![ChatMessage::new(Role::System, plan_system), ChatMessage::new(Role::User, map.text)];
    let reply = job.chat("plan", &planner, plan_messages.clone(), Some(schema.clone())).await?;
    let plan = match fix::parse_plan(&reply.content) {
        Ok(plan) => plan,
        Err(first) => {
            // The unusable answer is quoted only in part: echoing it whole could overflow the context.
            let excerpt = fix::head_within(&reply.content, ANSWER_EXCERPT_TOKENS, &budget.estimator);
            let mut retry = plan_messages;
            retry.push(ChatMessage::new(Role::Assistant, excerpt));
            retry.push(ChatMessage::new(Role::User, format!("{first}. Answer again with only the JSON plan.")));
            let again = job.chat("plan, again", &planner, retry, Some(schema)).await?;
            fix::parse_plan(&again.content).map_err(|e| RunError::Model(e.to_string()))?
        }
    };
    job.progress(format!("plan: {}", prepared.vault.restore(&plan.root_cause)), 1, 2).await?;

    // Edits: the regions the plan names, with context lines, applied to the whole files in memory.
    let regions = fix::resolve_regions(&plan, &editable, &prepared.diff);
    let region_paths: Vec<String> = regions.iter().map(|r| r.path.clone()).collect();
    let context = job.engine.ollama.model_context(&coder).await?;
    let echo_tokens = job.answer_budget(context) as usize / 2;
    let reserve = echo_tokens + FEEDBACK_TOKENS + 2 * tokens::MESSAGE_OVERHEAD;
    let budget = room(job, &coder, &fix::edit_system_prompt(&fence, &region_paths), None, reserve).await?;
    let view = fix::edit_prompt(&fence, &problem, &plan, &editable, &regions, settings.whole_file_max_lines, &budget)
        .map_err(too_large)?;
    let shown: Vec<String> = view.shown.iter().map(|r| format!("{} {}-{}", r.path, r.start_line, r.end_line)).collect();
    tracing::debug!(task_id = %job.task_id, shown = ?shown, "edit regions");
    let first_messages = vec![
        ChatMessage::new(Role::System, fix::edit_system_prompt(&fence, &view.whole_files)),
        ChatMessage::new(Role::User, view.prompt),
    ];
    let mut messages = first_messages.clone();
    let attempts_allowed = match u32::try_from(max_attempts) {
        Ok(0) | Err(_) => settings.max_fix_attempts,
        Ok(n) => n.min(settings.max_fix_attempts),
    }
    .max(1);
    let mut current = editable.clone();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let reply = job.chat(&format!("edit attempt {attempts}"), &coder, messages, None).await?;
        let feedback = match edit::parse_edits(&reply.content) {
            Err(e) => format!(
                "Your answer could not be read as edits: {e}. Write SEARCH/REPLACE or FILE blocks as the rules say."
            ),
            Ok(edits) => {
                let outcome = edit::apply_edits(&current, &edits, settings.fuzzy_match_permille);
                current = outcome.files.clone();
                if outcome.failed.is_empty() {
                    break;
                }
                edit::retry_feedback(&edits, &outcome)
            }
        };
        let last_problem = feedback.lines().take(3).collect::<Vec<_>>().join(" ");
        job.progress(format!("edit attempt {attempts} did not fully apply; asking again"), 1, 2).await?;
        if attempts >= attempts_allowed {
            return Err(RunError::Model(format!(
                "the coding model's edits did not apply after {attempts} attempts: {last_problem}"
            )));
        }
        // Only the last answer and its feedback follow the first prompt, each cut to the room kept
        // for them, so every retry fits the context like the first attempt.
        messages = first_messages.clone();
        messages
            .push(ChatMessage::new(Role::Assistant, fix::head_within(&reply.content, echo_tokens, &budget.estimator)));
        messages.push(ChatMessage::new(Role::User, fix::head_within(&feedback, FEEDBACK_TOKENS, &budget.estimator)));
    }
    // Secrets the model saw as placeholders go back into the files before the patch is made.
    // Each file gets back only the secrets it had: a placeholder from elsewhere (another file, the
    // check output) or one the model made up is refused rather than written into the code.
    let mut edited: BTreeMap<String, String> = BTreeMap::new();
    for (path, content) in current {
        let original = editable.get(&path);
        if original == Some(&content) {
            continue;
        }
        let restored = prepared
            .vault
            .restore_within(&content, original.map_or("", String::as_str))
            .map_err(|e| RunError::Model(format!("the edits of {path} are refused: {e}")))?;
        edited.insert(path, restored);
    }
    let (patch, stats) =
        fix::build_patch(&originals, &edited, allow_new_files).map_err(|e| RunError::Model(e.to_string()))?;
    let explanation = prepared.vault.restore(&format!(
        "{}\n\n{}",
        plan.root_cause,
        plan.steps.iter().enumerate().map(|(i, s)| format!("{}. {s}", i + 1)).collect::<Vec<_>>().join("\n")
    ));
    let result = pb::FixResult {
        patch,
        explanation: explanation.trim().to_owned(),
        files: stats
            .into_iter()
            .map(|s| pb::FileStat {
                path: s.path,
                change: if s.added { pb::FileChangeKind::Added } else { pb::FileChangeKind::Modified } as i32,
                additions: i32::try_from(s.additions).unwrap_or(i32::MAX),
                deletions: i32::try_from(s.deletions).unwrap_or(i32::MAX),
            })
            .collect(),
        attempts: i32::try_from(attempts).unwrap_or(i32::MAX),
    };
    job.event(pb::task_event::Payload::Patch(result.clone())).await?;
    Ok(result)
}
