//! When automatic backups are due, and which backups retention deletes: pure time logic.
//!
//! Nothing here reads a clock or touches storage: every function takes `now` (and the times
//! of existing backups) as arguments, so the scheduler, `INFO` and `keeper backup prune` all
//! decide the same way and tests can walk through days of simulated time.
//!
//! - A [`Schedule`] is either a daily [`BackupWindow`] (`backup-window 05:00-06:00`, UTC, as
//!   ElastiCache's `PreferredSnapshotWindow`: one automatic backup per day, started inside the
//!   window) or a cron expression ([`CronSchedule`]; a run missed while the node was down is
//!   made up once, not once per missed occurrence).
//! - [`Retention`] (`backup-retention-days`, 0–35) and [`prune_plan`] decide which backups
//!   expire: only automatic ones, never the newest valid backup, never one in progress.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveTime, SubsecRound, TimeDelta, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Why a backup was made. Manifests store it as `"automatic"`, `"manual"` or `"final"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupKind {
    /// Made by the scheduler; expires after `backup-retention-days`.
    Automatic,
    /// Asked for (`keeper backup create`, `BGSAVE`-like requests); deleted only on request.
    Manual,
    /// Made when the node shut down; deleted only on request.
    Final,
}

impl BackupKind {
    /// Every kind, in the order above.
    pub const ALL: [BackupKind; 3] = [BackupKind::Automatic, BackupKind::Manual, BackupKind::Final];

    /// The name manifests, ids (`<kind>-<time>`) and the CLI use.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupKind::Automatic => "automatic",
            BackupKind::Manual => "manual",
            BackupKind::Final => "final",
        }
    }
}

impl fmt::Display for BackupKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BackupKind {
    type Err = Error;

    /// The names of [`BackupKind::as_str`], in any case (as Redis reads enum options).
    fn from_str(s: &str) -> Result<Self> {
        BackupKind::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "unknown backup kind {s:?}: expected automatic, manual or final"
                ))
            })
    }
}

const MINUTES_PER_DAY: u16 = 24 * 60;

/// When automatic backups are made: a daily window or a cron expression (both in UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// `backup-window HH:MM-HH:MM`: one automatic backup per day, started inside the window.
    Window(BackupWindow),
    /// A cron expression: a backup at each occurrence, a missed one made up once.
    Cron(CronSchedule),
}

impl Schedule {
    /// Parses a `backup-window` value, `HH:MM-HH:MM` in UTC (see [`BackupWindow`]).
    pub fn parse_window(value: &str) -> Result<Schedule> {
        BackupWindow::parse(value).map(Schedule::Window)
    }

    /// Parses a cron expression (5 fields, or 6 with seconds first; see [`CronSchedule`]).
    pub fn parse_cron(value: &str) -> Result<Schedule> {
        CronSchedule::parse(value).map(Schedule::Cron)
    }

    /// Whether an automatic backup should start at `now`.
    ///
    /// `last_automatic` is the creation time of the newest automatic backup (any validity);
    /// `since` is when the scheduler started, the reference of a cron schedule before any
    /// automatic backup exists. After a failed backup `last_automatic` does not move, so this
    /// stays true: the scheduler should wait before retrying.
    ///
    /// - Window: `now` lies inside today's occurrence of the window (or yesterday's, for a
    ///   window that wraps midnight) and no automatic backup was created since that occurrence
    ///   began. A backup whose time is after `now` (a clock that went back) also counts as
    ///   done, so a clock step never causes a second backup in one window. A window the node
    ///   was down for is skipped, as ElastiCache skips it.
    /// - Cron: the first occurrence after `last_automatic` (or after `since` when there is no
    ///   automatic backup) is at or before `now`. However many occurrences were missed while
    ///   the node was down, one backup makes them up.
    pub fn due(
        &self,
        now: DateTime<Utc>,
        last_automatic: Option<DateTime<Utc>>,
        since: DateTime<Utc>,
    ) -> bool {
        match self {
            Schedule::Window(window) => window.due(now, last_automatic),
            Schedule::Cron(cron) => cron.due(now, last_automatic, since),
        }
    }

    /// When [`Schedule::due`] next becomes true: `now` if it is true now, otherwise the
    /// earliest later instant (for `INFO` and the scheduler's sleep). It stays true from then
    /// until a backup is made (a window: until the window closes). A cron expression that
    /// never fires again (its year field lies in the past) gives `DateTime::<Utc>::MAX_UTC`.
    pub fn next_due(
        &self,
        now: DateTime<Utc>,
        last_automatic: Option<DateTime<Utc>>,
        since: DateTime<Utc>,
    ) -> DateTime<Utc> {
        match self {
            Schedule::Window(window) => window.next_due(now, last_automatic),
            Schedule::Cron(cron) => cron.next_due(now, last_automatic, since),
        }
    }
}

/// The configuration value: `05:00-06:00` for a window, the expression for cron.
impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Window(window) => window.fmt(f),
            Schedule::Cron(cron) => cron.fmt(f),
        }
    }
}

/// A daily backup window in UTC, `HH:MM-HH:MM`, as ElastiCache's `PreferredSnapshotWindow`.
///
/// At least 60 minutes long. The end may be earlier than the start: the window then wraps
/// midnight (`23:30-00:30` is one hour). An end equal to the start is the whole day (24 h:
/// one backup per day at any time, the day starting at that time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupWindow {
    /// Minutes after midnight UTC at which each occurrence opens, `0..1440`.
    start_minute: u16,
    /// Length of each occurrence, `60..=1440`: occurrences never overlap.
    minutes: u16,
}

impl BackupWindow {
    /// The shortest window ElastiCache accepts.
    pub const MIN_MINUTES: u16 = 60;

    /// Parses `HH:MM-HH:MM` (two digits each, hours 00–23, minutes 00–59).
    pub fn parse(value: &str) -> Result<BackupWindow> {
        let invalid =
            |why: String| Error::InvalidArgument(format!("backup-window {value:?}: {why}"));
        let Some((start, end)) = value.split_once('-') else {
            return Err(invalid(
                "expected HH:MM-HH:MM (UTC), e.g. 05:00-06:00".into(),
            ));
        };
        let start = parse_time_of_day(start).map_err(&invalid)?;
        let end = parse_time_of_day(end).map_err(&invalid)?;
        let minutes = match (end + MINUTES_PER_DAY - start) % MINUTES_PER_DAY {
            0 => MINUTES_PER_DAY,
            minutes => minutes,
        };
        if minutes < Self::MIN_MINUTES {
            return Err(invalid(format!(
                "the window is {minutes} minutes long; it must be at least {} minutes",
                Self::MIN_MINUTES
            )));
        }
        Ok(BackupWindow {
            start_minute: start,
            minutes,
        })
    }

    /// When each occurrence opens (UTC).
    pub fn start(&self) -> NaiveTime {
        let minute = u32::from(self.start_minute);
        NaiveTime::from_hms_opt(minute / 60, minute % 60, 0).unwrap_or(NaiveTime::MIN)
    }

    /// How long each occurrence lasts: 1 to 24 hours.
    pub fn duration(&self) -> TimeDelta {
        TimeDelta::minutes(i64::from(self.minutes))
    }

    /// The opening of the latest occurrence at or before `t` (None only near the start of
    /// time, where no occurrence opens before `t`).
    fn opening_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let today = t.date_naive().and_time(self.start()).and_utc();
        if today <= t {
            Some(today)
        } else {
            today.checked_sub_signed(TimeDelta::days(1))
        }
    }

    /// The opening of the occurrence that contains `t`, if one does.
    fn occurrence_containing(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let opening = self.opening_at_or_before(t)?;
        let inside = opening
            .checked_add_signed(self.duration())
            .is_none_or(|close| t < close);
        inside.then_some(opening)
    }

    fn due(&self, now: DateTime<Utc>, last_automatic: Option<DateTime<Utc>>) -> bool {
        self.occurrence_containing(now)
            .is_some_and(|opening| last_automatic.is_none_or(|last| last < opening))
    }

    fn next_due(&self, now: DateTime<Utc>, last_automatic: Option<DateTime<Utc>>) -> DateTime<Utc> {
        let next_day = |t: DateTime<Utc>| {
            t.checked_add_signed(TimeDelta::days(1))
                .unwrap_or(DateTime::<Utc>::MAX_UTC)
        };
        // The first occurrence that is not over at `now`…
        let mut opening = match (
            self.occurrence_containing(now),
            self.opening_at_or_before(now),
        ) {
            (Some(current), _) => current,
            (None, Some(previous)) => next_day(previous),
            (None, None) => return DateTime::<Utc>::MAX_UTC,
        };
        // …unless a backup already covers it: then the first occurrence opening after that
        // backup (later than `now`, since the covered occurrence did not end before `now`).
        if let Some(last) = last_automatic
            && last >= opening
        {
            opening = match self.opening_at_or_before(last) {
                Some(covered) => next_day(covered),
                None => return DateTime::<Utc>::MAX_UTC,
            };
        }
        opening.max(now)
    }
}

/// `HH:MM-HH:MM`, the end printed modulo 24 h (a 24-hour window prints as `05:00-05:00`).
impl fmt::Display for BackupWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = (self.start_minute + self.minutes) % MINUTES_PER_DAY;
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start_minute / 60,
            self.start_minute % 60,
            end / 60,
            end % 60
        )
    }
}

/// `HH:MM` as minutes after midnight; the error says which part is wrong.
fn parse_time_of_day(text: &str) -> std::result::Result<u16, String> {
    let format = || format!("{text:?} is not a time HH:MM (UTC, two digits each)");
    let (hours, minutes) = text.split_once(':').ok_or_else(format)?;
    let two_digits = |part: &str| {
        (part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse::<u16>().ok())
            .flatten()
    };
    let (Some(hours), Some(minutes)) = (two_digits(hours), two_digits(minutes)) else {
        return Err(format());
    };
    if hours > 23 {
        return Err(format!("hour {hours:02} in {text:?} is not 00-23"));
    }
    if minutes > 59 {
        return Err(format!("minute {minutes:02} in {text:?} is not 00-59"));
    }
    Ok(hours * 60 + minutes)
}

/// A cron expression in UTC, read by `croner`: 5 fields (minute hour day-of-month month
/// day-of-week), 6 with seconds first, 7 with seconds first and a year last; `@daily`-style
/// nicknames; croner's `L`, `W`, `#` extensions.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    /// Boxed: croner's pattern is over 300 bytes, a window 4.
    cron: Box<Cron>,
    /// The expression as configured (trimmed), printed back by Display.
    text: String,
}

impl CronSchedule {
    /// Parses `value`; refuses an expression that never matches any time after 1970 (such as
    /// `0 0 30 2 *`), which would otherwise never back anything up.
    pub fn parse(value: &str) -> Result<CronSchedule> {
        let invalid = |why: String| {
            Error::InvalidArgument(format!("backup cron expression {value:?}: {why}"))
        };
        let text = value.trim();
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(text)
            .map_err(|e| invalid(e.to_string()))?;
        cron.find_next_occurrence(&DateTime::<Utc>::UNIX_EPOCH, true)
            .map_err(|e| invalid(format!("it never matches any time ({e})")))?;
        Ok(CronSchedule {
            cron: Box::new(cron),
            text: text.to_string(),
        })
    }

    /// The first occurrence strictly after `reference`, in whole seconds (croner's
    /// resolution); None when there is none (a past year).
    fn first_after(&self, reference: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // An occurrence at 05:00:00 is not after a reference of 05:00:00.250: truncating first
        // keeps croner from returning 05:00:00.250 + n seconds.
        self.cron
            .find_next_occurrence(&reference.trunc_subsecs(0), false)
            .ok()
    }

    /// The reference is the newest automatic backup when there is one (not the scheduler's
    /// start), so that an occurrence missed while the node was down is still made up.
    fn due(
        &self,
        now: DateTime<Utc>,
        last_automatic: Option<DateTime<Utc>>,
        since: DateTime<Utc>,
    ) -> bool {
        self.first_after(last_automatic.unwrap_or(since))
            .is_some_and(|next| next <= now)
    }

    fn next_due(
        &self,
        now: DateTime<Utc>,
        last_automatic: Option<DateTime<Utc>>,
        since: DateTime<Utc>,
    ) -> DateTime<Utc> {
        self.first_after(last_automatic.unwrap_or(since))
            .map_or(DateTime::<Utc>::MAX_UTC, |next| next.max(now))
    }
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for CronSchedule {}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `backup-retention-days`: how many days automatic backups are kept, 0–35 as ElastiCache's
/// `SnapshotRetentionLimit`. 0 turns automatic backups off: the scheduler makes none and
/// [`prune_plan`] expires nothing by age (existing automatic backups stay until deleted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    days: u32,
}

impl Retention {
    /// The longest retention ElastiCache allows.
    pub const MAX_DAYS: u32 = 35;

    /// `days` in `0..=35`; the error names the value.
    pub fn new(days: u32) -> Result<Retention> {
        if days > Self::MAX_DAYS {
            return Err(Self::out_of_range(&days.to_string()));
        }
        Ok(Retention { days })
    }

    fn out_of_range(value: &str) -> Error {
        Error::InvalidArgument(format!(
            "backup-retention-days {value:?}: must be an integer from 0 to {} \
             (0 turns automatic backups off)",
            Self::MAX_DAYS
        ))
    }

    pub fn days(self) -> u32 {
        self.days
    }

    /// False for 0 days: no automatic backups are made or expired.
    pub fn automatic_backups_enabled(self) -> bool {
        self.days > 0
    }
}

impl FromStr for Retention {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        s.parse::<u32>()
            .map_err(|_| Self::out_of_range(s))
            .and_then(Retention::new)
    }
}

impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.days)
    }
}

/// What [`prune_plan`] needs to know of one backup in the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneCandidate {
    pub id: String,
    pub kind: BackupKind,
    pub created: DateTime<Utc>,
    /// False when the backup failed verification (its data does not match its manifest).
    pub valid: bool,
}

/// The newest valid backup of any kind: the restore point pruning always keeps. Ties on
/// `created` go to the greatest id, so every caller picks the same one.
pub fn newest_valid(candidates: &[PruneCandidate]) -> Option<&PruneCandidate> {
    candidates
        .iter()
        .filter(|c| c.valid)
        .max_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)))
}

/// The ids retention deletes, oldest first (ties by id), each once.
///
/// An automatic backup expires once it was created more than `retention.days()` days before
/// `now`, whether valid or not. Never deleted by age: manual and final backups (only on
/// request), the newest valid backup of any kind (see [`newest_valid`]: a node always keeps a
/// restore point, even if its automatic backups stopped long ago), backups whose id is in
/// `in_progress`, and anything at all when retention is 0 (automatic backups are off, and
/// those that exist stay until deleted by hand).
pub fn prune_plan(
    candidates: &[PruneCandidate],
    now: DateTime<Utc>,
    retention: Retention,
    in_progress: &[String],
) -> Vec<String> {
    if !retention.automatic_backups_enabled() {
        return Vec::new();
    }
    let keep = newest_valid(candidates).map(|c| c.id.as_str());
    let max_age = TimeDelta::days(i64::from(retention.days()));
    let mut expired: Vec<&PruneCandidate> = candidates
        .iter()
        .filter(|c| {
            c.kind == BackupKind::Automatic
                && Some(c.id.as_str()) != keep
                && !in_progress.contains(&c.id)
                && now.signed_duration_since(c.created) > max_age
        })
        .collect();
    expired.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
    let mut seen = HashSet::new();
    expired
        .into_iter()
        .filter(|c| seen.insert(c.id.as_str()))
        .map(|c| c.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .with_timezone(&Utc)
    }

    fn window(text: &str) -> Schedule {
        Schedule::parse_window(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn cron(text: &str) -> Schedule {
        Schedule::parse_cron(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn error_text(result: Result<impl fmt::Debug>) -> String {
        match result {
            Ok(v) => panic!("accepted: {v:?}"),
            Err(e) => e.to_string(),
        }
    }

    // ---- BackupKind ----

    #[test]
    fn kinds_have_lowercase_names_everywhere() {
        for (kind, name) in [
            (BackupKind::Automatic, "automatic"),
            (BackupKind::Manual, "manual"),
            (BackupKind::Final, "final"),
        ] {
            assert_eq!(kind.to_string(), name);
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{name}\""));
            assert_eq!(
                serde_json::from_str::<BackupKind>(&format!("\"{name}\"")).unwrap(),
                kind
            );
            assert_eq!(name.parse::<BackupKind>().unwrap(), kind);
            assert_eq!(name.to_uppercase().parse::<BackupKind>().unwrap(), kind);
        }
        // Manifests are written by us: serde takes only the exact names.
        assert!(serde_json::from_str::<BackupKind>("\"Automatic\"").is_err());
        let e = error_text("weekly".parse::<BackupKind>());
        assert!(
            e.contains("\"weekly\"") && e.contains("automatic, manual or final"),
            "{e}"
        );
    }

    // ---- Window: parsing ----

    #[test]
    fn windows_parse_and_print_back() {
        for (text, start, minutes) in [
            ("05:00-06:00", (5, 0), 60),
            ("23:30-00:30", (23, 30), 60),
            ("22:00-04:15", (22, 0), 375),
            ("00:00-23:59", (0, 0), 1439),
            ("13:45-13:45", (13, 45), 1440),
        ] {
            let Schedule::Window(w) = window(text) else {
                panic!("{text} is not a window")
            };
            assert_eq!(
                w.start(),
                NaiveTime::from_hms_opt(start.0, start.1, 0).unwrap()
            );
            assert_eq!(w.duration(), TimeDelta::minutes(minutes), "{text}");
            assert_eq!(w.to_string(), text);
            assert_eq!(window(text).to_string(), text);
        }
    }

    #[test]
    fn bad_windows_are_refused_naming_the_value_and_the_reason() {
        for (text, reason) in [
            ("05:00-05:59", "59 minutes long; it must be at least 60"),
            ("23:30-00:29", "59 minutes long"),
            ("05:00-05:01", "1 minutes long"),
            ("5:00-06:00", "\"5:00\" is not a time HH:MM"),
            ("05:00-6:00", "\"6:00\" is not a time"),
            ("24:00-01:00", "hour 24 in \"24:00\" is not 00-23"),
            ("05:60-07:00", "minute 60 in \"05:60\" is not 00-59"),
            ("05:00", "expected HH:MM-HH:MM"),
            ("", "expected HH:MM-HH:MM"),
            ("05:00-06:00-07:00", "is not a time"),
            (" 05:00-06:00", "is not a time"),
            ("+5:00-06:00", "is not a time"),
            ("0500-0600", "is not a time"),
        ] {
            let e = error_text(Schedule::parse_window(text));
            assert!(
                e.contains(&format!("backup-window {text:?}")),
                "{text}: {e}"
            );
            assert!(e.contains(reason), "{text}: {e}");
        }
    }

    // ---- Window: due / next_due ----

    /// Never read by a window schedule: a value that would change the answer if it were.
    const SINCE: &str = "2026-11-22T05:30:00Z";

    #[test]
    fn window_is_due_inside_until_a_backup_is_made() {
        let s = window("05:00-06:00");
        let since = at(SINCE);
        let due = |now: &str, last: Option<&str>| s.due(at(now), last.map(at), since);
        // Half-open [05:00, 06:00).
        assert!(!due("2026-11-22T04:59:59.999Z", None));
        assert!(due("2026-11-22T05:00:00Z", None));
        assert!(due("2026-11-22T05:59:59.999Z", None));
        assert!(!due("2026-11-22T06:00:00Z", None));
        // Yesterday's backup does not count for today.
        assert!(due("2026-11-22T05:10:00Z", Some("2026-11-21T05:01:00Z")));
        assert!(due("2026-11-22T05:10:00Z", Some("2026-11-22T04:59:59Z")));
        // Today's does.
        assert!(!due("2026-11-22T05:10:00Z", Some("2026-11-22T05:00:00Z")));
        assert!(!due("2026-11-22T05:59:00Z", Some("2026-11-22T05:10:00Z")));
        // A backup "after now" (the clock went back) counts as done.
        assert!(!due("2026-11-22T05:10:00Z", Some("2026-11-22T07:00:00Z")));
        // A day the node was down through the window is skipped, not made up.
        assert!(!due("2026-11-25T09:00:00Z", Some("2026-11-21T05:01:00Z")));
    }

    #[test]
    fn window_wrapping_midnight_belongs_to_the_day_it_opens() {
        let s = window("23:30-00:30");
        let since = at(SINCE);
        let due = |now: &str, last: Option<&str>| s.due(at(now), last.map(at), since);
        assert!(due("2026-11-22T23:30:00Z", None));
        assert!(due("2026-11-23T00:15:00Z", None));
        assert!(!due("2026-11-23T00:30:00Z", None));
        assert!(!due("2026-11-23T23:29:59Z", None));
        // A backup at 23:45 covers 00:15 the next calendar day: same occurrence.
        assert!(!due("2026-11-23T00:15:00Z", Some("2026-11-22T23:45:00Z")));
        // One at 00:10 on the 22nd belonged to the occurrence that opened on the 21st.
        assert!(due("2026-11-22T23:31:00Z", Some("2026-11-22T00:10:00Z")));
        assert_eq!(
            s.next_due(
                at("2026-11-23T00:15:00Z"),
                Some(at("2026-11-22T23:45:00Z")),
                since
            ),
            at("2026-11-23T23:30:00Z")
        );
    }

    #[test]
    fn whole_day_window_allows_exactly_one_backup_per_day() {
        let s = window("05:00-05:00");
        let since = at(SINCE);
        // Always inside some occurrence.
        assert!(s.due(at("2026-11-22T04:59:59Z"), None, since));
        assert!(s.due(
            at("2026-11-22T05:00:00Z"),
            Some(at("2026-11-22T04:59:59Z")),
            since
        ));
        assert!(!s.due(
            at("2026-11-23T04:59:59Z"),
            Some(at("2026-11-22T05:00:00Z")),
            since
        ));
        assert_eq!(
            s.next_due(
                at("2026-11-22T12:00:00Z"),
                Some(at("2026-11-22T05:00:00Z")),
                since
            ),
            at("2026-11-23T05:00:00Z")
        );
    }

    #[test]
    fn window_next_due() {
        let s = window("05:00-06:00");
        let since = at(SINCE);
        let next = |now: &str, last: Option<&str>| s.next_due(at(now), last.map(at), since);
        // Due now: now.
        assert_eq!(
            next("2026-11-22T05:20:00Z", None),
            at("2026-11-22T05:20:00Z")
        );
        // Before the window: its opening.
        assert_eq!(
            next("2026-11-22T01:00:00Z", None),
            at("2026-11-22T05:00:00Z")
        );
        // After it, or done inside it: tomorrow's opening.
        assert_eq!(
            next("2026-11-22T07:00:00Z", None),
            at("2026-11-23T05:00:00Z")
        );
        assert_eq!(
            next("2026-11-22T05:20:00Z", Some("2026-11-22T05:01:00Z")),
            at("2026-11-23T05:00:00Z")
        );
        // A backup from the future (clock went back) defers to the window after it.
        assert_eq!(
            next("2026-11-22T01:00:00Z", Some("2026-11-24T05:30:00Z")),
            at("2026-11-25T05:00:00Z")
        );
        assert_eq!(
            next("2026-11-22T01:00:00Z", Some("2026-11-24T04:00:00Z")),
            at("2026-11-24T05:00:00Z")
        );
    }

    // ---- Cron ----

    #[test]
    fn cron_expressions_parse_and_print_back() {
        for text in [
            "0 5 * * *",
            "30 0 5 * * *",
            "@daily",
            "0 5 * * MON-FRI",
            "0 0 L * *",
        ] {
            assert_eq!(cron(text).to_string(), text);
        }
        assert_eq!(cron("  0 5 * * *\n").to_string(), "0 5 * * *");
        assert_eq!(cron("0 5 * * *"), cron("0 5 * * *"));
        assert_ne!(cron("0 5 * * *"), cron("0 6 * * *"));
        assert_ne!(cron("0 5 * * *"), window("05:00-06:00"));
    }

    #[test]
    fn bad_cron_expressions_are_refused_with_croners_reason() {
        for text in [
            "",
            "61 * * * *",
            "* * *",
            "0 5 * * * * * *",
            "0 25 * * *",
            "every day",
        ] {
            let croner = CronParser::builder()
                .seconds(Seconds::Optional)
                .build()
                .parse(text.trim())
                .map(|_| ())
                .unwrap_err()
                .to_string();
            let e = error_text(Schedule::parse_cron(text));
            assert!(
                e.contains(&format!("backup cron expression {text:?}")),
                "{e}"
            );
            assert!(e.contains(&croner), "{e} lacks {croner}");
        }
        // Parses, but matches nothing: February 30th.
        let e = error_text(Schedule::parse_cron("0 0 30 2 *"));
        assert!(
            e.contains("\"0 0 30 2 *\"") && e.contains("never matches"),
            "{e}"
        );
    }

    #[test]
    fn cron_first_run_follows_the_schedulers_start() {
        let s = cron("0 5 * * *");
        let since = at("2026-11-22T03:00:00Z");
        assert!(!s.due(at("2026-11-22T04:59:59Z"), None, since));
        assert!(s.due(at("2026-11-22T05:00:00Z"), None, since));
        assert_eq!(
            s.next_due(at("2026-11-22T03:00:00Z"), None, since),
            at("2026-11-22T05:00:00Z")
        );
        // Started after today's occurrence: tomorrow's.
        let since = at("2026-11-22T05:00:00Z");
        assert!(!s.due(at("2026-11-22T23:00:00Z"), None, since));
        assert_eq!(
            s.next_due(at("2026-11-22T23:00:00Z"), None, since),
            at("2026-11-23T05:00:00Z")
        );
    }

    #[test]
    fn cron_runs_a_missed_occurrence_once() {
        let s = cron("0 5 * * *");
        // The scheduler's start never hides a backup the schedule owes.
        let since = at("2026-11-25T10:00:00Z");
        let last = at("2026-11-21T05:00:02Z");
        // Down from the 21st to the 25th: four occurrences missed, one backup due.
        let now = at("2026-11-25T10:00:00Z");
        assert!(s.due(now, Some(last), since));
        assert_eq!(s.next_due(now, Some(last), since), now);
        let made = at("2026-11-25T10:00:07Z");
        assert!(!s.due(made, Some(made), since));
        assert!(!s.due(at("2026-11-26T04:59:59Z"), Some(made), since));
        assert!(s.due(at("2026-11-26T05:00:00Z"), Some(made), since));
        assert_eq!(
            s.next_due(made, Some(made), since),
            at("2026-11-26T05:00:00Z")
        );
    }

    #[test]
    fn cron_occurrence_covered_by_a_backup_a_fraction_later_is_not_repeated() {
        let s = cron("0 5 * * *");
        let since = at("2026-11-01T00:00:00Z");
        let last = at("2026-11-22T05:00:00.250Z");
        assert!(!s.due(at("2026-11-22T05:00:01Z"), Some(last), since));
        assert_eq!(
            s.next_due(at("2026-11-22T05:00:01Z"), Some(last), since),
            at("2026-11-23T05:00:00Z")
        );
        // With seconds: 05:00:30.
        let s = cron("30 0 5 * * *");
        assert_eq!(
            s.next_due(at("2026-11-22T05:00:01Z"), Some(last), since),
            at("2026-11-22T05:00:30Z")
        );
    }

    #[test]
    fn cron_that_never_fires_again_is_never_due() {
        let s = cron("0 0 5 1 1 * 2027");
        let since = at("2026-11-22T00:00:00Z");
        assert_eq!(s.next_due(since, None, since), at("2027-01-01T05:00:00Z"));
        let last = Some(at("2027-01-01T05:00:01Z"));
        let later = at("2030-01-01T00:00:00Z");
        assert!(!s.due(later, last, since));
        assert_eq!(s.next_due(later, last, since), DateTime::<Utc>::MAX_UTC);
    }

    // ---- Retention ----

    #[test]
    fn retention_is_0_to_35_days() {
        for days in [0, 1, 7, 35] {
            let r = Retention::new(days).unwrap();
            assert_eq!(r.days(), days);
            assert_eq!(r.automatic_backups_enabled(), days > 0);
            assert_eq!(days.to_string().parse::<Retention>().unwrap(), r);
            assert_eq!(r.to_string(), days.to_string());
        }
        for text in ["36", "4294967295", "-1", "", "7 days", "1.5"] {
            let e = error_text(text.parse::<Retention>());
            assert!(
                e.contains(&format!("backup-retention-days {text:?}")),
                "{e}"
            );
            assert!(e.contains("from 0 to 35"), "{e}");
        }
        assert!(error_text(Retention::new(36)).contains("\"36\""));
    }

    // ---- Pruning ----

    fn candidate(id: &str, kind: BackupKind, created: &str, valid: bool) -> PruneCandidate {
        PruneCandidate {
            id: id.into(),
            kind,
            created: at(created),
            valid,
        }
    }

    fn days(n: u32) -> Retention {
        Retention::new(n).unwrap()
    }

    #[test]
    fn prune_expires_old_automatic_backups_oldest_first() {
        use BackupKind::*;
        let catalog = [
            candidate("a3", Automatic, "2026-11-20T05:00:00Z", true),
            candidate("a1", Automatic, "2026-11-01T05:00:00Z", true),
            candidate("m1", Manual, "2026-10-01T05:00:00Z", true),
            candidate("f1", Final, "2026-10-02T05:00:00Z", false),
            candidate("a2", Automatic, "2026-11-02T05:00:00Z", false),
            // Exactly 7 days old: not yet "more than" 7 days.
            candidate("a4", Automatic, "2026-11-15T05:00:00Z", true),
            candidate("a5", Automatic, "2026-11-22T05:00:00Z", true),
        ];
        let now = at("2026-11-22T05:00:00Z");
        assert_eq!(prune_plan(&catalog, now, days(7), &[]), ["a1", "a2"]);
        assert_eq!(
            prune_plan(&catalog, now, days(1), &[]),
            ["a1", "a2", "a4", "a3"]
        );
        assert_eq!(
            prune_plan(&catalog, now, days(1), &["a4".to_string()]),
            ["a1", "a2", "a3"]
        );
        // Retention 0: automatic backups are off, nothing expires.
        assert!(prune_plan(&catalog, now, days(0), &[]).is_empty());
    }

    #[test]
    fn prune_keeps_the_newest_valid_backup_whatever_its_age_and_kind() {
        use BackupKind::*;
        let now = at("2026-12-31T00:00:00Z");
        let catalog = [
            candidate("old", Automatic, "2026-01-01T05:00:00Z", true),
            candidate("older", Automatic, "2025-01-01T05:00:00Z", true),
            // Newer, but failed verification: not a restore point.
            candidate("broken", Automatic, "2026-06-01T05:00:00Z", false),
        ];
        assert_eq!(prune_plan(&catalog, now, days(1), &[]), ["older", "broken"]);
        assert_eq!(newest_valid(&catalog).map(|c| c.id.as_str()), Some("old"));
        // A newer valid manual backup is the restore point: every old automatic one goes.
        let mut with_manual = catalog.to_vec();
        with_manual.push(candidate("m", Manual, "2026-02-01T05:00:00Z", true));
        assert_eq!(
            prune_plan(&with_manual, now, days(1), &[]),
            ["older", "old", "broken"]
        );
        // Ties on time go to the greatest id, consistently.
        let tie = [
            candidate("y", Automatic, "2026-01-01T05:00:00Z", true),
            candidate("x", Automatic, "2026-01-01T05:00:00Z", true),
        ];
        assert_eq!(newest_valid(&tie).map(|c| c.id.as_str()), Some("y"));
        assert_eq!(prune_plan(&tie, now, days(1), &[]), ["x"]);
        assert!(prune_plan(&[], now, days(1), &[]).is_empty());
    }

    #[test]
    fn prune_names_an_id_listed_twice_once() {
        use BackupKind::*;
        let now = at("2026-12-31T00:00:00Z");
        let catalog = [
            candidate("a1", Automatic, "2026-01-01T05:00:00Z", true),
            candidate("a0", Automatic, "2026-01-01T06:00:00Z", true),
            candidate("a1", Automatic, "2026-01-02T05:00:00Z", false),
            candidate("m", Manual, "2026-12-30T05:00:00Z", true),
        ];
        assert_eq!(prune_plan(&catalog, now, days(1), &[]), ["a1", "a0"]);
    }

    // ---- Properties ----

    const PATTERNS: &[&str] = &[
        "0 5 * * *",
        "*/15 * * * *",
        "30 0 5 * * *",
        "0 0 * * 1",
        "0 3 1 * *",
        "0 0 29 2 *",
        "@daily",
        "0 */6 * * *",
        "0 0 L * *",
        "0 0 5 1 1 * 2027",
    ];

    /// 2020-01-01 to 2030-01-01, millisecond resolution.
    fn instant() -> impl Strategy<Value = DateTime<Utc>> {
        (1_577_836_800_000i64..1_893_456_000_000)
            .prop_map(|ms| DateTime::from_timestamp_millis(ms).unwrap())
    }

    fn any_window() -> impl Strategy<Value = BackupWindow> {
        (
            0..MINUTES_PER_DAY,
            BackupWindow::MIN_MINUTES..=MINUTES_PER_DAY,
        )
            .prop_map(|(start_minute, minutes)| BackupWindow {
                start_minute,
                minutes,
            })
    }

    fn any_schedule() -> impl Strategy<Value = Schedule> {
        prop_oneof![
            any_window().prop_map(Schedule::Window),
            (0..PATTERNS.len()).prop_map(|i| cron(PATTERNS[i])),
        ]
    }

    /// An offset from `now` in milliseconds, up to 40 days back and 2 days ahead.
    fn offset() -> impl Strategy<Value = TimeDelta> {
        (-40 * 86_400_000i64..2 * 86_400_000).prop_map(TimeDelta::milliseconds)
    }

    fn kind() -> impl Strategy<Value = BackupKind> {
        prop_oneof![
            Just(BackupKind::Automatic),
            Just(BackupKind::Manual),
            Just(BackupKind::Final)
        ]
    }

    proptest! {
        /// Windows print back to what parses to the same window.
        #[test]
        fn window_display_round_trips(w in any_window()) {
            prop_assert_eq!(BackupWindow::parse(&w.to_string()).unwrap(), w);
        }

        /// `next_due` is where `due` turns true: now if due now, never before, and due then.
        #[test]
        fn next_due_is_the_first_due_instant(
            s in any_schedule(),
            now in instant(),
            last in prop::option::of(offset()),
            since in offset(),
            probes in prop::collection::vec(0.0f64..1.0, 16),
        ) {
            let last = last.map(|o| now + o);
            let since = now + since.min(TimeDelta::zero());
            let next = s.next_due(now, last, since);
            prop_assert!(next >= now);
            prop_assert_eq!(s.due(now, last, since), next == now);
            if next == DateTime::<Utc>::MAX_UTC {
                // Only a cron expression whose years are over never fires again.
                prop_assert!(matches!(s, Schedule::Cron(_)));
                return Ok(());
            }
            prop_assert!(s.due(next, last, since), "{s}: not due at next_due {next}");
            if next > now {
                let gap = next - now;
                let just_before = next - TimeDelta::milliseconds(1);
                if just_before >= now {
                    prop_assert!(!s.due(just_before, last, since), "{s}: due at {just_before}");
                }
                for p in probes {
                    let t = now + TimeDelta::milliseconds((gap.num_milliseconds() as f64 * p) as i64);
                    prop_assert!(t >= next || !s.due(t, last, since), "{s}: due at {t} before {next}");
                }
            }
        }

        /// A scheduler polling a window at most 30 minutes apart makes exactly one backup in
        /// every occurrence it lives through (none where an earlier backup already counts),
        /// each inside its window, whatever time backups take.
        #[test]
        fn window_backs_up_once_per_occurrence(
            w in any_window(),
            start in instant(),
            earlier in prop::option::of(offset()),
            steps in prop::collection::vec((1i64..=1800, prop::option::weighted(0.3, 1i64..=7200)), 100..800),
        ) {
            let s = Schedule::Window(w);
            let earlier = earlier.map(|o| start + o.min(TimeDelta::zero()));
            let mut last = earlier;
            let mut now = start;
            let mut made = Vec::new();
            for (step, backup_takes) in steps {
                now += TimeDelta::seconds(step);
                if s.due(now, last, start) {
                    made.push(now);
                    last = Some(now);
                    now += TimeDelta::seconds(backup_takes.unwrap_or(0));
                }
            }
            let end = now;
            let mut openings = Vec::new();
            for b in &made {
                let opening = w.occurrence_containing(*b);
                prop_assert!(opening.is_some(), "{w}: backup at {b} outside the window");
                openings.push(opening.unwrap());
            }
            prop_assert!(openings.windows(2).all(|p| p[0] < p[1]), "{w}: two backups in one occurrence: {made:?}");
            // Every occurrence wholly inside the run got its backup, unless one before the run
            // already covered it.
            let mut opening = w.opening_at_or_before(start).unwrap() + TimeDelta::days(1);
            while opening + w.duration() <= end {
                let covered = earlier.is_some_and(|e| e >= opening);
                prop_assert_eq!(openings.contains(&opening), !covered, "{} at {}", w, opening);
                opening += TimeDelta::days(1);
            }
        }

        /// A cron scheduler that wakes at random makes at most one backup per wake-up (runs it
        /// owes are made up once) and never one before the next occurrence.
        #[test]
        fn cron_never_runs_ahead_of_its_occurrences(
            i in 0..PATTERNS.len(),
            start in instant(),
            steps in prop::collection::vec(1i64..=3 * 86_400, 1..60),
        ) {
            let s = cron(PATTERNS[i]);
            let Schedule::Cron(c) = &s else { unreachable!() };
            let mut last = None;
            let mut now = start;
            for step in steps {
                now += TimeDelta::seconds(step);
                let owed = c.first_after(last.unwrap_or(start)).is_some_and(|t| t <= now);
                prop_assert_eq!(s.due(now, last, start), owed);
                if owed {
                    last = Some(now);
                    prop_assert!(!s.due(now, last, start));
                }
            }
        }

        /// For any catalog: nothing manual, final, in progress or newest-valid is deleted;
        /// every expired automatic backup is; the plan is oldest first, without repeats.
        #[test]
        fn prune_plan_deletes_exactly_the_expired_and_unprotected(
            entries in prop::collection::vec(
                (kind(), -50 * 24i64..24, any::<bool>(), prop::bool::weighted(0.15)),
                0..30,
            ),
            retention_days in 0u32..=35,
            now in instant(),
        ) {
            let retention = Retention::new(retention_days).unwrap();
            // Hour granularity, so ties on `created` happen.
            let catalog: Vec<PruneCandidate> = entries
                .iter()
                .enumerate()
                .map(|(i, &(kind, hours, valid, _))| PruneCandidate {
                    id: format!("b{i:02}"),
                    kind,
                    created: now + TimeDelta::hours(hours),
                    valid,
                })
                .collect();
            let in_progress: Vec<String> = entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.3)
                .map(|(i, _)| format!("b{i:02}"))
                .collect();
            let plan = prune_plan(&catalog, now, retention, &in_progress);
            let newest = newest_valid(&catalog);
            if let Some(newest) = newest {
                prop_assert!(catalog.iter().filter(|c| c.valid).all(|c| (c.created, &c.id) <= (newest.created, &newest.id)));
                prop_assert!(!plan.contains(&newest.id));
                prop_assert!(catalog.iter().any(|c| c.valid && !plan.contains(&c.id)));
            } else {
                prop_assert!(catalog.iter().all(|c| !c.valid));
            }
            for c in &catalog {
                let expired = retention_days > 0
                    && c.kind == BackupKind::Automatic
                    && now - c.created > TimeDelta::days(i64::from(retention_days));
                let protected = newest.is_some_and(|n| n.id == c.id) || in_progress.contains(&c.id);
                prop_assert_eq!(plan.contains(&c.id), expired && !protected, "{:?}", c);
            }
            let order: Vec<_> = plan
                .iter()
                .map(|id| catalog.iter().find(|c| &c.id == id).map(|c| (c.created, id)).unwrap())
                .collect();
            prop_assert!(order.windows(2).all(|p| p[0] < p[1]), "{:?}", plan);
        }
    }
}
