//! The process's resident memory, from `/proc` (Linux; `None` elsewhere): the one sampler
//! behind `INFO memory` (`used_memory`, `used_memory_rss`, the `used-mem` AUX field) and the
//! extra memory a background save measures ([`super::BackgroundSave`]).
//!
//! keeper does not count its own allocations, so resident memory stands in for Redis's
//! `used_memory`.

use std::fs;
use std::sync::OnceLock;

/// `AT_PAGESZ` in the auxiliary vector.
const AT_PAGESZ: u64 = 6;
/// Used only when `/proc/self/auxv` cannot be read; the page size of x86-64 and of most
/// aarch64 kernels.
const FALLBACK_PAGE_SIZE: u64 = 4096;

/// Resident bytes now: resident pages of `/proc/self/statm` (a cheap read, unlike
/// `smaps_rollup` or `status`) times the page size.
pub fn resident_bytes() -> Option<u64> {
    let statm = fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

/// The peak of resident memory since the process started (`VmHWM` of `/proc/self/status`).
pub fn peak_resident_bytes() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// The kernel's page size, from the auxiliary vector the kernel gave this process (no libc
/// call needed): pairs of native-endian `u64` (type, value).
fn page_size() -> u64 {
    static PAGE_SIZE: OnceLock<u64> = OnceLock::new();
    *PAGE_SIZE.get_or_init(|| {
        fs::read("/proc/self/auxv")
            .ok()
            .and_then(|auxv| page_size_from_auxv(&auxv))
            .unwrap_or(FALLBACK_PAGE_SIZE)
    })
}

fn page_size_from_auxv(auxv: &[u8]) -> Option<u64> {
    auxv.chunks_exact(16).find_map(|pair| {
        let (key, value) = pair.split_at(8);
        let key = u64::from_ne_bytes(key.try_into().ok()?);
        let value = u64::from_ne_bytes(value.try_into().ok()?);
        (key == AT_PAGESZ && value > 0).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_comes_from_the_auxiliary_vector() {
        let mut auxv = Vec::new();
        for (k, v) in [(3u64, 0x40u64), (6, 16384), (0, 0)] {
            auxv.extend_from_slice(&k.to_ne_bytes());
            auxv.extend_from_slice(&v.to_ne_bytes());
        }
        assert_eq!(page_size_from_auxv(&auxv), Some(16384));
        assert_eq!(page_size_from_auxv(&auxv[..16]), None);
    }

    #[test]
    fn resident_bytes_grows_with_touched_memory() {
        let Some(before) = resident_bytes() else {
            return; // not Linux
        };
        let block = vec![1u8; 64 << 20];
        let after = resident_bytes().unwrap();
        std::hint::black_box(&block);
        // Other tests of this process allocate and free too; half the block is a safe floor.
        assert!(after >= before + (32 << 20), "{before} -> {after}");
        let peak = peak_resident_bytes().unwrap();
        assert!(
            peak >= after,
            "the peak {peak} is at least the current {after}"
        );
    }
}
