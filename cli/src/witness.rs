//! `prfix audit witness`: a c2sp.org/tlog-witness witness for audit logs, meant to run on a machine
//! the log's operators do not control. It cosigns a log's checkpoint only when it extends the last one
//! it cosigned, and keeps that in a state file; the server itself is `prfix_audit::witness::server`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use prfix_audit::witness::server::{self, Witness};

/// What `prfix audit witness` was given.
#[derive(Debug, Clone)]
pub struct WitnessArgs {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The state file (JSON; created on the first cosignature).
    pub state: PathBuf,
    /// The witness's Ed25519 key (PEM PKCS#8).
    pub key: PathBuf,
    /// The witness's name (in its cosignatures and verifier key).
    pub name: String,
    /// `ORIGIN=VERIFIERKEY` of each log it witnesses.
    pub logs: Vec<String>,
    /// Create the key file when it does not exist.
    pub generate_key: bool,
}

/// What went wrong, said in one line.
pub type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Runs the witness until Ctrl-C or SIGTERM. Prints its verifier key first, for the logs'
/// `audit.witnesses` settings and for `prfix audit verify --witness`.
pub async fn run(args: WitnessArgs) -> Result<(), Failure> {
    prfix_runtime::telemetry::init(prfix_runtime::settings::LogFormat::Pretty, "info");
    if args.logs.is_empty() {
        return Err("no log to witness: pass --log ORIGIN=VERIFIERKEY (once per log)".into());
    }
    let logs = args.logs.iter().map(|l| server::parse_log(l)).collect::<Result<Vec<_>, _>>()?;
    let (cosigner, generated) = server::load_key(&args.key, &args.name, args.generate_key)?;
    if generated {
        eprintln!("generated the witness key in {}", args.key.display());
    }
    let witness = Arc::new(Witness::open(cosigner, logs, args.state.clone())?);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr()?;
    println!("witness verifier key: {}", witness.verifier_key());
    println!("listening on http://{addr} (POST /add-checkpoint), state in {}", args.state.display());
    server::serve(listener, witness, prfix_runtime::shutdown::on_signal()).await?;
    Ok(())
}

/// Checks that the newest checkpoint of the export in `file` is cosigned by at least `quorum`
/// (default: all) of the `witnesses` keys (`<name>+<id>+<key>` or `@FILE`); prints what it found and
/// returns whether it holds. Nothing to check (and `true`) without witness keys.
pub fn verify_file(file: &std::path::Path, witnesses: &[String], quorum: Option<usize>) -> Result<bool, Failure> {
    use prfix_audit::witness::cosignature::{CosignerKey, check_export};
    if witnesses.is_empty() {
        return Ok(true);
    }
    let keys = witnesses
        .iter()
        .map(|k| {
            let text = match k.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?,
                None => k.clone(),
            };
            CosignerKey::parse(&text).map_err(|e| format!("--witness: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let quorum = quorum.unwrap_or(keys.len());
    if quorum == 0 || quorum > keys.len() {
        return Err(
            format!("--witness-quorum {quorum} must be between 1 and the {} witness keys given", keys.len()).into()
        );
    }
    let checkpoints = checkpoint_lines(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let problems = check_export(&checkpoints, &keys, quorum);
    if problems.is_empty() {
        println!("ok: the newest checkpoint is cosigned by at least {quorum} of the {} witnesses given", keys.len());
    } else {
        for problem in &problems {
            println!("{problem}");
        }
        println!("FAILED: the witnesses' cosignatures do not hold");
    }
    Ok(problems.is_empty())
}

/// The checkpoint lines of an export, read a line at a time: only checkpoints are kept (the
/// witnesses cosign checkpoints, not events), so memory does not grow with the log. Event lines as
/// the export writes them are recognised by their start and not parsed; any other line is.
fn checkpoint_lines(file: &std::path::Path) -> Result<Vec<prfix_audit::export::ExportLine>, String> {
    use std::io::BufRead;
    let opened = std::fs::File::open(file).map_err(|e| e.to_string())?;
    let mut checkpoints = Vec::new();
    for (i, line) in std::io::BufReader::with_capacity(1 << 20, opened).lines().enumerate() {
        let line = line.map_err(|e| format!("line {}: {e}", i + 1))?;
        if line.trim().is_empty() || line.starts_with(r#"{"type":"event","#) {
            continue;
        }
        let parsed: prfix_audit::export::ExportLine =
            serde_json::from_str(&line).map_err(|e| format!("line {}: {e}", i + 1))?;
        if matches!(parsed, prfix_audit::export::ExportLine::Checkpoint { .. }) {
            checkpoints.push(parsed);
        }
    }
    Ok(checkpoints)
}

#[cfg(test)]
mod tests {
    use prfix_audit::checkpoint::Signer;
    use prfix_audit::export::{ExportLine, write_jsonl};
    use prfix_audit::witness::cosignature::Cosigner;

    use super::verify_file;

    #[test]
    fn verify_with_witnesses_needs_the_quorum_on_the_newest_checkpoint() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (log, _) = Signer::generate("prfix-audit").expect("key");
        let (w1, w2) = (Cosigner::generate("w1").expect("key").0, Cosigner::generate("w2").expect("key").0);
        let note = log.sign("prfix-audit", 1, &[5; 32]);
        let body = note.split_once("\n\n").map(|(b, _)| format!("{b}\n")).expect("body");
        let cosigned = format!("{note}{}\n", w1.cosign(&body, 1_700_000_000));
        let file = dir.path().join("audit.jsonl");
        let mut out = std::fs::File::create(&file).expect("create");
        write_jsonl(&[ExportLine::Checkpoint { signed_note: cosigned }], &mut out).expect("write");
        let key_file = dir.path().join("w1.txt");
        std::fs::write(&key_file, w1.verifier_key()).expect("write");
        let both = [format!("@{}", key_file.display()), w2.verifier_key()];
        assert!(verify_file(&file, &both[..1], None).expect("runs"), "w1 cosigned");
        assert!(!verify_file(&file, &both, None).expect("runs"), "all given are required by default");
        assert!(verify_file(&file, &both, Some(1)).expect("runs"), "one of two");
        assert!(verify_file(&file, &both, Some(3)).is_err(), "a quorum above the keys given is an error");
        assert!(verify_file(&file, &[log.verifier_key()], None).is_err(), "a log key is not a witness key");
        assert!(verify_file(&file, &[], None).expect("nothing to check"));
    }
}
