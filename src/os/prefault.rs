//! Faulting in, on another core, the memory a startup load is about to fill ([`Prefault`]).
//!
//! Why: a load is one thread filling gigabytes of fresh memory, and the first write to each
//! page of it traps into the kernel, which zeroes the page (and, in a virtual machine, often
//! has the host back it first). Measured on the 1 GB AOF of `bench-vs-redis aof --parts
//! load` (BENCHMARKS.md, "Faulting memory in on the second core"): the kernel's page zeroing
//! was 27% of the load's samples, on the loading thread, while the second core idled.
//!
//! How: `madvise(MADV_POPULATE_WRITE)` (Linux 5.14) faults a range in as a write would,
//! without writing: pages already there keep their contents, pages not there yet arrive
//! zeroed. That is what makes it safe to run on any range, at any time, beside the threads
//! that use it: it changes no byte anyone can read. A helper thread applies it to
//! - the heap ahead of malloc: while the prefault runs, glibc grows its `brk` heap
//!   [`TOP_PAD`] bytes beyond each request (`M_TOP_PAD`), and the helper faults in each new
//!   stretch between the old break and the new one, which is where the next allocations go;
//! - each block of [`super::HugePageHint`] (the staged table of a load, which doubles by
//!   moving into a new block of up to hundreds of MB, each a fresh `mmap`), as it is
//!   allocated: the helper and the moving thread fault it in together.
//!
//! A range that is unmapped by the time the helper gets to it (the heap trimmed, a block
//! freed) makes `madvise` fail, and the helper moves on.
//!
//! A side effect, accepted: setting `M_TOP_PAD` also turns off glibc's dynamic mmap
//! threshold for the rest of the process (mallopt(3)), so blocks of 128 KiB and more keep
//! their own `mmap` instead of moving into the heap once one has been freed. The server's
//! steady-state buffers are smaller, and its large tables are mapped either way; and the
//! engine runs a prefault only for loads of 16 MiB of files and more.

use std::sync::Mutex;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How far beyond each request glibc grows its heap while a prefault runs: room for the
/// helper to work ahead of malloc. At most this much memory is faulted in beyond what the
/// load uses; glibc's trim returns it once the default pad is back.
const TOP_PAD: usize = 64 << 20;

/// glibc's default `M_TOP_PAD` (mallopt(3)), set back when the prefault ends.
const DEFAULT_TOP_PAD: usize = 128 << 10;

/// How much the helper faults in per `madvise` call: a huge page, so that what it covers is
/// counted as it goes and a range freed meanwhile stops it at the next step.
const STEP: usize = 2 << 20;

/// How long the helper sleeps when the heap has not grown and no block waits.
const IDLE: Duration = Duration::from_micros(200);

/// Blocks to fault in: the running prefault's queue, `None` while none runs. Filled by
/// [`super::HugePageHint`] through [`fault_in_later`].
static BLOCKS: Mutex<Option<mpsc::Sender<Range>>> = Mutex::new(None);

/// A range of the address space: start and length.
type Range = (usize, usize);

/// What a prefault faulted in, for the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prefaulted {
    /// Bytes of malloc's heap.
    pub heap: u64,
    /// Bytes of large blocks (tables).
    pub blocks: u64,
}

/// A helper thread faulting in fresh memory while it lives (see the module docs). Start it
/// when a load begins, [`Prefault::finish`] it when the load ends.
pub struct Prefault {
    helper: Option<JoinHandle<Prefaulted>>,
}

impl Prefault {
    /// Starts the helper, or `None` where it would not help or cannot work: on one CPU (the
    /// helper would take its time from the load), off Linux with glibc, when the kernel lacks
    /// `MADV_POPULATE_WRITE`, or when a prefault already runs (the process has one heap).
    pub fn start() -> Option<Prefault> {
        if std::thread::available_parallelism().map_or(1, usize::from) < 2 || !supported() {
            return None;
        }
        let mut blocks = BLOCKS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if blocks.is_some() {
            return None;
        }
        let (queue, jobs) = mpsc::channel();
        let helper = std::thread::Builder::new()
            .name("keeper-prefault".into())
            .spawn(move || run(&jobs))
            .ok()?;
        *blocks = Some(queue);
        set_top_pad(TOP_PAD);
        Some(Prefault {
            helper: Some(helper),
        })
    }

    /// Stops the helper and says what it faulted in.
    pub fn finish(mut self) -> Prefaulted {
        self.stop()
    }

    fn stop(&mut self) -> Prefaulted {
        let Some(helper) = self.helper.take() else {
            return Prefaulted::default();
        };
        // Dropping the queue's sender is the helper's signal to stop.
        *BLOCKS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        set_top_pad(DEFAULT_TOP_PAD);
        helper.join().unwrap_or_default()
    }
}

impl Drop for Prefault {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Hands a freshly allocated block to the running prefault, if any.
pub(super) fn fault_in_later(start: *mut u8, len: usize) {
    if let Some(queue) = BLOCKS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .as_ref()
    {
        // A send fails only when the helper has stopped: then nobody faults it in early.
        let _ = queue.send((start as usize, len));
    }
}

/// The helper's loop: blocks first (the thread that allocated one is moving into it now),
/// then the heap's new stretch, a step at a time; until the queue's sender is dropped.
fn run(jobs: &mpsc::Receiver<Range>) -> Prefaulted {
    let mut done = Prefaulted::default();
    // Below the break at the start, the heap is in use already.
    let mut heap_done = program_break();
    let mut block: Option<Range> = None;
    loop {
        if block.is_none() {
            match jobs.try_recv() {
                Ok(next) => block = Some(next),
                Err(mpsc::TryRecvError::Empty) => {}
                Err(mpsc::TryRecvError::Disconnected) => return done,
            }
        }
        if let Some((start, len)) = block {
            let step = len.min(STEP);
            block = if populate(start, step) {
                done.blocks += step as u64;
                (len > step).then_some((start + step, len - step))
            } else {
                None // freed already
            };
            continue;
        }
        let end = program_break();
        // A trim lowered the break: what lies above it is gone.
        heap_done = heap_done.min(end);
        if end > heap_done {
            let step = (end - heap_done).min(STEP);
            if populate(heap_done, step) {
                done.heap += step as u64;
                heap_done += step;
            } else {
                heap_done = program_break();
            }
            continue;
        }
        match jobs.recv_timeout(IDLE) {
            Ok(next) => block = Some(next),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return done,
        }
    }
}

/// Sets glibc's `M_TOP_PAD`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_top_pad(bytes: usize) {
    super::mallopt(libc::M_TOP_PAD, bytes as libc::c_int);
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_top_pad(_bytes: usize) {}

/// `MADV_POPULATE_WRITE` (Linux 5.14; not in the `libc` crate).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MADV_POPULATE_WRITE: libc::c_int = 23;

/// Faults `len` bytes from `start` in as a write would, changing no byte. False when the
/// range is (partly) unmapped or the kernel refuses.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn populate(start: usize, len: usize) -> bool {
    // SAFETY: MADV_POPULATE_WRITE only faults pages in (zeroed when new, untouched when
    // present); it never changes the contents of memory, so it cannot race with the threads
    // that use the range, whoever owns it. On a range that is not mapped writable it fails.
    unsafe { libc::madvise(start as *mut libc::c_void, len, MADV_POPULATE_WRITE) == 0 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn populate(_start: usize, _len: usize) -> bool {
    false
}

/// The current program break (the end of malloc's main heap), from the kernel.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn program_break() -> usize {
    // SAFETY: brk(0) moves nothing: it returns the current break (an address; never an error).
    unsafe { libc::syscall(libc::SYS_brk, 0) as usize }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn program_break() -> usize {
    0
}

/// True when the kernel knows `MADV_POPULATE_WRITE`: populating an empty range is `EINVAL`
/// where it does not, and succeeds where it does.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn supported() -> bool {
    // SAFETY: a zero-length advice at address 0 (page aligned) touches nothing; the kernel
    // checks the advice number before it sees that there is nothing to do.
    unsafe { libc::madvise(std::ptr::null_mut(), 0, MADV_POPULATE_WRITE) == 0 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn supported() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resident pages of `len` bytes from `start` (page aligned), by `mincore`.
    #[allow(unsafe_code)]
    fn resident(start: *mut u8, len: usize) -> usize {
        let page = 4096;
        let mut map = vec![0u8; len.div_ceil(page)];
        // SAFETY: the range is a live mapping of the caller's; mincore only reports.
        let r = unsafe { libc::mincore(start.cast(), len, map.as_mut_ptr()) };
        assert_eq!(r, 0, "mincore");
        map.iter().filter(|&&b| b & 1 == 1).count() * page
    }

    #[test]
    #[allow(unsafe_code)]
    fn a_block_allocated_during_a_prefault_is_faulted_in_without_a_write() {
        let Some(prefault) = Prefault::start() else {
            eprintln!("no prefault here (one CPU, or no MADV_POPULATE_WRITE)");
            return;
        };
        let len = 64 << 20;
        // SAFETY: a private anonymous mapping of our own, unmapped below.
        let block = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(block, libc::MAP_FAILED);
        let block = block.cast::<u8>();
        assert_eq!(resident(block, len), 0, "a fresh mapping has no page yet");
        // SAFETY: the first and last bytes of the mapping, which is ours.
        unsafe {
            block.write(7);
        }
        fault_in_later(block, len);
        let done = prefault.finish();
        assert_eq!(done.blocks, len as u64, "{done:?}");
        assert_eq!(resident(block, len), len, "every page faulted in");
        // SAFETY: as above; the contents are what was written, and zero elsewhere.
        unsafe {
            assert_eq!(block.read(), 7, "populating changed no byte");
            assert_eq!(block.add(len - 1).read(), 0);
            libc::munmap(block.cast(), len);
        }
    }
}
