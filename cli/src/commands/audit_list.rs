//! `prfix audit list`: the audit log, newest first, within a time window.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use prfix_proto::audit::v1 as audit;

use super::time;
use crate::error::{CliError, CliResult};
use crate::session::Session;

/// What `prfix audit list` asks for.
pub struct ListArgs {
    /// Only this actor.
    pub actor: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Events at or after this time (`--since`).
    pub since: Option<String>,
    /// Events before this time (`--until`).
    pub until: Option<String>,
    /// How many events.
    pub limit: i32,
}

/// A time as `--since` and `--until` take it: RFC 3339 (`2026-05-01T12:00:00Z`), a UTC date
/// (`2026-05-01`, its midnight), or an age before `now` (`90s`, `30m`, `2h`, `7d`).
pub fn parse_time(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or(now));
    }
    let bad =
        || format!("`{text}` is not a time: give 2026-05-01T12:00:00Z, 2026-05-01, or an age such as 30m, 2h, 7d");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().map_err(|_| bad())?;
    let age = match unit {
        "s" => TimeDelta::try_seconds(n),
        "m" => TimeDelta::try_minutes(n),
        "h" => TimeDelta::try_hours(n),
        "d" => TimeDelta::try_days(n),
        _ => None,
    }
    .ok_or_else(bad)?;
    now.checked_sub_signed(age).ok_or_else(bad)
}

fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0) }
}

/// Lists audit events, newest first.
pub async fn list(gateway: &str, args: ListArgs) -> CliResult {
    let now = Utc::now();
    let parse = |flag: &str, text: Option<String>| {
        text.map(|t| parse_time(&t, now).map_err(|e| CliError::new(format!("{flag}: {e}")))).transpose()
    };
    let start = parse("--since", args.since)?;
    let end = parse("--until", args.until)?;
    if let (Some(start), Some(end)) = (start, end)
        && start >= end
    {
        return Err(CliError::new("--since must be before --until"));
    }
    if args.limit < 1 {
        return Err(CliError::new("--limit must be at least 1"));
    }
    let session = Session::open(gateway).await?;
    let events = session
        .audit()
        .list_events(audit::ListEventsRequest {
            actor: args.actor.unwrap_or_default(),
            action: args.action.unwrap_or_default(),
            start_time: start.map(timestamp),
            end_time: end.map(timestamp),
            page_size: args.limit,
            newest_first: true,
            ..Default::default()
        })
        .await
        .map_err(|s| session.fail("listing audit events", &s))?
        .into_inner();
    println!("{:>6}  {:<19}  {:<20}  {:<8}  {:<44}  resource", "seq", "time", "actor", "result", "action");
    for e in &events.events {
        let result = audit::AuditResult::try_from(e.result)
            .map(|r| r.as_str_name().trim_start_matches("AUDIT_RESULT_").to_lowercase())
            .unwrap_or_default();
        println!(
            "{:>6}  {:<19}  {:<20}  {:<8}  {:<44}  {}",
            e.sequence,
            time(e.time.as_ref()),
            e.actor.as_ref().map(|a| a.subject.as_str()).unwrap_or(""),
            result,
            e.action,
            e.resource
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc_3339_dates_or_ages() {
        let now = DateTime::parse_from_rfc3339("2026-05-10T12:00:00Z").expect("time").with_timezone(&Utc);
        let at = |text| parse_time(text, now).map(|t| t.to_rfc3339());
        assert_eq!(at("2026-05-01T08:30:00+02:00").as_deref(), Ok("2026-05-01T06:30:00+00:00"));
        assert_eq!(at("2026-05-01").as_deref(), Ok("2026-05-01T00:00:00+00:00"));
        assert_eq!(at("90s").as_deref(), Ok("2026-05-10T11:58:30+00:00"));
        assert_eq!(at("2h").as_deref(), Ok("2026-05-10T10:00:00+00:00"));
        assert_eq!(at("7d").as_deref(), Ok("2026-05-03T12:00:00+00:00"));
        for bad in ["yesterday", "2w", "h", "-3h", "2026-13-01"] {
            assert!(at(bad).is_err_and(|e| e.contains(bad)), "{bad}");
        }
    }
}
