//! `prfix audit export` and `prfix audit verify`: take the log and its signed checkpoints out of the
//! service, and check them anywhere with only the checkpoint public key (and, as a monitor, against
//! the checkpoint remembered from the last run: `--state`).

use std::io::Write;
use std::path::{Path, PathBuf};

use prfix_audit::checkpoint::VerifierKey;
use prfix_audit::export::VerifyOptions;
use prfix_audit::jsonl::write_stream;
use prfix_audit::monitor::monitor_with;
use prfix_audit::parallel::{Parallelism, verify_path};
use prfix_proto::audit::v1::audit_service_client::AuditServiceClient;

/// What went wrong, said in one line.
pub type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Streams the whole log with its checkpoints from the gateway into `output` (JSON lines).
pub async fn export(gateway: &str, token: &str, output: &Path) -> Result<(), Failure> {
    let channel = tonic::transport::Channel::from_shared(gateway.to_owned())
        .map_err(|e| format!("gateway address `{gateway}`: {e}"))?
        .connect()
        .await
        .map_err(|e| format!("cannot reach the gateway at {gateway}: {e}"))?;
    let bearer: tonic::metadata::MetadataValue<_> =
        format!("Bearer {token}").parse().map_err(|_| "the token is not a valid header value")?;
    let mut client = AuditServiceClient::with_interceptor(channel, move |mut request: tonic::Request<()>| {
        request.metadata_mut().insert("authorization", bearer.clone());
        Ok(request)
    });
    let mut stream = client
        .export_events(prfix_audit::jsonl::request(0, 0))
        .await
        .map_err(|s| format!("export refused: {} ({:?})", s.message(), s.code()))?
        .into_inner();
    // Each chunk goes out as it arrives, through a buffer: memory stays flat whatever the log's size.
    let file = std::fs::File::create(output).map_err(|e| format!("{}: {e}", output.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let (events, checkpoints) =
        write_stream(&mut stream, &mut out).await.map_err(|e| format!("{}: {e}", output.display()))?;
    out.flush().map_err(|e| format!("{}: {e}", output.display()))?;
    out.into_inner()
        .map_err(|e| format!("{}: {e}", output.display()))?
        .sync_all()
        .map_err(|e| format!("{}: {e}", output.display()))?;
    println!("exported {events} events and {checkpoints} checkpoints to {}", output.display());
    Ok(())
}

/// The verifier key: the key text itself, or `@FILE` to read it from a file.
fn verifier_key(key: &str) -> Result<VerifierKey, Failure> {
    let text = match key.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(PathBuf::from(path)).map_err(|e| format!("{path}: {e}"))?,
        None => key.to_owned(),
    };
    Ok(VerifierKey::parse(&text)?)
}

/// Verifies an export offline with the trusted checkpoint `keys` (several after a key rotation);
/// with `state`, also against the checkpoint remembered there by the last run that passed (a smaller
/// or rewritten log fails, naming the missing events), and remembers the export's newest checkpoint
/// when everything holds. Returns whether it holds, after printing what was found.
pub fn verify_file(file: &Path, keys: &[String], state: Option<&Path>) -> Result<bool, Failure> {
    if keys.is_empty() {
        return Err("no verifier key given: pass --key (once per key the log was signed with)".into());
    }
    let keys = keys.iter().map(|k| verifier_key(k)).collect::<Result<Vec<_>, _>>()?;
    let options = VerifyOptions { keys, ..VerifyOptions::default() };
    // The file is streamed through the verifier, parsed on every core: memory stays flat whatever
    // the log's size.
    let verify =
        |options: &VerifyOptions| -> Result<_, Failure> { Ok(verify_path(file, options, Parallelism::default())?) };
    let (report, remembered) = match state {
        None => (verify(&options)?, None),
        Some(path) => {
            let run = monitor_with(&options, path, chrono::Utc::now(), verify)?;
            let remembered = match (&run.advanced, &run.before) {
                (Some(now), _) => format!("remembered checkpoint {} in {}", now.tree_size, path.display()),
                (None, Some(before)) => format!(
                    "{} still remembers checkpoint {} (verified {})",
                    path.display(),
                    before.tree_size,
                    before.verified_at
                ),
                (None, None) => format!("{} not written: nothing verified to remember", path.display()),
            };
            (run.report, Some(remembered))
        }
    };
    if report.ok() {
        println!("ok: {} events, {} signed checkpoints verified", report.events, report.checkpoints);
    } else {
        for problem in &report.problems {
            println!("{problem}");
        }
        println!(
            "FAILED: {} problem(s) in {} events and {} checkpoints",
            report.problems.len(),
            report.events,
            report.checkpoints
        );
    }
    if let Some(remembered) = remembered {
        println!("state: {remembered}");
    }
    Ok(report.ok())
}
