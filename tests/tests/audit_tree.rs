//! Heads and proofs read from the stored tree (`audit.subtrees`: the heads of complete subtrees at
//! every 8th level) agree with the tree recomputed from every leaf, for logs that cross subtree
//! boundaries; a log whose subtree rows are missing is folded from its leaves and gets them back;
//! a changed subtree row stops the checkpointer, as a changed leaf does.

use prfix_audit::merkle::{self, Hash};
use prfix_proto::audit::v1 as audit;
use prfix_tests::TestApp;
use prfix_tests::spawn_app;

async fn append(app: &TestApp, count: usize) {
    let mut client = app.audit_client();
    for chunk in 0..count.div_ceil(100) {
        let events = (0..100.min(count - chunk * 100))
            .map(|i| audit::AuditEvent {
                event_id: uuid::Uuid::new_v4().to_string(),
                time: Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp(), nanos: 0 }),
                actor: Some(audit::Actor { subject: "tree".into(), roles: vec!["developer".into()] }),
                action: "demo.tree".into(),
                resource: format!("items/{chunk}/{i}"),
                result: audit::AuditResult::Success as i32,
                ..Default::default()
            })
            .collect();
        client.append_batch(audit::AppendBatchRequest { events }).await.expect("append");
    }
}

/// Exports the log (which signs a checkpoint over it first) and returns the newest checkpoint's size.
async fn checkpoint(app: &TestApp) -> i64 {
    let mut client = app.audit_client();
    let mut stream = client.export_events(audit::ExportEventsRequest::default()).await.expect("export").into_inner();
    while stream.message().await.expect("stream").is_some() {}
    let answer = client.get_checkpoint(audit::GetCheckpointRequest::default()).await.expect("checkpoint");
    answer.into_inner().checkpoint.expect("a checkpoint").tree_size
}

async fn leaves(app: &TestApp, size: i64) -> Vec<Hash> {
    let db = app.db.connect().await;
    let rows = db
        .query("SELECT leaf_hash FROM audit.events WHERE sequence <= $1 ORDER BY sequence", &[&size])
        .await
        .expect("leaves");
    rows.iter().map(|r| r.get::<_, Vec<u8>>(0).try_into().expect("32 bytes")).collect()
}

async fn subtrees(app: &TestApp) -> Vec<(i16, i64, Vec<u8>)> {
    let db = app.db.connect().await;
    let rows =
        db.query("SELECT level, index, hash FROM audit.subtrees ORDER BY level, index", &[]).await.expect("rows");
    rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
}

async fn superuser(app: &TestApp, sql: &str) {
    let db = app.db.connect().await;
    db.batch_execute(&format!(
        "ALTER TABLE audit.subtrees DISABLE TRIGGER ALL; {sql};
         ALTER TABLE audit.subtrees ENABLE ALWAYS TRIGGER subtrees_refuse_update_delete;
         ALTER TABLE audit.subtrees ENABLE ALWAYS TRIGGER subtrees_refuse_truncate"
    ))
    .await
    .expect(sql);
}

/// The service's inclusion proofs of `sequences` and consistency proofs from `firsts` at `size`,
/// each equal to the one computed from all the leaves and verifying against the signed root.
async fn proofs_hold(app: &TestApp, size: i64, sequences: &[i64], firsts: &[i64]) {
    let leaves = leaves(app, size).await;
    assert_eq!(leaves.len() as i64, size);
    let root = merkle::root(&leaves);
    let mut client = app.audit_client();
    let signed = client.get_checkpoint(audit::GetCheckpointRequest { tree_size: size }).await.expect("checkpoint");
    assert_eq!(signed.into_inner().checkpoint.expect("checkpoint").root_hash, root.to_vec());
    let n = u64::try_from(size).expect("size");
    for &sequence in sequences {
        let answer = client
            .get_inclusion_proof(audit::GetInclusionProofRequest { sequence, tree_size: size })
            .await
            .expect("inclusion proof")
            .into_inner();
        let index = usize::try_from(sequence - 1).expect("index");
        let expected = merkle::inclusion_proof(index, &leaves).expect("in range");
        let hashes: Vec<Hash> = answer.hashes.iter().map(|h| h.clone().try_into().expect("32 bytes")).collect();
        assert_eq!(hashes, expected, "inclusion of {sequence} in {size}");
        assert_eq!(answer.leaf_hash, leaves[index].to_vec());
        assert!(merkle::verify_inclusion(index as u64, n, &leaves[index], &hashes, &root), "{sequence}");
    }
    for &first in firsts {
        let answer = client
            .get_consistency_proof(audit::GetConsistencyProofRequest { first_tree_size: first, second_tree_size: size })
            .await
            .expect("consistency proof")
            .into_inner();
        let m = usize::try_from(first).expect("first");
        let expected = merkle::consistency_proof(m, &leaves).expect("in range");
        let hashes: Vec<Hash> = answer.hashes.iter().map(|h| h.clone().try_into().expect("32 bytes")).collect();
        assert_eq!(hashes, expected, "consistency {first} -> {size}");
        let first_root = merkle::root(&leaves[..m]);
        assert!(merkle::verify_consistency(m as u64, n, &hashes, &first_root, &root), "{first}");
    }
}

#[tokio::test]
async fn proofs_from_stored_subtrees_match_the_tree_of_every_leaf_across_subtree_boundaries() {
    let app = spawn_app().await;
    append(&app, 300).await;
    let first = checkpoint(&app).await;
    append(&app, 420).await;
    let size = checkpoint(&app).await;
    assert!(first >= 300 && size >= 720, "{first}, {size}");
    // The complete subtrees of 256 leaves are stored, with the heads of their leaves.
    let leaves = leaves(&app, size).await;
    let stored = subtrees(&app).await;
    let complete = usize::try_from(size / 256).expect("count");
    assert_eq!(stored.len(), complete, "{stored:?}");
    for (i, (level, index, hash)) in stored.iter().enumerate() {
        assert_eq!((*level, *index), (8, i as i64));
        assert_eq!(hash.as_slice(), merkle::root(&leaves[i * 256..(i + 1) * 256]).as_slice(), "subtree {i}");
    }
    let sequences = [1, 2, 255, 256, 257, 300, 512, 513, size - 1, size];
    let firsts = [1, 3, 255, 256, 257, first, 512, 600, size - 1, size];
    proofs_hold(&app, size, &sequences, &firsts).await;
    // Proofs against the older checkpoint (which the second one's subtrees outgrew) hold too.
    proofs_hold(&app, first, &[1, 256, 257, first], &[1, 256, first]).await;
}

#[tokio::test]
async fn a_log_without_its_subtree_rows_is_folded_from_the_leaves_and_gets_them_back() {
    let app = spawn_app().await;
    append(&app, 600).await;
    let first = checkpoint(&app).await;
    let before = subtrees(&app).await;
    assert_eq!(before.len(), 2, "{before:?}");
    // As a log from before the table would be.
    superuser(&app, "DELETE FROM audit.subtrees").await;
    assert!(subtrees(&app).await.is_empty());
    proofs_hold(&app, first, &[1, 256, 257, first], &[1, 256, 300]).await;
    // The next checkpoint folds them from the leaves, checks them against the signed head, stores them.
    append(&app, 5).await;
    let second = checkpoint(&app).await;
    assert!(second > first);
    assert_eq!(subtrees(&app).await, before);
    proofs_hold(&app, second, &[1, second], &[first]).await;
}

#[tokio::test]
async fn a_changed_subtree_row_stops_the_checkpointer_and_the_log_fails_verification() {
    let app = spawn_app().await;
    append(&app, 600).await;
    let first = checkpoint(&app).await;
    superuser(&app, "UPDATE audit.subtrees SET hash = sha256('forged'::bytea) WHERE level = 8 AND index = 1").await;
    append(&app, 5).await;
    // Nothing new is signed: the tree read back no longer has the signed head.
    assert_eq!(checkpoint(&app).await, first);
    let verdict = app.audit_client().verify(audit::VerifyRequest::default()).await.expect("verify").into_inner();
    assert!(!verdict.ok, "events past the last checkpoint are not covered by one");
}
