//! Large groups are stored in slices over several connections at once (`prfix_audit::group`) and
//! committed in order: the log they leave chains and verifies as one written row by row would, an
//! event id stored earlier is found in any slice, and a slice whose commit fails leaves only the
//! slices before it (a prefix of the group), never a gap.

use prfix_audit::checkpoint::VerifierKey;
use prfix_audit::export::{ExportLine, verify};
use prfix_proto::audit::v1 as audit;
use prfix_tests::TestApp;
use prfix_tests::auth::audit_key;
use prfix_tests::spawn_app;

fn event(i: usize, action: &str) -> audit::AuditEvent {
    audit::AuditEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        time: Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp(), nanos: 0 }),
        actor: Some(audit::Actor { subject: format!("user{}", i % 7), roles: vec!["developer".into()] }),
        action: action.to_owned(),
        resource: format!("items/{i}"),
        result: audit::AuditResult::Success as i32,
        request_id: format!("req-{i}"),
        ..Default::default()
    }
}

/// The test's events (actions `demo.*`) in an export (which signs a checkpoint over the log first),
/// with their sequences, after checking the whole export offline and that its sequences run from 1
/// without a gap (the service also records its own events, such as each export).
async fn exported_ids(app: &TestApp) -> Vec<(String, i64)> {
    let lines = prfix_tests::audit_export::export_lines(&app.audit_client()).await;
    let report = verify(&lines, &[VerifierKey::parse(&audit_key().verifier_key).expect("verifier key")]);
    assert!(report.ok(), "the log verifies: {:?}", report.problems);
    let events: Vec<_> = lines
        .iter()
        .filter_map(|line| match line {
            ExportLine::Event(e) => Some(e),
            ExportLine::Checkpoint { .. } => None,
        })
        .collect();
    let sequences: Vec<i64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=events.len() as i64).collect::<Vec<_>>(), "contiguous from 1");
    events.iter().filter(|e| e.action.starts_with("demo.")).map(|e| (e.event_id.to_string(), e.sequence)).collect()
}

#[tokio::test]
async fn a_batch_of_a_thousand_is_stored_in_order_and_an_id_stored_before_is_found_in_its_last_slice() {
    let app = spawn_app().await;
    let mut client = app.audit_client();
    let first = event(0, "demo.group");
    let stored = client.append(audit::AppendRequest { event: Some(first.clone()) }).await.expect("append");
    assert_eq!(stored.into_inner().sequence, 1);

    // The test pool has 4 connections: groups of 500 or more go in 2 slices, here 1..=500 and
    // 501..=1000 of the batch; the repeated id is in the second.
    let mut events: Vec<audit::AuditEvent> = (1..=1_000).map(|i| event(i, "demo.group")).collect();
    events[900] = first.clone();
    let answer = client
        .append_batch(audit::AppendBatchRequest { events: events.clone() })
        .await
        .expect("the batch is stored")
        .into_inner();
    let mut next = 2;
    for (i, result) in answer.results.iter().enumerate() {
        assert_eq!(result.event_id, events[i].event_id);
        if i == 900 {
            assert!(result.duplicate && result.sequence == 1, "the stored id keeps its sequence: {result:?}");
        } else {
            assert!(!result.duplicate, "event {i} is new");
            assert_eq!(result.sequence, next, "event {i} follows the one before it");
            next += 1;
        }
    }

    // Two callers' batches at once make one group of 2,000 (slices of 1,000).
    let batches: Vec<Vec<audit::AuditEvent>> =
        (0..2).map(|b| (0..1_000).map(|i| event(2_000 + b * 1_000 + i, "demo.group")).collect()).collect();
    let calls: Vec<_> = batches
        .iter()
        .map(|events| {
            let mut client = app.audit_client();
            let events = events.clone();
            tokio::spawn(async move { client.append_batch(audit::AppendBatchRequest { events }).await })
        })
        .collect();
    for call in calls {
        call.await.expect("caller").expect("the concurrent batch is stored");
    }

    let log = exported_ids(&app).await;
    assert_eq!(log.len(), 1 + 999 + 2_000, "every event once");
    let mut ids: Vec<&String> = log.iter().map(|(id, _)| id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), log.len(), "no id stored twice");
}

#[tokio::test]
async fn a_slice_that_fails_at_commit_leaves_the_slices_before_it_and_the_log_goes_on_without_a_gap() {
    let app = spawn_app().await;
    // A deferred check that refuses one action when its transaction commits: the second slice of
    // the group fails after every slice inserted and the first committed.
    app.db
        .connect()
        .await
        .batch_execute(
            "CREATE FUNCTION audit.refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'refused at commit by the test'; END $$;
             CREATE CONSTRAINT TRIGGER events_refuse_at_commit AFTER INSERT ON audit.events
                 DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
                 WHEN (NEW.action = 'demo.refused_at_commit') EXECUTE FUNCTION audit.refuse_at_commit()",
        )
        .await
        .expect("the test's trigger");
    let mut client = app.audit_client();
    let mut events: Vec<audit::AuditEvent> = (0..1_000).map(|i| event(i, "demo.group")).collect();
    events[999].action = "demo.refused_at_commit".into();
    let refused = client.append_batch(audit::AppendBatchRequest { events: events.clone() }).await;
    assert!(refused.is_err(), "the caller hears that its batch failed: {refused:?}");

    // The first slice (the batch's first 500) is committed, the second is not.
    let log = exported_ids(&app).await;
    let kept: Vec<String> = events[..500].iter().map(|e| e.event_id.clone()).collect();
    assert_eq!(log.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(), kept, "a prefix of the group");

    // A retry of the whole batch (without the refused event) stores the rest once, after it.
    let retry: Vec<audit::AuditEvent> = events[..999].to_vec();
    let answer = client.append_batch(audit::AppendBatchRequest { events: retry }).await.expect("retry").into_inner();
    for (i, result) in answer.results.iter().enumerate() {
        if i < 500 {
            assert_eq!((result.duplicate, result.sequence), (true, i as i64 + 1), "event {i} was stored by the prefix");
        } else {
            assert!(!result.duplicate, "event {i} is stored by the retry");
        }
    }
    let told: Vec<(String, i64)> = answer.results.iter().map(|r| (r.event_id.clone(), r.sequence)).collect();
    assert_eq!(exported_ids(&app).await, told, "each event once, at the sequence its retry was told");
}

#[tokio::test]
async fn a_sliced_group_waits_for_another_writer_holding_the_lock_without_taking_its_place() {
    let app = spawn_app().await;
    // Another writer (a replica, or a person appending by hand) holds the append lock and is about
    // to store a row at sequence 600, where the second slice of the group below would go.
    let other = app.db.connect().await;
    other.batch_execute("SET statement_timeout = '10s'; BEGIN").await.expect("begin");
    other.query("SELECT pg_advisory_xact_lock($1)", &[&0x7072_6669_7861_7564_i64]).await.expect("the lock");
    let mut client = app.audit_client();
    let events: Vec<audit::AuditEvent> = (0..1_000).map(|i| event(i, "demo.group")).collect();
    let batch =
        tokio::spawn(async move { client.append_batch(audit::AppendBatchRequest { events }).await.map(|_| ()) });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(!batch.is_finished(), "the group waits for the lock");
    // Had the group's later slice inserted while its first waited for the lock, this insert would
    // wait on that slice's row 600, which waits for the first slice: neither could finish.
    other
        .execute(
            "INSERT INTO audit.events (sequence, event_id, occurred_at, actor_subject, action, resource, result,
                                       leaf_hash, chain_hash, encoding)
             VALUES (600, gen_random_uuid(), now(), 'by hand', 'demo.by_hand', '', 1,
                     sha256('leaf'::bytea), sha256('chain'::bytea), 1)",
            &[],
        )
        .await
        .expect("the other writer's row goes in at once");
    other.batch_execute("ROLLBACK").await.expect("rollback");
    batch.await.expect("caller").expect("the group is stored once the lock is free");
    assert_eq!(exported_ids(&app).await.len(), 1_000);
}

/// The writer plans a full group while the one before it is stored, after the head that one is
/// to leave. Here every group holds an id stored already, so each leaves a head other than the one
/// the next group was planned after: each next group must be planned again, never stored as planned.
#[tokio::test]
async fn groups_planned_while_the_last_was_stored_are_planned_again_when_it_held_stored_ids() {
    let app = spawn_app().await;
    let mut client = app.audit_client();
    let first = event(0, "demo.pipeline");
    let stored = client.append(audit::AppendRequest { event: Some(first.clone()) }).await.expect("append");
    assert_eq!(stored.into_inner().sequence, 1);

    // Eight callers, three batches of 1,000 each in turn: while one group of 2,000 is stored the
    // next fills up and is planned. Every batch repeats the first event.
    let calls: Vec<_> = (0..8)
        .map(|caller| {
            let mut client = app.audit_client();
            let first = first.clone();
            tokio::spawn(async move {
                let mut told = Vec::new();
                for round in 0..3 {
                    let mut events: Vec<audit::AuditEvent> =
                        (0..1_000).map(|i| event(10_000 * (caller + 1) + 1_000 * round + i, "demo.pipeline")).collect();
                    events[500 + caller] = first.clone();
                    let answer = client
                        .append_batch(audit::AppendBatchRequest { events: events.clone() })
                        .await
                        .expect("the batch is stored")
                        .into_inner();
                    for (i, result) in answer.results.iter().enumerate() {
                        assert_eq!(result.event_id, events[i].event_id);
                        if i == 500 + caller {
                            assert!(result.duplicate && result.sequence == 1, "the stored id keeps its sequence");
                        } else {
                            assert!(!result.duplicate, "event {i} of caller {caller} is new");
                            told.push((result.event_id.clone(), result.sequence));
                        }
                    }
                }
                told
            })
        })
        .collect();
    let mut told = vec![(first.event_id.clone(), 1)];
    for call in calls {
        told.extend(call.await.expect("caller"));
    }
    told.sort_by_key(|(_, sequence)| *sequence);

    // The log (contiguous, chained and verified by `exported_ids`) holds each event once, at the
    // sequence its caller was told.
    assert_eq!(exported_ids(&app).await, told);
}
