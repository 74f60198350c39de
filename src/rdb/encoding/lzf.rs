//! LZF compression as used by RDB strings (`0xC3 clen ulen data`; redis/redis `src/lzf_d.c`,
//! `src/lzf_c.c`, liblzf 3.x).
//!
//! The stream is a sequence of control bytes `c`: `c < 32` starts a literal run of `c + 1` bytes
//! copied from the input; otherwise it is a back-reference of `len = c >> 5` (7 means "add the
//! next byte") and offset `((c & 0x1F) << 8) + next + 1` back in the output, copying `len + 2`
//! bytes, where the source may overlap the bytes being written (run-length style).
//!
//! The decoder checks every read against the input and every write and back-reference against
//! the output produced so far, and fails unless exactly `out_len` bytes come out, as Redis does.
//! Because one input byte can expand to at most 88 output bytes (a 3-byte back-reference yields
//! 264), an `out_len` larger than `88 * input.len()` is rejected before anything is allocated:
//! a hostile length field in an RDB file cannot make us allocate more than the blob justifies.
//!
//! The compressor follows liblzf's algorithm (hash of the next three bytes, matches of 3..=264
//! bytes up to 8 KiB back, literal runs of at most 32) and Redis's rule of only using the result
//! when it is at least 4 bytes shorter than the input. Byte-identical output with Redis is not
//! needed: Redis decodes any valid stream.

use super::BlobError;

/// Longest literal run one control byte can announce.
const MAX_LIT: usize = 32;
/// Farthest back a reference can point (13 offset bits).
const MAX_OFF: usize = 1 << 13;
/// Longest match one reference can copy: `7 + 255 + 2`.
const MAX_REF: usize = 264;
/// Most output bytes one input byte can produce: a 3-byte reference copying 264 bytes.
const MAX_EXPANSION: usize = MAX_REF / 3;
/// liblzf's hash table size as Redis builds it (HLOG 16); smaller inputs use smaller tables.
const MAX_HLOG: u32 = 16;
const MIN_HLOG: u32 = 8;
/// Misses in a row after which the compressor's scan step grows by one (LZ4's value).
const SKIP_TRIGGER: u32 = 6;

/// Decompresses `input`, which must decode to exactly `out_len` bytes.
pub fn decompress(input: &[u8], out_len: usize) -> Result<Vec<u8>, BlobError> {
    let mut out = Vec::new();
    decompress_into(input, out_len, &mut out)?;
    Ok(out)
}

/// Decompresses `input` and appends exactly `out_len` bytes to `out`, so the caller can reuse
/// one buffer. Back-references can only reach bytes produced by this call, never what `out`
/// already held. On error `out` is left as it was.
pub fn decompress_into(input: &[u8], out_len: usize, out: &mut Vec<u8>) -> Result<(), BlobError> {
    if out_len > input.len().saturating_mul(MAX_EXPANSION) {
        return Err(BlobError::new(
            0,
            format!(
                "LZF: {} compressed bytes cannot expand to the stated {out_len} bytes",
                input.len()
            ),
        ));
    }
    let base = out.len();
    out.resize(base + out_len, 0);
    let result = decode(input, &mut out[base..]);
    if result.is_err() {
        out.truncate(base);
    }
    result
}

/// Checks that `input` decodes to exactly `out_len` bytes, as [`decompress`] would, without
/// producing them: every back-reference must point into what was decoded so far, and nothing
/// may overrun. For a string whose content is not needed (a check), this skips all copying.
///
/// Its token loop mirrors `decode`'s on purpose: one loop generic over "copy or not" measured
/// 3% slower on `check-rdb`. The `validate_agrees_with_decompress` proptest holds the two to
/// the same verdict and error offset on valid and damaged input.
pub fn validate(input: &[u8], out_len: usize) -> Result<(), BlobError> {
    if out_len > input.len().saturating_mul(MAX_EXPANSION) {
        return Err(BlobError::new(
            0,
            format!(
                "LZF: {} compressed bytes cannot expand to the stated {out_len} bytes",
                input.len()
            ),
        ));
    }
    let mut ip = 0;
    let mut op = 0;
    while ip < input.len() {
        let at = ip;
        let ctrl = usize::from(input[ip]);
        ip += 1;
        let produced = if ctrl < 32 {
            let run = ctrl + 1;
            if ip + run > input.len() {
                return Err(BlobError::new(
                    at,
                    format!("LZF: literal run of {run} bytes runs past the end of the input"),
                ));
            }
            ip += run;
            run
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                let Some(&extra) = input.get(ip) else {
                    return Err(truncated_ref(at));
                };
                len += usize::from(extra);
                ip += 1;
            }
            let Some(&low) = input.get(ip) else {
                return Err(truncated_ref(at));
            };
            ip += 1;
            let off = ((ctrl & 0x1F) << 8) + usize::from(low) + 1;
            if off > op {
                return Err(BlobError::new(
                    at,
                    format!(
                        "LZF: back-reference {off} bytes back, but only {op} bytes were decoded \
                         so far"
                    ),
                ));
            }
            len + 2
        };
        if op + produced > out_len {
            return Err(overflow(at, out_len));
        }
        op += produced;
    }
    if op != out_len {
        return Err(BlobError::new(
            input.len(),
            format!("LZF: decoded {op} bytes, expected {out_len}"),
        ));
    }
    Ok(())
}

/// Bytes copied at once on the fast paths: short literal runs and back-references are copied
/// as one fixed-size block (the excess is overwritten by what follows), which beats a `memcpy`
/// call per token.
const BLOCK: usize = 16;

/// Decodes `input` into exactly `out` (whose length is the stated decompressed size).
fn decode(input: &[u8], out: &mut [u8]) -> Result<(), BlobError> {
    let out_len = out.len();
    let mut ip = 0;
    let mut op = 0;
    while ip < input.len() {
        let at = ip;
        let ctrl = usize::from(input[ip]);
        ip += 1;
        if ctrl < 32 {
            let run = ctrl + 1;
            if ip + run > input.len() {
                return Err(BlobError::new(
                    at,
                    format!("LZF: literal run of {run} bytes runs past the end of the input"),
                ));
            }
            if op + run > out_len {
                return Err(overflow(at, out_len));
            }
            if run <= BLOCK && ip + BLOCK <= input.len() && op + BLOCK <= out_len {
                out[op..op + BLOCK].copy_from_slice(&input[ip..ip + BLOCK]);
            } else {
                out[op..op + run].copy_from_slice(&input[ip..ip + run]);
            }
            ip += run;
            op += run;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                let Some(&extra) = input.get(ip) else {
                    return Err(truncated_ref(at));
                };
                len += usize::from(extra);
                ip += 1;
            }
            let Some(&low) = input.get(ip) else {
                return Err(truncated_ref(at));
            };
            ip += 1;
            let off = ((ctrl & 0x1F) << 8) + usize::from(low) + 1;
            let len = len + 2;
            if off > op {
                return Err(BlobError::new(
                    at,
                    format!(
                        "LZF: back-reference {off} bytes back, but only {op} bytes were decoded \
                         so far"
                    ),
                ));
            }
            if op + len > out_len {
                return Err(overflow(at, out_len));
            }
            let src = op - off;
            if off >= BLOCK && len <= BLOCK && op + BLOCK <= out_len {
                // The block ends at or before `op`, so it never reads what it writes.
                out.copy_within(src..src + BLOCK, op);
            } else if off >= len {
                out.copy_within(src..src + len, op);
            } else {
                // Overlapping: liblzf copies byte by byte, which repeats the last `off` bytes
                // (a run of one byte when `off` is 1). The same result in chunks: once `done`
                // bytes (a multiple of `off`) are written, `out[src..op + done]` holds whole
                // periods, so its first `off + done` bytes can be copied at once, and the
                // length copied doubles each time.
                let mut done = 0;
                while done < len {
                    let chunk = (off + done).min(len - done);
                    out.copy_within(src..src + chunk, op + done);
                    done += chunk;
                }
            }
            op += len;
        }
    }
    if op != out_len {
        return Err(BlobError::new(
            input.len(),
            format!("LZF: decoded {op} bytes, expected {out_len}"),
        ));
    }
    Ok(())
}

fn overflow(at: usize, out_len: usize) -> BlobError {
    BlobError::new(
        at,
        format!("LZF: output would exceed the stated length of {out_len} bytes"),
    )
}

fn truncated_ref(at: usize) -> BlobError {
    BlobError::new(at, "LZF: back-reference runs past the end of the input")
}

/// Compresses `input` the way Redis does before saving a string: `Some` only when the result is
/// at most `input.len() - 4` bytes (so inputs of 4 bytes or fewer never compress).
pub fn compress(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    compress_into(input, &mut out).then_some(out)
}

/// Like [`compress`], appending to `out`; returns `false` (with `out` unchanged) when the input
/// does not compress by at least 4 bytes.
///
/// Why not the `lzf` crate: its `compress` allocates and zeroes a 64 Ki-entry `usize` hash table
/// (512 KiB) on every call, which dominates the cost of compressing the many short strings of an
/// RDB file, and it needs `unsafe`. This is the same liblzf algorithm (VERY_FAST variant) with
/// one hash table per thread, reused: each call clears only the `2^hlog` slots it uses, sized
/// to the input, so the output depends on the input alone; and a scan that finds no match for
/// a while speeds up (see `SKIP_TRIGGER`). The test suite checks both directions against the
/// crate; `cargo bench --bench rdb -- lzf/` compares the speed.
pub fn compress_into(input: &[u8], out: &mut Vec<u8>) -> bool {
    if input.len() <= 4 {
        return false;
    }
    TABLE.with(|table| match table.try_borrow_mut() {
        Ok(mut table) => compress_with(input, out, &mut table),
        // Only reachable if compression re-entered itself on this thread; a private table is
        // as correct, only slower.
        Err(_) => compress_with(input, out, &mut vec![0; 1 << MAX_HLOG]),
    })
}

thread_local! {
    /// The hash table of [`compress_into`] (slot value = position + 1; 0 = empty).
    static TABLE: std::cell::RefCell<Vec<u32>> = std::cell::RefCell::new(vec![0; 1 << MAX_HLOG]);
}

/// The three bytes at `p` as a little-endian number (the hash input and the match test).
#[inline(always)]
fn triple(input: &[u8], p: usize) -> u32 {
    u32::from(input[p]) | (u32::from(input[p + 1]) << 8) | (u32::from(input[p + 2]) << 16)
}

/// Length of the common prefix of `input[a..]` and `input[b..]` (`a < b`), at most `max`,
/// compared eight bytes at a time.
#[inline(always)]
fn common_prefix(input: &[u8], a: usize, b: usize, max: usize) -> usize {
    let mut len = 0;
    while len + 8 <= max {
        let x = u64::from_le_bytes(word(input, a + len)) ^ u64::from_le_bytes(word(input, b + len));
        if x != 0 {
            return len + (x.trailing_zeros() / 8) as usize;
        }
        len += 8;
    }
    while len < max && input[a + len] == input[b + len] {
        len += 1;
    }
    len
}

#[inline(always)]
fn word(input: &[u8], p: usize) -> [u8; 8] {
    let mut w = [0u8; 8];
    w.copy_from_slice(&input[p..p + 8]);
    w
}

fn compress_with(input: &[u8], out: &mut Vec<u8>, table: &mut [u32]) -> bool {
    let n = input.len();
    // Redis keeps the result only when it saves at least 4 bytes.
    let limit = n - 4;
    let base = out.len();
    out.reserve(limit + MAX_LIT + 1);
    let hlog = (usize::BITS - (n - 1).leading_zeros()).clamp(MIN_HLOG, MAX_HLOG);
    let table = &mut table[..1 << hlog];
    table.fill(0);
    let shift = 32 - hlog;
    let slot_of = |v: u32| (v.wrapping_mul(0x9E37_79B1) >> shift) as usize;

    let mut lit_start = 0;
    let mut ip = 0;
    let mut misses = 0usize;
    while ip + 2 < n {
        let v = triple(input, ip);
        let slot = slot_of(v);
        let candidate = table[slot] as usize;
        table[slot] = (ip + 1) as u32;
        // `candidate - 1 < ip` always holds: slots only ever hold earlier positions.
        let matched =
            candidate != 0 && ip - candidate < MAX_OFF && triple(input, candidate - 1) == v;
        if !matched {
            // As LZ4 does, a long run without a match makes the scan skip ahead: the step
            // grows by one every 2^SKIP_TRIGGER misses, so an incompressible string costs a
            // third of a full scan, while text with matches is scanned byte by byte.
            ip = (ip + 1 + (misses >> SKIP_TRIGGER)).min(n);
            misses += 1;
            while ip - lit_start >= MAX_LIT {
                if !flush_literals(&input[lit_start..lit_start + MAX_LIT], out, base, limit) {
                    out.truncate(base);
                    return false;
                }
                lit_start += MAX_LIT;
            }
            continue;
        }
        misses = 0;
        let r = candidate - 1;
        let max = (n - ip).min(MAX_REF);
        let len = 3 + common_prefix(input, r + 3, ip + 3, max - 3);
        if !flush_literals(&input[lit_start..ip], out, base, limit) {
            out.truncate(base);
            return false;
        }
        let off = ip - r - 1;
        let code = len - 2;
        let hi = (off >> 8) as u8;
        if code < 7 {
            out.push(hi + ((code as u8) << 5));
        } else {
            out.push(hi + (7 << 5));
            out.push((code - 7) as u8);
        }
        out.push(off as u8);
        if out.len() - base > limit {
            out.truncate(base);
            return false;
        }
        ip += len;
        lit_start = ip;
        // Like liblzf's VERY_FAST mode, index the last two positions of the match.
        for p in ip - 2..ip {
            if p + 2 < n {
                table[slot_of(triple(input, p))] = (p + 1) as u32;
            }
        }
    }
    let mut start = lit_start;
    while start < n {
        let stop = (start + MAX_LIT).min(n);
        if !flush_literals(&input[start..stop], out, base, limit) {
            out.truncate(base);
            return false;
        }
        start = stop;
    }
    true
}

/// Writes `run` (at most 32 bytes) as one literal run; `false` when that would take the output
/// past `limit` bytes.
fn flush_literals(run: &[u8], out: &mut Vec<u8>, base: usize, limit: usize) -> bool {
    if run.is_empty() {
        return true;
    }
    if out.len() - base + 1 + run.len() > limit {
        return false;
    }
    out.push((run.len() - 1) as u8);
    out.extend_from_slice(run);
    true
}

#[cfg(test)]
mod validate_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// `validate` accepts exactly what `decompress` accepts, at the same offset.
        #[test]
        fn validate_agrees_with_decompress(
            data in proptest::collection::vec(any::<u8>(), 0..600),
            flip in any::<(usize, u8)>(),
            delta in -3i64..3,
        ) {
            let compressed = compress(&data).unwrap_or_else(|| data.clone());
            let mut damaged = compressed.clone();
            if !damaged.is_empty() {
                let i = flip.0 % damaged.len();
                damaged[i] ^= flip.1;
            }
            let out_len = (data.len() as i64 + delta).max(0) as usize;
            for input in [&compressed, &damaged] {
                let full = decompress(input, out_len).map(|_| ()).map_err(|e| e.offset);
                let check = validate(input, out_len).map_err(|e| e.offset);
                prop_assert_eq!(full, check);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn literal_and_reference() {
        // "abc" literal, then copy 6 bytes from 3 back (overlapping): "abcabcabc".
        let blob = [0x02, b'a', b'b', b'c', (4 << 5), 0x02];
        assert_eq!(decompress(&blob, 9).unwrap(), b"abcabcabc");
    }

    #[test]
    fn run_of_one_byte_uses_fill() {
        // "x" then a 7+255+2 = 264-byte copy from 1 back.
        let blob = [0x00, b'x', 0xE0, 0xFF, 0x00];
        assert_eq!(decompress(&blob, 265).unwrap(), vec![b'x'; 265]);
    }

    #[test]
    fn empty() {
        assert_eq!(decompress(&[], 0).unwrap(), b"");
        assert!(decompress(&[], 1).is_err());
        assert!(compress(b"").is_none());
        assert!(compress(b"aaaa").is_none());
    }

    #[test]
    fn errors_have_offsets() {
        // Literal run past the input.
        let e = decompress(&[0x05, b'a'], 6).unwrap_err();
        assert_eq!(e.offset, 0);
        assert!(e.reason.contains("literal"), "{}", e.reason);
        // Reference before the start of the output.
        let e = decompress(&[0x00, b'a', 0x20, 0x01], 4).unwrap_err();
        assert_eq!(e.offset, 2);
        assert!(e.reason.contains("back"), "{}", e.reason);
        // Truncated reference.
        let e = decompress(&[0x00, b'a', 0xE0], 10).unwrap_err();
        assert_eq!(e.offset, 2);
        let e = decompress(&[0x00, b'a', 0xE0, 0x01], 10).unwrap_err();
        assert_eq!(e.offset, 2);
        // Output longer than stated.
        let e = decompress(&[0x02, b'a', b'b', b'c'], 2).unwrap_err();
        assert!(e.reason.contains("exceed"), "{}", e.reason);
        let e = decompress(&[0x00, b'a', 0x20, 0x00], 2).unwrap_err();
        assert_eq!(e.offset, 2);
        // Output shorter than stated.
        let e = decompress(&[0x02, b'a', b'b', b'c'], 4).unwrap_err();
        assert_eq!(e.offset, 4);
        assert!(e.reason.contains("expected 4"), "{}", e.reason);
    }

    #[test]
    fn hostile_out_len_is_rejected_before_allocating() {
        let e = decompress(&[0x00, b'a'], usize::MAX).unwrap_err();
        assert_eq!(e.offset, 0);
        let e = decompress(&[0x00, b'a', 0xE0, 0xFF, 0x00], 5 * 88 + 1).unwrap_err();
        assert!(e.reason.contains("cannot expand"), "{}", e.reason);
        // The bound is tight: 3-byte references producing 264 bytes each reach 88x.
        let mut blob = vec![0x00, b'x'];
        for _ in 0..100 {
            blob.extend_from_slice(&[0xE0, 0xFF, 0x00]);
        }
        let want = 1 + 100 * 264;
        assert!(want <= blob.len() * MAX_EXPANSION);
        assert_eq!(decompress(&blob, want).unwrap(), vec![b'x'; want]);
    }

    #[test]
    fn decompress_into_appends_and_restores_on_error() {
        let mut out = b"prefix".to_vec();
        decompress_into(&[0x02, b'a', b'b', b'c', 0x40, 0x02], 7, &mut out).unwrap();
        assert_eq!(out, b"prefixabcabca");
        // A reference may not reach into what the buffer held before.
        let e = decompress_into(&[0x00, b'a', 0x20, 0x05], 4, &mut out).unwrap_err();
        assert_eq!(e.offset, 2);
        assert_eq!(out, b"prefixabcabca");
    }

    #[test]
    fn compress_rule_of_four_bytes() {
        // 21 distinct bytes cannot shrink.
        assert!(compress(b"abcdefghijklmnopqrstu").is_none());
        let input = vec![b'a'; 100];
        let c = compress(&input).unwrap();
        assert!(c.len() <= 96);
        assert_eq!(decompress(&c, 100).unwrap(), input);
        // Exactly at the limit: the output must be <= len - 4.
        for n in 5..64 {
            let input: Vec<u8> = (0..n).map(|i| b"abcab"[i % 5]).collect();
            if let Some(c) = compress(&input) {
                assert!(c.len() <= n - 4, "n={n} c={}", c.len());
                assert_eq!(decompress(&c, n).unwrap(), input);
            }
        }
    }

    #[test]
    fn long_and_far_matches() {
        let mut input = Vec::new();
        for i in 0..20_000u32 {
            input.extend_from_slice(format!("key:{}:", i % 700).as_bytes());
        }
        let c = compress(&input).unwrap();
        assert!(c.len() < input.len() / 3);
        assert_eq!(decompress(&c, input.len()).unwrap(), input);
        assert_eq!(lzf::decompress(&c, input.len()).unwrap(), input);
    }

    #[test]
    fn ratio_close_to_liblzf() {
        // Same algorithm, different hash function: sizes should be within a few percent of the
        // `lzf` crate (a liblzf port with Redis's HLOG 16).
        let text = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod \
                    tempor incididunt ut labore et dolore magna aliqua. "
            .repeat(40);
        let mut keys = Vec::new();
        for i in 0..3000u32 {
            keys.extend_from_slice(
                format!("user:{}:session:{:x};", i, i.wrapping_mul(2_654_435_761)).as_bytes(),
            );
        }
        for input in [text.as_bytes(), &keys[..]] {
            let ours = compress(input).unwrap().len();
            let theirs = lzf::compress(input).unwrap().len();
            assert!(
                ours * 100 <= theirs * 105,
                "ours {ours}, liblzf port {theirs}"
            );
        }
    }

    /// Inputs with plenty of repetition, so compression actually happens.
    fn compressible() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec((0u8..4, 1usize..40), 0..60).prop_map(|runs| {
            let mut v = Vec::new();
            for (b, n) in runs {
                for i in 0..n {
                    v.push(b'a' + b + (i % 3) as u8);
                }
            }
            v
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn round_trip(input in prop_oneof![compressible(), prop::collection::vec(any::<u8>(), 0..300)]) {
            if let Some(c) = compress(&input) {
                prop_assert!(c.len() + 4 <= input.len());
                prop_assert_eq!(&decompress(&c, input.len()).unwrap(), &input);
                // An independent decoder agrees.
                prop_assert_eq!(&lzf::decompress(&c, input.len()).unwrap(), &input);
            }
        }

        #[test]
        fn decodes_the_lzf_crate(input in compressible()) {
            if let Ok(c) = lzf::compress(&input) {
                prop_assert_eq!(&decompress(&c, input.len()).unwrap(), &input);
            }
        }

        #[test]
        fn random_bytes_never_panic(blob in prop::collection::vec(any::<u8>(), 0..200), out_len in 0usize..2000) {
            let mut out = vec![1, 2, 3];
            if decompress_into(&blob, out_len, &mut out).is_ok() {
                prop_assert_eq!(out.len(), 3 + out_len);
            } else {
                prop_assert_eq!(out, vec![1, 2, 3]);
            }
        }

        #[test]
        fn mutated_streams_never_panic(input in compressible(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
            if let Some(mut c) = compress(&input) {
                for (i, b) in flips {
                    let at = i.index(c.len());
                    c[at] = b;
                }
                let _ = decompress(&c, input.len());
            }
        }
    }
}
