//! The witness's decisions, without HTTP: what it cosigns, what it refuses and with which status,
//! and that it remembers across a restart.

use super::*;
use crate::checkpoint::Signer;
use crate::witness::cosignature::CosignerKey;

struct Fixture {
    dir: PathBuf,
    log: Signer,
    log_key: Vkey,
    cosigner_pkcs8: Vec<u8>,
}

impl Fixture {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("prfix-witness-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (log, _) = Signer::generate("log.example").expect("log key");
        let log_key = Vkey::parse(&log.verifier_key(), ED25519_TYPE).expect("log vkey");
        let (_, cosigner_pkcs8) = Cosigner::generate("witness.example").expect("witness key");
        Self { dir, log, log_key, cosigner_pkcs8 }
    }

    fn witness(&self) -> Witness {
        let cosigner = Cosigner::from_pkcs8("witness.example", &self.cosigner_pkcs8).expect("key");
        Witness::open(cosigner, vec![("log.example/a".into(), self.log_key.clone())], self.dir.join("state.json"))
            .expect("opens")
    }

    /// A request adding the checkpoint over `leaves` with a proof from `old`.
    fn request(&self, old: usize, leaves: &[Hash]) -> Vec<u8> {
        let proof = if old == 0 { Vec::new() } else { merkle::consistency_proof(old, leaves).expect("proof") };
        let checkpoint = self.log.sign("log.example/a", leaves.len() as u64, &merkle::root(leaves));
        AddCheckpoint { old: old as u64, proof, checkpoint }.to_body().into_bytes()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn leaves(n: usize, salt: u8) -> Vec<Hash> {
    (0..n).map(|i| merkle::leaf_hash(&[salt, i as u8])).collect()
}

#[tokio::test]
async fn a_growing_log_is_cosigned_and_the_cosignature_verifies() {
    let f = Fixture::new();
    let witness = f.witness();
    let key = CosignerKey::parse(&witness.verifier_key()).expect("vkey");
    let log = leaves(9, 0);
    let first = witness.add_checkpoint(&f.request(0, &log[..4])).await.expect("first is cosigned");
    let text = crate::checkpoint::body("log.example/a", 4, &merkle::root(&log[..4]));
    let line = note::parse_signature_line(first.trim_end()).expect("one signature line");
    assert!(key.verify(&text, &line).expect("by the witness").is_some());
    witness.add_checkpoint(&f.request(4, &log)).await.expect("an extension is cosigned");
    witness.add_checkpoint(&f.request(9, &log)).await.expect("the same checkpoint again is cosigned");
}

#[tokio::test]
async fn a_smaller_or_forked_checkpoint_is_refused_with_the_spec_status() {
    let f = Fixture::new();
    let witness = f.witness();
    let log = leaves(8, 0);
    witness.add_checkpoint(&f.request(0, &log)).await.expect("cosigned");
    // The log lost its tail: claiming the witness saw nothing gets 409 with the size it saw.
    let smaller = witness.add_checkpoint(&f.request(0, &log[..5])).await.expect_err("refused");
    assert!(matches!(smaller, AddError::Conflict(8)), "{smaller:?}");
    assert_eq!(smaller.status(), StatusCode::CONFLICT);
    // A proof from 8 to a 5-event tree cannot exist; old above the size is a bad request.
    let mut body = String::from_utf8(f.request(0, &log[..5])).expect("utf-8");
    body = body.replacen("old 0", "old 8", 1);
    assert_eq!(witness.add_checkpoint(body.as_bytes()).await.expect_err("refused").status(), StatusCode::BAD_REQUEST);
    // Events 6..8 rewritten and two more appended: the proof from 8 does not verify.
    let mut forked = log[..5].to_vec();
    forked.extend(leaves(5, 1));
    let fork = witness.add_checkpoint(&f.request(8, &forked)).await.expect_err("refused");
    assert_eq!(fork.status(), StatusCode::UNPROCESSABLE_ENTITY, "{fork:?}");
    // The same size with another root.
    let mut same_size = log[..7].to_vec();
    same_size.push(merkle::leaf_hash(b"other"));
    let changed = witness.add_checkpoint(&f.request(8, &same_size)).await.expect_err("refused");
    assert_eq!(changed.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn unknown_logs_bad_signatures_and_bad_bodies_are_refused() {
    let f = Fixture::new();
    let witness = f.witness();
    let log = leaves(3, 0);
    let other_origin = String::from_utf8(f.request(0, &log)).expect("utf-8").replace("log.example/a", "log.example/b");
    let refused = witness.add_checkpoint(other_origin.as_bytes()).await.expect_err("refused");
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    let (stranger, _) = Signer::generate("log.example").expect("key");
    let forged =
        AddCheckpoint { old: 0, proof: Vec::new(), checkpoint: stranger.sign("log.example/a", 3, &merkle::root(&log)) };
    let refused = witness.add_checkpoint(forged.to_body().as_bytes()).await.expect_err("refused");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN, "same name and ID as the trusted key, wrong key");
    let refused = witness.add_checkpoint(b"old 0\n\nnot a note\n").await.expect_err("refused");
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let with_proof = String::from_utf8(f.request(0, &log)).expect("utf-8").replacen(
        "old 0\n",
        &format!("old 0\n{}\n", STANDARD.encode([0u8; 32])),
        1,
    );
    let refused = witness.add_checkpoint(with_proof.as_bytes()).await.expect_err("refused");
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY, "a proof from 0 must be empty");
}

#[tokio::test]
async fn the_witness_remembers_what_it_cosigned_across_a_restart() {
    let f = Fixture::new();
    let log = leaves(6, 0);
    f.witness().add_checkpoint(&f.request(0, &log)).await.expect("cosigned");
    let restarted = f.witness();
    let refused = restarted.add_checkpoint(&f.request(0, &log[..3])).await.expect_err("refused");
    assert!(matches!(refused, AddError::Conflict(6)), "{refused:?}");
    let origin_hash = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"log.example/a").as_ref());
    let latest = restarted.latest(&origin_hash).await.expect("served to monitors");
    assert!(latest.starts_with("log.example/a\n6\n") && latest.contains("\u{2014} witness.example "), "{latest}");
    assert!(f.log_key.name == "log.example" && latest.contains("\u{2014} log.example "));
}
