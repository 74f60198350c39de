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
/// day-of-week) or 6 with seconds first, an optional year last, `@daily`-style nicknames,
/// and croner's `L`, `W`, `#` extensions.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: Cron,
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
            cron,
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
