//! `malloc-huge-pages`: `keeper server` restarts itself once, at start, with glibc's
//! `glibc.malloc.hugetlb=1` tunable, so that malloc's heap is backed by transparent huge
//! pages (see `Config::malloc_huge_pages` for why).
//!
//! glibc reads its tunables only from the environment of a starting process, so the only way
//! for a program to set one for itself is to `exec` itself with it. The restart happens before
//! the server has a thread, a socket or a log line, keeps the pid, the arguments and the open
//! descriptors, and happens once: the new process finds the tunable set and goes on.

/// The tunable, and the value that has glibc `madvise(MADV_HUGEPAGE)` its heap (glibc 2.35
/// and later; older ones ignore tunables they do not know).
const HUGETLB: &str = "glibc.malloc.hugetlb";
const HUGETLB_ON: &str = "glibc.malloc.hugetlb=1";

/// Where Linux says when it backs memory with transparent huge pages: `[always]`,
/// `[madvise]` (only where a program asks) or `[never]`.
const THP_ENABLED: &str = "/sys/kernel/mm/transparent_hugepage/enabled";

/// What was done at start, for the log once logging is set up.
#[derive(Debug)]
pub enum Outcome {
    /// The tunable is set in this process (by the restart, or by the operator).
    Active,
    /// Nothing to do: off in the config, or the system's mode is not `madvise` (`always`
    /// already backs the heap with huge pages, `never` refuses them).
    NotNeeded,
    /// The operator's `GLIBC_TUNABLES` sets the tunable to another value: theirs stands.
    SetByOperator(String),
    /// The restart failed; the server goes on with malloc as it was.
    Failed(String),
}

impl Outcome {
    /// Logs the outcome (after logging is set up).
    pub fn log(&self) {
        match self {
            Outcome::Active => {
                tracing::info!("malloc's heap on transparent huge pages ({HUGETLB_ON})")
            }
            Outcome::NotNeeded => {}
            Outcome::SetByOperator(value) => {
                tracing::info!("GLIBC_TUNABLES sets {HUGETLB}={value}: kept as set")
            }
            Outcome::Failed(reason) => tracing::warn!(
                "could not restart with {HUGETLB_ON} ({reason}): malloc's heap stays on small pages"
            ),
        }
    }
}

/// Restarts the process with the tunable when it helps; returns only when it did not
/// restart (or the restart failed), saying why.
pub fn restart_if_needed(wanted: bool) -> Outcome {
    let current = std::env::var("GLIBC_TUNABLES").ok();
    match tunables_with_hugetlb(current.as_deref()) {
        Tunables::Has(value) if value == "1" => Outcome::Active,
        Tunables::Has(value) => Outcome::SetByOperator(value),
        Tunables::Add(_) if !wanted => Outcome::NotNeeded,
        Tunables::Add(tunables) => {
            if !cfg!(all(target_os = "linux", target_env = "gnu")) || !madvise_mode() {
                return Outcome::NotNeeded;
            }
            Outcome::Failed(exec_with(&tunables).to_string())
        }
    }
}

/// True when the system backs memory with huge pages only where a program asks.
fn madvise_mode() -> bool {
    std::fs::read_to_string(THP_ENABLED).is_ok_and(|mode| mode.contains("[madvise]"))
}

/// Replaces this process by the same program with the same arguments and `GLIBC_TUNABLES`
/// set to `tunables`. Returns only on failure.
fn exec_with(tunables: &str) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| "keeper".into());
    // `/proc/self/exe` is this very file, even when a rebuild has replaced or deleted the
    // path it was started from.
    std::process::Command::new("/proc/self/exe")
        .arg0(arg0)
        .args(args)
        .env("GLIBC_TUNABLES", tunables)
        .exec()
}

/// What `GLIBC_TUNABLES` holds about the tunable.
#[derive(Debug, PartialEq, Eq)]
enum Tunables {
    /// It sets the tunable, to this value.
    Has(String),
    /// It does not: the value to set, with the tunable added to the ones it has.
    Add(String),
}

/// `GLIBC_TUNABLES` is a colon-separated list of `name=value`.
fn tunables_with_hugetlb(current: Option<&str>) -> Tunables {
    let current = current.unwrap_or("");
    let set = current
        .split(':')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == HUGETLB);
    match set {
        Some((_, value)) => Tunables::Has(value.to_string()),
        None if current.is_empty() => Tunables::Add(HUGETLB_ON.to_string()),
        None => Tunables::Add(format!("{current}:{HUGETLB_ON}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tunable_is_added_to_what_the_operator_set() {
        assert_eq!(
            tunables_with_hugetlb(None),
            Tunables::Add(HUGETLB_ON.into())
        );
        assert_eq!(
            tunables_with_hugetlb(Some("")),
            Tunables::Add(HUGETLB_ON.into())
        );
        assert_eq!(
            tunables_with_hugetlb(Some("glibc.malloc.tcache_count=7")),
            Tunables::Add("glibc.malloc.tcache_count=7:glibc.malloc.hugetlb=1".into())
        );
    }

    #[test]
    fn a_value_already_set_stands() {
        assert_eq!(
            tunables_with_hugetlb(Some("glibc.malloc.hugetlb=1")),
            Tunables::Has("1".into())
        );
        assert_eq!(
            tunables_with_hugetlb(Some("glibc.malloc.mxfast=0:glibc.malloc.hugetlb=0")),
            Tunables::Has("0".into())
        );
        // A longer name that starts the same is another tunable.
        assert_eq!(
            tunables_with_hugetlb(Some("glibc.malloc.hugetlbx=2")),
            Tunables::Add("glibc.malloc.hugetlbx=2:glibc.malloc.hugetlb=1".into())
        );
    }
}
