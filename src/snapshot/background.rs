//! `BGSAVE` without fork: a point-in-time snapshot written on a thread while writes go on.
//!
//! Redis forks and lets the kernel's copy-on-write keep the child's view still; its cost is
//! the pages the parent writes meanwhile. keeper's snapshot is already still (a
//! [`DatasetSnapshot`] never changes), and its cost is whatever the process allocates while
//! the snapshot shares data with the live keyspace: copied tree nodes, values replaced under
//! the snapshot, the writer's buffers. [`BackgroundSave`] measures that as the peak of the
//! process's resident memory above its level when the save started, sampled every
//! [`RSS_SAMPLE_INTERVAL`].

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::{SaveControl, SaveOptions, SaveStats, rss, write_rdb_controlled};
use crate::dataset::DatasetSnapshot;
use crate::error::{Error, Result};
use crate::storage::Storage;

/// How often the resident set size is sampled while a background save runs.
pub const RSS_SAMPLE_INTERVAL: Duration = Duration::from_millis(10);

/// How a background save ended.
#[derive(Debug)]
pub enum BgsaveStatus {
    /// The file is published and durable.
    Saved(SaveStats),
    /// The save failed; the previous file is untouched (see [`super::write_rdb`]).
    Failed(Error),
    /// [`BackgroundSave::cancel`] stopped it; the previous file is untouched. Like Redis's
    /// child killed with `SIGUSR1`, this is not a save error.
    Cancelled,
}

/// What [`BackgroundSave::try_finish`] and [`BackgroundSave::wait`] return.
#[derive(Debug)]
pub struct BgsaveOutcome {
    pub status: BgsaveStatus,
    /// From [`BackgroundSave::start`] to the end of the save.
    pub elapsed: Duration,
    /// Peak resident memory above the level at the start of the save, bytes (0 where
    /// `/proc/self/statm` is not available).
    pub peak_extra_bytes: u64,
}

impl BgsaveOutcome {
    /// True when the file was published.
    pub fn is_ok(&self) -> bool {
        matches!(self.status, BgsaveStatus::Saved(_))
    }
}

/// A running background save, for `INFO` while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BgsaveProgress {
    /// Keys written so far.
    pub keys_processed: u64,
    /// Keys in the snapshot (the sum of its size hints).
    pub keys_total: u64,
    /// Time since the save started.
    pub elapsed: Duration,
    /// Resident memory above the level at the start, at the last sample, bytes.
    pub extra_bytes: u64,
    /// Peak of `extra_bytes` so far.
    pub peak_extra_bytes: u64,
}

/// A background save of one snapshot on its own thread. At most one should run per file
/// (callers check, as Redis refuses a second `BGSAVE`); dropping it detaches the thread, which
/// still finishes (or fails) on its own.
#[derive(Debug)]
pub struct BackgroundSave {
    save: JoinHandle<Result<SaveStats>>,
    sampler: Option<JoinHandle<()>>,
    control: Arc<SaveControl>,
    memory: Arc<MemoryWatch>,
    keys_total: u64,
    started: Instant,
}

impl BackgroundSave {
    /// Starts writing `snapshot` to `path` (see [`super::write_rdb`]) on a new thread. `Err`
    /// only when the thread cannot be spawned (Redis's failed `fork`).
    pub fn start<S>(
        storage: Arc<dyn Storage>,
        path: PathBuf,
        snapshot: S,
        options: SaveOptions,
    ) -> Result<BackgroundSave>
    where
        S: DatasetSnapshot + Send + 'static,
    {
        Self::start_with(storage, path, snapshot, options, rss::resident_bytes)
    }

    /// [`BackgroundSave::start`] with the memory sampler given (tests feed it).
    pub(crate) fn start_with<S>(
        storage: Arc<dyn Storage>,
        path: PathBuf,
        snapshot: S,
        options: SaveOptions,
        sample_rss: fn() -> Option<u64>,
    ) -> Result<BackgroundSave>
    where
        S: DatasetSnapshot + Send + 'static,
    {
        let started = Instant::now();
        let keys_total = (0..snapshot.databases())
            .map(|db| snapshot.db_size(db).0)
            .sum();
        let control = Arc::new(SaveControl::default());
        let baseline = sample_rss();
        let memory = Arc::new(MemoryWatch::new(baseline.unwrap_or(0)));
        // The save thread holds the sender; its end (or panic) disconnects the sampler.
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let save = {
            let control = control.clone();
            thread::Builder::new()
                .name("keeper-bgsave".into())
                .spawn(move || {
                    let _done = done_tx;
                    write_rdb_controlled(&*storage, &path, &snapshot, &options, &control)
                })
                .map_err(|source| Error::Io {
                    path: None,
                    op: "spawn background save thread",
                    source,
                })?
        };
        let sampler = match baseline {
            Some(_) => {
                let memory = memory.clone();
                thread::Builder::new()
                    .name("keeper-bgsave-rss".into())
                    .spawn(move || {
                        loop {
                            let stop = done_rx.recv_timeout(RSS_SAMPLE_INTERVAL);
                            if let Some(rss) = sample_rss() {
                                memory.sample(rss);
                            }
                            if !matches!(stop, Err(mpsc::RecvTimeoutError::Timeout)) {
                                break;
                            }
                        }
                    })
                    // Without the sampler the save still runs; the figure stays 0.
                    .ok()
            }
            None => None,
        };
        Ok(BackgroundSave {
            save,
            sampler,
            control,
            memory,
            keys_total,
            started,
        })
    }

    /// True once the save thread has ended ([`BackgroundSave::try_finish`] will not block).
    pub fn is_finished(&self) -> bool {
        self.save.is_finished()
    }

    /// Progress so far.
    pub fn progress(&self) -> BgsaveProgress {
        BgsaveProgress {
            keys_processed: self.control.keys_done.load(Ordering::Relaxed),
            keys_total: self.keys_total,
            elapsed: self.started.elapsed(),
            extra_bytes: self.memory.current_extra(),
            peak_extra_bytes: self.memory.peak_extra(),
        }
    }

    /// Asks the save to stop at the next key; the outcome is then
    /// [`BgsaveStatus::Cancelled`] (unless the save had already finished). Used where Redis
    /// kills its child: `SHUTDOWN`, `FLUSHALL`, a full sync replacing the dataset.
    pub fn cancel(&self) {
        self.control.cancel.store(true, Ordering::Relaxed);
    }

    /// The outcome if the save has ended, else the save back (`Err(self)`) to ask again later.
    pub fn try_finish(self) -> Result<BgsaveOutcome, BackgroundSave> {
        if self.is_finished() {
            Ok(self.wait())
        } else {
            Err(self)
        }
    }

    /// Waits for the save to end.
    pub fn wait(self) -> BgsaveOutcome {
        let result = self.save.join().unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(Error::Io {
                path: None,
                op: "background save",
                source: std::io::Error::other(format!("save thread panicked: {what}")),
            })
        });
        let elapsed = self.started.elapsed();
        if let Some(sampler) = self.sampler {
            // Returns at once: the sender went away with the save thread.
            let _ = sampler.join();
        }
        let status = match result {
            Ok(stats) => BgsaveStatus::Saved(stats),
            Err(_) if self.control.cancel.load(Ordering::Relaxed) => BgsaveStatus::Cancelled,
            Err(e) => BgsaveStatus::Failed(e),
        };
        BgsaveOutcome {
            status,
            elapsed,
            peak_extra_bytes: self.memory.peak_extra(),
        }
    }
}

/// Resident-memory samples relative to a baseline.
#[derive(Debug)]
struct MemoryWatch {
    baseline: u64,
    current: AtomicU64,
    peak: AtomicU64,
}

impl MemoryWatch {
    fn new(baseline: u64) -> Self {
        MemoryWatch {
            baseline,
            current: AtomicU64::new(baseline),
            peak: AtomicU64::new(baseline),
        }
    }

    fn sample(&self, rss: u64) {
        self.current.store(rss, Ordering::Relaxed);
        self.peak.fetch_max(rss, Ordering::Relaxed);
    }

    fn current_extra(&self) -> u64 {
        self.current
            .load(Ordering::Relaxed)
            .saturating_sub(self.baseline)
    }

    fn peak_extra(&self) -> u64 {
        self.peak
            .load(Ordering::Relaxed)
            .saturating_sub(self.baseline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_watch_reports_the_peak_above_the_baseline() {
        let watch = MemoryWatch::new(1000);
        for rss in [900, 1500, 1200, 3000, 1100] {
            watch.sample(rss);
        }
        assert_eq!(watch.peak_extra(), 2000);
        assert_eq!(watch.current_extra(), 100);
        watch.sample(500);
        assert_eq!(watch.current_extra(), 0, "below the baseline is no extra");
    }
}
