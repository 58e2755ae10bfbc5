//! The audit chart's backup CronJob.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, SystemTime};

use prfix_tests::TestDatabase;
use serde_json::{Value, json};

use super::migration::migrate;
use super::{Charts, annotation};
use crate::support::{find, kind, list, read, run_tool, shellcheck, yaml_documents};

#[test]
fn the_audit_charts_backup_cronjob_runs_pg_dump_into_its_volume_with_retention() {
    let charts = Charts::prepare();
    for (values, keep, max_age) in [("values.yaml", "7", "30"), ("values.production.yaml", "30", "30")] {
        let what = format!("prfix-audit with {values}");
        let objects = yaml_documents(&what, &charts.render("prfix-audit", values, &[]));
        let cron = find(&objects, "CronJob", "prfix-audit-backup");
        let spec = &cron["spec"];
        assert_eq!(spec["concurrencyPolicy"], "Forbid", "{what}: one backup at a time");
        assert!(spec["schedule"].as_str().is_some_and(|s| s.split(' ').count() == 5), "{what}: {}", spec["schedule"]);
        assert!(spec["jobTemplate"]["spec"]["activeDeadlineSeconds"].as_i64().is_some(), "{what}: a deadline");
        let pod = &spec["jobTemplate"]["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never", "{what}");
        let container = &list(&pod["containers"])[0];
        let image = container["image"].as_str().unwrap_or_default();
        assert!(image.starts_with("docker.io/library/postgres:"), "{what}: a Postgres client image: {image}");
        assert_eq!(container["command"], json!(["bash", "/opt/prfix/backup-job"]), "{what}");
        let environment: BTreeMap<&str, &Value> =
            list(&container["env"]).iter().map(|v| (v["name"].as_str().unwrap_or_default(), v)).collect();
        assert_eq!(environment["BACKUP_KEEP"]["value"], keep, "{what}: keeps the newest {keep}");
        assert_eq!(environment["BACKUP_MAX_AGE_DAYS"]["value"], max_age, "{what}: none older than {max_age} days");
        assert_eq!(
            environment["PRFIX_DATABASE_URL"]["valueFrom"]["secretKeyRef"],
            json!({"name": "prfix-database", "key": "url"}),
            "{what}: the database URL from its Secret"
        );
        let dir = environment["BACKUP_DIR"]["value"].as_str().expect("BACKUP_DIR");

        // The volumes: the dumps on the claim, the scripts from the ConfigMap.
        let mounts: BTreeMap<&str, &str> = list(&container["volumeMounts"])
            .iter()
            .map(|m| (m["mountPath"].as_str().unwrap_or_default(), m["name"].as_str().unwrap_or_default()))
            .collect();
        let volume = |name: &str| {
            list(&pod["volumes"])
                .iter()
                .find(|v| v["name"] == name)
                .unwrap_or_else(|| panic!("{what}: no volume {name}"))
        };
        let claim = volume(mounts[dir])["persistentVolumeClaim"]["claimName"].as_str().expect("a claim");
        let pvc = find(&objects, "PersistentVolumeClaim", claim);
        assert_eq!(annotation(pvc, "helm.sh/resource-policy"), Some("keep"), "{what}: the backups outlive the release");
        let scripts = volume(mounts["/opt/prfix"])["configMap"]["name"].as_str().expect("a ConfigMap");
        let data = &find(&objects, "ConfigMap", scripts)["data"];
        // scripts/backup runs pg_dump --format=custom and keeps the newest N (--keep); the job
        // passes it the directory and N.
        let backup = data["backup"].as_str().expect("the backup script");
        assert!(backup.contains("pg_dump --format=custom"), "{what}: scripts/backup dumps in the custom format");
        let job = data["backup-job"].as_str().expect("the job's script");
        assert!(job.contains(r#"--dir "$dir" --keep "$keep""#), "{what}: {job}");
        assert!(job.contains("BACKUP_MAX_AGE_DAYS"), "{what}: {job}");
        // A change of the scripts rolls into the next run.
        let template = &spec["jobTemplate"]["spec"]["template"];
        assert!(template["metadata"]["annotations"]["checksum/scripts"].is_string(), "{what}");
    }

    // An existing claim is used as it is, and no other is made; retention follows the values.
    let objects = yaml_documents(
        "prfix-audit with an existing claim",
        &charts.render(
            "prfix-audit",
            "values.production.yaml",
            &[
                "--set",
                "backup.persistence.existingClaim=audit-dumps",
                "--set",
                "backup.retention.keep=5",
                "--set",
                "backup.retention.maxAgeDays=0",
                "--set",
                "backup.database.name=prfix-backup-reader",
            ],
        ),
    );
    assert!(!objects.iter().any(|o| kind(o) == "PersistentVolumeClaim"), "no claim is made");
    let cron = find(&objects, "CronJob", "prfix-audit-backup");
    let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert!(
        list(&pod["volumes"]).iter().any(|v| v["persistentVolumeClaim"]["claimName"] == "audit-dumps"),
        "the existing claim is mounted"
    );
    let env = &list(&pod["containers"])[0]["env"];
    let value = |n: &str| list(env).iter().find(|v| v["name"] == n).cloned().unwrap_or(Value::Null);
    assert_eq!(value("BACKUP_KEEP")["value"], "5");
    assert_eq!(value("BACKUP_MAX_AGE_DAYS")["value"], "0");
    assert_eq!(value("PRFIX_DATABASE_URL")["valueFrom"]["secretKeyRef"]["name"], "prfix-backup-reader");
    // And off when asked.
    let text = charts.render("prfix-audit", "values.yaml", &["--set", "backup.enabled=false"]);
    assert!(!text.contains("kind: CronJob") && !text.contains("PersistentVolumeClaim"), "backups off");
}

#[test]
fn the_charts_backup_scripts_pass_shellcheck_and_ship_scripts_backup_unchanged() {
    assert_eq!(
        read("charts/prfix-audit/files/backup"),
        read("scripts/backup"),
        "charts/prfix-audit/files/backup is a copy of scripts/backup: copy it again"
    );
    shellcheck(&["charts/prfix-audit/files/backup", "charts/prfix-audit/files/backup-job"]);
}

/// The date in a dump's name (`prfix-20260102T030405.678Z.dump`), as scripts/backup writes it.
fn dump_name(days_ago: u64, n: u64) -> (String, SystemTime) {
    let when = SystemTime::now() - Duration::from_secs(days_ago * 86_400 + n * 60);
    let stamp = chrono::DateTime::<chrono::Utc>::from(when).format("%Y%m%dT%H%M%S%.3fZ");
    (format!("prfix-{stamp}.dump"), when)
}

#[tokio::test]
async fn the_backup_cronjobs_script_dumps_the_database_and_keeps_only_the_newest_and_recent_dumps() {
    let objects = tokio::task::spawn_blocking(|| {
        let charts = Charts::prepare();
        yaml_documents(
            "prfix-audit",
            &charts.render(
                "prfix-audit",
                "values.yaml",
                &["--set", "backup.retention.keep=4", "--set", "backup.retention.maxAgeDays=10"],
            ),
        )
    })
    .await
    .expect("rendering prfix-audit");
    let cron = find(&objects, "CronJob", "prfix-audit-backup");
    let container = &list(&cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"])[0];
    let data = &find(&objects, "ConfigMap", "prfix-audit-backup-scripts")["data"];

    // The scripts as the ConfigMap mounts them, a backup directory in place of the claim.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let scripts = dir.path().join("opt-prfix");
    let backups = dir.path().join("backups");
    std::fs::create_dir_all(&scripts).expect("a directory");
    std::fs::create_dir_all(&backups).expect("a directory");
    for file in ["backup", "backup-job"] {
        std::fs::write(scripts.join(file), data[file].as_str().expect("a script")).expect("writable");
    }
    // Earlier dumps: two recent ones, three past the age limit, and a file that is no dump of ours.
    let mut earlier = Vec::new();
    for (days, n) in [(1, 0), (2, 0), (11, 0), (12, 0), (40, 0)] {
        let (file, when) = dump_name(days, n);
        let path = backups.join(&file);
        std::fs::write(&path, "an earlier dump").expect("writable");
        std::fs::write(backups.join(format!("{file}.sha256")), "checksum").expect("writable");
        std::fs::File::options().write(true).open(&path).expect("open").set_modified(when).expect("set mtime");
        earlier.push((file, days));
    }
    std::fs::write(backups.join("notes.txt"), "kept").expect("writable");

    // A database with the audit schema in it, to dump.
    let database = TestDatabase::fresh();
    let mut environment = BTreeMap::new();
    environment.insert("PRFIX_DATABASE_URL".to_owned(), database.url.clone());
    assert_eq!(migrate("prfix-audit", &environment).await, ExitCode::SUCCESS);

    let variables: BTreeMap<String, String> = list(&container["env"])
        .iter()
        .filter_map(|v| Some((v["name"].as_str()?.to_owned(), v["value"].as_str()?.to_owned())))
        .collect();
    let ran = tokio::task::spawn_blocking({
        let (scripts, backups, url) = (scripts.clone(), backups.clone(), database.url.clone());
        move || {
            let mut command = Command::new("bash");
            command
                .arg(scripts.join("backup-job"))
                .envs(&variables)
                .env("BACKUP_DIR", &backups)
                .env("PRFIX_DATABASE_URL", url)
                .env("HOME", backups.parent().expect("a parent"));
            run_tool("the backup job", &mut command, None, Duration::from_secs(120))
        }
    })
    .await
    .expect("the backup job");
    assert!(ran.success, "the backup job failed:\n{}", ran.report());
    let made = PathBuf::from(ran.stdout.trim());
    assert_eq!(made.parent(), Some(backups.as_path()), "{}", ran.report());

    // The new dump reads back as a custom-format archive holding the audit log, with its checksum.
    let listing = run_tool(
        "pg_restore --list",
        Command::new("pg_restore").arg("--list").arg(&made),
        None,
        Duration::from_secs(60),
    );
    assert!(listing.success && listing.stdout.contains("audit events"), "{}", listing.report());
    let sum = std::fs::read_to_string(format!("{}.sha256", made.display())).expect("the checksum");
    assert!(sum.ends_with(&format!("  {}\n", made.file_name().expect("a name").to_string_lossy())), "{sum}");

    // Kept: the newest four (the new one and the three next), minus those older than ten days.
    let present: BTreeSet<String> = std::fs::read_dir(&backups)
        .expect("readable")
        .map(|e| e.expect("an entry").file_name().to_string_lossy().into_owned())
        .collect();
    let new = made.file_name().expect("a name").to_string_lossy().into_owned();
    let mut expected: BTreeSet<String> = BTreeSet::from(["notes.txt".to_owned()]);
    for file in [new.clone(), earlier[0].0.clone(), earlier[1].0.clone()] {
        expected.insert(format!("{file}.sha256"));
        expected.insert(file);
    }
    assert_eq!(present, expected, "{}", ran.report());
}
