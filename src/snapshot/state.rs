//! The persistence bookkeeping of a Redis server: changes since the last save, last save time
//! and status, save points, `stop-writes-on-bgsave-error`, and the `INFO persistence` fields
//! that show them. Times are unix seconds given by the caller, so tests control the clock.

use std::fmt::Write as _;

use super::{BgsaveOutcome, BgsaveProgress, BgsaveStatus, LoadStats, SavePoint, SavePoints};

/// The error that refuses writes (and `PING`) after a failed background save, while
/// `stop-writes-on-bgsave-error` is on and save points are set: Redis 7.0.15's
/// `shared.bgsaveerr` (server.c), without the leading `-` and the trailing CRLF.
pub const MISCONF_ERROR: &str = "MISCONF Redis is configured to save RDB snapshots, but it's \
currently unable to persist to disk. Commands that may modify the data set are disabled, because \
this instance is configured to report errors during writes if RDB snapshotting fails \
(stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB \
error.";

/// The reply to `SAVE` or `BGSAVE` while a background save runs (Redis 7.0's text).
pub const BGSAVE_IN_PROGRESS_ERROR: &str = "ERR Background save already in progress";

/// After a failed background save, save points wait this long before trying again (Redis's
/// `CONFIG_BGSAVE_RETRY_DELAY`).
pub const BGSAVE_RETRY_DELAY_SECS: i64 = 5;

/// What Redis keeps about RDB persistence, updated by the server at each event.
///
/// Event methods mirror Redis's (`rdb.c`): [`PersistenceState::save_started`] /
/// [`PersistenceState::save_finished`] around a foreground `SAVE`,
/// [`PersistenceState::bgsave_started`] then [`PersistenceState::bgsave_finished`] (or
/// [`PersistenceState::bgsave_not_started`]) around a [`super::BackgroundSave`].
#[derive(Debug, Clone)]
pub struct PersistenceState {
    /// `save`. Default: `3600 1 300 100 60 10000`.
    pub save_points: SavePoints,
    /// `stop-writes-on-bgsave-error`. Default: yes.
    pub stop_writes_on_bgsave_error: bool,
    /// Writes since the last successful save (`server.dirty`).
    dirty: u64,
    /// `dirty` when the running save started: what a successful save makes durable.
    dirty_at_save_start: u64,
    last_save_unix: i64,
    last_bgsave_try_unix: i64,
    last_bgsave_ok: bool,
    /// Duration of the last background save in seconds; -1 before any.
    last_bgsave_secs: i64,
    bgsave_started_unix: Option<i64>,
    /// `SAVE`s and `BGSAVE`s attempted.
    saves: u64,
    /// Peak extra memory of the last background save that ended.
    last_peak_extra_bytes: u64,
    last_load_keys_loaded: u64,
    last_load_keys_expired: u64,
}

impl PersistenceState {
    /// A server that starts at `now_unix`. As in Redis, the dataset counts as saved at start
    /// (`rdb_last_save_time` is the start time).
    pub fn new(save_points: SavePoints, now_unix: i64) -> Self {
        PersistenceState {
            save_points,
            stop_writes_on_bgsave_error: true,
            dirty: 0,
            dirty_at_save_start: 0,
            last_save_unix: now_unix,
            last_bgsave_try_unix: 0,
            last_bgsave_ok: true,
            last_bgsave_secs: -1,
            bgsave_started_unix: None,
            saves: 0,
            last_peak_extra_bytes: 0,
            last_load_keys_loaded: 0,
            last_load_keys_expired: 0,
        }
    }

    /// Counts `n` changes to the dataset (a command's dirty count).
    pub fn add_changes(&mut self, n: u64) {
        self.dirty = self.dirty.saturating_add(n);
    }

    /// `rdb_changes_since_last_save`.
    pub fn changes_since_last_save(&self) -> u64 {
        self.dirty
    }

    /// Unix time of the last successful save: the `LASTSAVE` reply.
    pub fn last_save_unix(&self) -> i64 {
        self.last_save_unix
    }

    /// True between [`PersistenceState::bgsave_started`] and its end.
    pub fn bgsave_in_progress(&self) -> bool {
        self.bgsave_started_unix.is_some()
    }

    /// `rdb_last_bgsave_status:ok`.
    pub fn last_bgsave_ok(&self) -> bool {
        self.last_bgsave_ok
    }

    /// Records the end of a load ([`super::load_rdb`]) for `rdb_last_load_keys_*`.
    pub fn loaded(&mut self, stats: &LoadStats) {
        self.last_load_keys_loaded = stats.keys_loaded;
        self.last_load_keys_expired = stats.keys_expired;
    }

    /// The save point that asks for a background save now, if any: none while one runs, and
    /// after a failed one only once [`BGSAVE_RETRY_DELAY_SECS`] have passed since it started
    /// (Redis's `serverCron`).
    pub fn save_point_due(&self, now_unix: i64) -> Option<SavePoint> {
        if !self.automatic_bgsave_allowed(now_unix) {
            return None;
        }
        self.save_points
            .due(now_unix, self.last_save_unix, self.dirty)
    }

    /// True when the server may start a background save on its own (a save point, or a
    /// `BGSAVE` scheduled while another ran): none runs, and the last one succeeded or began
    /// more than [`BGSAVE_RETRY_DELAY_SECS`] ago (Redis's `serverCron`).
    pub fn automatic_bgsave_allowed(&self, now_unix: i64) -> bool {
        !self.bgsave_in_progress()
            && (self.last_bgsave_ok
                || now_unix.saturating_sub(self.last_bgsave_try_unix) > BGSAVE_RETRY_DELAY_SECS)
    }

    /// True when write commands (and `PING`, as in Redis 7.0) must be refused with
    /// [`MISCONF_ERROR`]: the last background save failed, `stop-writes-on-bgsave-error` is
    /// on and save points are set. A successful `SAVE` or `BGSAVE` lifts it, and so does
    /// `CONFIG SET save ""`.
    pub fn writes_refused(&self) -> bool {
        self.stop_writes_on_bgsave_error && !self.save_points.is_empty() && !self.last_bgsave_ok
    }

    /// A foreground `SAVE` begins (counted in `rdb_saves` whatever its outcome).
    pub fn save_started(&mut self) {
        self.saves += 1;
        self.dirty_at_save_start = self.dirty;
    }

    /// A foreground `SAVE` ended. Success clears the changes it saved, sets the last save
    /// time and the status to ok (as Redis's `rdbSave` does); failure changes nothing (in
    /// Redis too, a failed `SAVE` leaves `rdb_last_bgsave_status` as it was).
    pub fn save_finished(&mut self, now_unix: i64, ok: bool) {
        if ok {
            self.dirty = self.dirty.saturating_sub(self.dirty_at_save_start);
            self.last_save_unix = now_unix;
            self.last_bgsave_ok = true;
        }
    }

    /// `FLUSHALL` saved the (now empty) dataset because save points are set: Redis 7.0's
    /// `flushAllDataAndResetRDB` calls `rdbSave` directly, so success clears every change
    /// (the flush's own included), sets the last save time and the status to ok, but is not
    /// counted in `rdb_saves`; failure changes nothing.
    pub fn flushall_save_finished(&mut self, now_unix: i64, ok: bool) {
        if ok {
            self.dirty = 0;
            self.last_save_unix = now_unix;
            self.last_bgsave_ok = true;
        }
    }

    /// A background save begins at `now_unix`.
    pub fn bgsave_started(&mut self, now_unix: i64) {
        self.saves += 1;
        self.dirty_at_save_start = self.dirty;
        self.last_bgsave_try_unix = now_unix;
        self.bgsave_started_unix = Some(now_unix);
    }

    /// The background save could not start ([`super::BackgroundSave::start`] failed: Redis's
    /// failed `fork`): the status becomes err.
    pub fn bgsave_not_started(&mut self) {
        self.bgsave_started_unix = None;
        self.last_bgsave_ok = false;
    }

    /// The background save ended at `now_unix`. Success makes the changes made before it
    /// started durable (those made since stay counted), sets the last save time and the
    /// status to ok; failure sets the status to err; a cancelled save changes neither.
    pub fn bgsave_finished(&mut self, now_unix: i64, outcome: &BgsaveOutcome) {
        match outcome.status {
            BgsaveStatus::Saved(_) => {
                self.dirty = self.dirty.saturating_sub(self.dirty_at_save_start);
                self.last_save_unix = now_unix;
                self.last_bgsave_ok = true;
            }
            BgsaveStatus::Failed(_) => self.last_bgsave_ok = false,
            BgsaveStatus::Cancelled => {}
        }
        if let Some(start) = self.bgsave_started_unix.take() {
            self.last_bgsave_secs = now_unix.saturating_sub(start);
        }
        self.last_peak_extra_bytes = outcome.peak_extra_bytes;
    }

    /// The RDB fields of `INFO persistence`, one `name:value\r\n` line each, in Redis 7.0's
    /// order from `current_cow_peak` to `rdb_last_load_keys_loaded`, then keeper's
    /// `keeper_snapshot_peak_extra_bytes`. The server writes `loading` and `async_loading`
    /// before them and the `aof_*` fields after.
    ///
    /// keeper has no fork: the `*cow*` fields carry the quantity fork's copy-on-write measures
    /// in Redis, memory the process gained while a snapshot was written (`current_*` from
    /// `progress` of the running save, `rdb_last_cow_size` from the last one), so dashboards
    /// built for Redis show it; `keeper_snapshot_peak_extra_bytes` names it plainly.
    /// `progress` is [`super::BackgroundSave::progress`] of the running save, if any.
    pub fn info_fields(&self, now_unix: i64, progress: Option<&BgsaveProgress>) -> String {
        let running = progress.filter(|_| self.bgsave_in_progress());
        let (peak, current, processed, total) = running.map_or((0, 0, 0, 0), |p| {
            (
                p.peak_extra_bytes,
                p.extra_bytes,
                p.keys_processed,
                p.keys_total,
            )
        });
        let percent = if total > 0 {
            processed as f64 * 100.0 / total as f64
        } else {
            0.0
        };
        let current_secs = self
            .bgsave_started_unix
            .map_or(-1, |start| now_unix.saturating_sub(start));
        let mut out = String::with_capacity(640);
        let mut field = |name: &str, value: &dyn std::fmt::Display| {
            let _ = write!(out, "{name}:{value}\r\n");
        };
        field("current_cow_peak", &peak);
        field("current_cow_size", &current);
        field("current_cow_size_age", &0);
        field("current_fork_perc", &format_args!("{percent:.2}"));
        field("current_save_keys_processed", &processed);
        field("current_save_keys_total", &total);
        field("rdb_changes_since_last_save", &self.dirty);
        field(
            "rdb_bgsave_in_progress",
            &u8::from(self.bgsave_in_progress()),
        );
        field("rdb_last_save_time", &self.last_save_unix);
        field(
            "rdb_last_bgsave_status",
            &if self.last_bgsave_ok { "ok" } else { "err" },
        );
        field("rdb_last_bgsave_time_sec", &self.last_bgsave_secs);
        field("rdb_current_bgsave_time_sec", &current_secs);
        field("rdb_saves", &self.saves);
        field("rdb_last_cow_size", &self.last_peak_extra_bytes);
        field("rdb_last_load_keys_expired", &self.last_load_keys_expired);
        field("rdb_last_load_keys_loaded", &self.last_load_keys_loaded);
        field(
            "keeper_snapshot_peak_extra_bytes",
            &self.last_peak_extra_bytes,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::Error;
    use crate::snapshot::SaveStats;

    fn outcome(status: BgsaveStatus, peak: u64) -> BgsaveOutcome {
        BgsaveOutcome {
            status,
            elapsed: Duration::from_secs(1),
            peak_extra_bytes: peak,
        }
    }

    fn failed() -> BgsaveStatus {
        BgsaveStatus::Failed(Error::InvalidArgument("disk on fire".into()))
    }

    fn field<'a>(info: &'a str, name: &str) -> &'a str {
        info.split("\r\n")
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .unwrap_or_else(|| panic!("no {name} in {info}"))
    }

    #[test]
    fn fresh_state_renders_like_a_fresh_redis() {
        let state = PersistenceState::new(SavePoints::default(), 1_700_000_000);
        // A redis-server 7.0.15 that just started, fields from current_cow_peak on.
        let redis = "current_cow_peak:0\r\ncurrent_cow_size:0\r\ncurrent_cow_size_age:0\r\n\
current_fork_perc:0.00\r\ncurrent_save_keys_processed:0\r\ncurrent_save_keys_total:0\r\n\
rdb_changes_since_last_save:0\r\nrdb_bgsave_in_progress:0\r\nrdb_last_save_time:1700000000\r\n\
rdb_last_bgsave_status:ok\r\nrdb_last_bgsave_time_sec:-1\r\nrdb_current_bgsave_time_sec:-1\r\n\
rdb_saves:0\r\nrdb_last_cow_size:0\r\nrdb_last_load_keys_expired:0\r\n\
rdb_last_load_keys_loaded:0\r\n";
        let info = state.info_fields(1_700_000_005, None);
        assert_eq!(
            info,
            format!("{redis}keeper_snapshot_peak_extra_bytes:0\r\n")
        );
    }

    #[test]
    fn bgsave_success_keeps_changes_made_while_it_ran() {
        let mut state = PersistenceState::new(SavePoints::default(), 100);
        state.add_changes(10);
        state.bgsave_started(200);
        assert!(state.bgsave_in_progress());
        state.add_changes(3); // written during the save: not in the file
        let progress = BgsaveProgress {
            keys_processed: 1,
            keys_total: 4,
            elapsed: Duration::from_secs(2),
            extra_bytes: 10,
            peak_extra_bytes: 20,
        };
        let info = state.info_fields(202, Some(&progress));
        assert_eq!(field(&info, "rdb_bgsave_in_progress"), "1");
        assert_eq!(field(&info, "rdb_current_bgsave_time_sec"), "2");
        assert_eq!(field(&info, "current_fork_perc"), "25.00");
        assert_eq!(field(&info, "current_cow_peak"), "20");
        state.bgsave_finished(203, &outcome(BgsaveStatus::Saved(SaveStats::default()), 77));
        assert_eq!(state.changes_since_last_save(), 3);
        assert_eq!(state.last_save_unix(), 203);
        let info = state.info_fields(210, Some(&progress));
        assert_eq!(field(&info, "rdb_bgsave_in_progress"), "0");
        assert_eq!(field(&info, "current_cow_peak"), "0", "no save running");
        assert_eq!(field(&info, "rdb_last_bgsave_time_sec"), "3");
        assert_eq!(field(&info, "rdb_current_bgsave_time_sec"), "-1");
        assert_eq!(field(&info, "rdb_saves"), "1");
        assert_eq!(field(&info, "rdb_last_cow_size"), "77");
        assert_eq!(field(&info, "keeper_snapshot_peak_extra_bytes"), "77");
    }

    #[test]
    fn failed_bgsave_refuses_writes_until_a_save_succeeds() {
        let mut state = PersistenceState::new(SavePoints::default(), 100);
        state.add_changes(5);
        state.bgsave_started(200);
        state.bgsave_finished(201, &outcome(failed(), 0));
        assert!(state.writes_refused());
        assert_eq!(state.changes_since_last_save(), 5);
        assert_eq!(state.last_save_unix(), 100);
        assert_eq!(
            field(&state.info_fields(201, None), "rdb_last_bgsave_status"),
            "err"
        );

        // Without save points, or with the option off, writes go on.
        let mut no_points = state.clone();
        no_points.save_points = SavePoints::disabled();
        assert!(!no_points.writes_refused());
        let mut option_off = state.clone();
        option_off.stop_writes_on_bgsave_error = false;
        assert!(!option_off.writes_refused());

        // A failed SAVE changes nothing; a successful one lifts the refusal.
        state.save_started();
        state.save_finished(300, false);
        assert!(state.writes_refused());
        state.save_started();
        state.save_finished(301, true);
        assert!(!state.writes_refused());
        assert_eq!(state.changes_since_last_save(), 0);
        assert_eq!(state.last_save_unix(), 301);
        assert_eq!(field(&state.info_fields(301, None), "rdb_saves"), "3");
    }

    #[test]
    fn save_points_wait_for_the_retry_delay_after_a_failure() {
        let mut state = PersistenceState::new(SavePoints::parse_config_set("10 1").unwrap(), 0);
        state.add_changes(1);
        assert_eq!(state.save_point_due(10), None);
        assert!(state.save_point_due(11).is_some());
        state.bgsave_started(11);
        assert_eq!(state.save_point_due(12), None, "one is running");
        state.bgsave_finished(12, &outcome(failed(), 0));
        assert_eq!(state.save_point_due(16), None, "16 - 11 is not > 5");
        assert!(state.save_point_due(17).is_some());
    }

    #[test]
    fn flushall_save_clears_changes_without_counting_a_save() {
        // redis-server 7.0.15 with `save 3600 1`: SET a, SET b, FLUSHALL → rdb_changes 0,
        // rdb_saves 0, rdb_last_save_time moved.
        let mut state = PersistenceState::new(SavePoints::default(), 100);
        state.add_changes(4);
        state.flushall_save_finished(150, false);
        assert_eq!(state.changes_since_last_save(), 4);
        assert_eq!(state.last_save_unix(), 100);
        state.flushall_save_finished(160, true);
        assert_eq!(state.changes_since_last_save(), 0);
        assert_eq!(state.last_save_unix(), 160);
        assert_eq!(field(&state.info_fields(160, None), "rdb_saves"), "0");
        assert!(state.automatic_bgsave_allowed(160));
        state.bgsave_started(161);
        assert!(!state.automatic_bgsave_allowed(161));
    }

    #[test]
    fn cancelled_bgsave_is_not_an_error() {
        let mut state = PersistenceState::new(SavePoints::default(), 0);
        state.add_changes(2);
        state.bgsave_started(1);
        state.bgsave_finished(2, &outcome(BgsaveStatus::Cancelled, 0));
        assert!(state.last_bgsave_ok() && !state.bgsave_in_progress());
        assert_eq!(state.changes_since_last_save(), 2);
        assert_eq!(state.last_save_unix(), 0);
    }

    #[test]
    fn spawn_failure_is_an_error_status() {
        let mut state = PersistenceState::new(SavePoints::default(), 0);
        state.bgsave_started(1);
        state.bgsave_not_started();
        assert!(!state.bgsave_in_progress() && state.writes_refused());
        assert_eq!(
            field(&state.info_fields(2, None), "rdb_last_bgsave_time_sec"),
            "-1"
        );
    }

    #[test]
    fn misconf_text_is_redis_7_0s() {
        assert!(MISCONF_ERROR.starts_with(
            "MISCONF Redis is configured to save RDB snapshots, but it's currently unable"
        ));
        assert!(
            MISCONF_ERROR.ends_with("Please check the Redis logs for details about the RDB error.")
        );
        assert!(!MISCONF_ERROR.contains("  "));
    }
}
