//! Listpack (redis/redis `src/listpack.c`): the blob behind RDB types 16, 17, 18 (quicklist
//! nodes), 20, 23, 25 and stream nodes.
//!
//! Layout: total bytes (u32 LE, header and terminator included), element count (u16 LE,
//! `0xFFFF` = unknown), entries, terminator `0xFF`. Each entry is an encoding byte with its data,
//! then a *backlen*: the size of encoding+data in 1..=5 bytes of 7-bit groups, written so that
//! reading backwards from its last byte yields little-endian groups (bit 7 set means "more").
//!
//! Checked as Redis's deep sanitizer (`lpValidateIntegrity`, `lpValidateNext`) does: header size
//! and total == blob length, last byte `0xFF`, every encoding known, no entry running into or
//! past the terminator, every backlen decoding to its entry's size, the entries ending exactly
//! at the terminator, and the count matching the header unless that says `0xFFFF`.
//!
//! [`ListpackWriter`] produces byte-for-byte what Redis's `lpAppend` produces.

use super::{BlobError, Elem, parse_canonical_i64};

const HEADER: usize = 6;
const EOF: u8 = 0xFF;
const COUNT_UNKNOWN: u16 = 0xFFFF;

/// Validates the header of `blob` and returns an iterator over its entries, which validates
/// each entry as it goes and the count at the end.
pub fn iter(blob: &[u8]) -> Result<ListpackIter<'_>, BlobError> {
    super::check_total_len(blob, "listpack", HEADER + 1)?;
    if blob[blob.len() - 1] != EOF {
        return Err(BlobError::new(
            blob.len() - 1,
            format!(
                "listpack: last byte is {:#04x}, not the 0xff terminator",
                blob[blob.len() - 1]
            ),
        ));
    }
    Ok(ListpackIter {
        blob,
        pos: HEADER,
        seen: 0,
        header_count: u16::from_le_bytes([blob[4], blob[5]]),
    })
}

/// The number of elements: validates the whole listpack, then returns the count.
pub fn count(blob: &[u8]) -> Result<usize, BlobError> {
    let mut n = 0;
    for elem in iter(blob)? {
        elem?;
        n += 1;
    }
    Ok(n)
}

/// Iterator over a listpack's elements; stops after the first error.
#[derive(Debug, Clone)]
pub struct ListpackIter<'a> {
    blob: &'a [u8],
    /// Offset of the next entry; the terminator's at the end, `blob.len()` once done.
    pos: usize,
    seen: usize,
    header_count: u16,
}

impl<'a> ListpackIter<'a> {
    /// The element count from the header: `None` when it says `0xFFFF` (unknown).
    pub fn header_count(&self) -> Option<usize> {
        (self.header_count != COUNT_UNKNOWN).then_some(usize::from(self.header_count))
    }

    /// Ends the iteration: every later `next` returns `None`.
    fn stop(&mut self) {
        self.pos = self.blob.len();
    }

    fn fail(&mut self, offset: usize, reason: String) -> Option<Result<Elem<'a>, BlobError>> {
        self.stop();
        Some(Err(BlobError::new(offset, reason)))
    }

    /// Decodes the entry at `self.pos`, returning the element and the size of encoding+data.
    fn decode(&self) -> Result<(Elem<'a>, usize), BlobError> {
        let at = self.pos;
        // Entries may use bytes up to, not including, the terminator.
        let limit = self.blob.len() - 1;
        let b = self.blob[at];
        let need = |n: usize| -> Result<&'a [u8], BlobError> {
            match at.checked_add(n) {
                Some(end) if end <= limit => Ok(&self.blob[at..end]),
                _ => Err(BlobError::new(
                    at,
                    format!(
                        "listpack: entry with encoding {b:#04x} needs {n} bytes, runs into the \
                         terminator"
                    ),
                )),
            }
        };
        let str_entry = |head: usize, len: usize| -> Result<(Elem<'a>, usize), BlobError> {
            let size = head
                .checked_add(len)
                .ok_or_else(|| BlobError::new(at, "listpack: string length overflows"))?;
            let bytes = need(size)?;
            Ok((Elem::Str(&bytes[head..]), size))
        };
        let int_entry = |n: usize| -> Result<(Elem<'a>, usize), BlobError> {
            let bytes = need(1 + n)?;
            let mut buf = [0u8; 8];
            buf[..n].copy_from_slice(&bytes[1..]);
            // Sign-extend from n bytes.
            let shift = 64 - 8 * n as u32;
            let v = (i64::from_le_bytes(buf) << shift) >> shift;
            Ok((Elem::Int(v), 1 + n))
        };
        match b {
            0x00..=0x7F => Ok((Elem::Int(i64::from(b)), 1)),
            0x80..=0xBF => str_entry(1, usize::from(b & 0x3F)),
            0xC0..=0xDF => {
                let bytes = need(2)?;
                let u = (i64::from(b & 0x1F) << 8) | i64::from(bytes[1]);
                let v = if u >= 1 << 12 { u - (1 << 13) } else { u };
                Ok((Elem::Int(v), 2))
            }
            0xE0..=0xEF => {
                let bytes = need(2)?;
                str_entry(2, (usize::from(b & 0x0F) << 8) | usize::from(bytes[1]))
            }
            0xF0 => {
                let bytes = need(5)?;
                let len = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
                let len = usize::try_from(len).map_err(|_| {
                    BlobError::new(at, "listpack: string length does not fit in memory")
                })?;
                str_entry(5, len)
            }
            0xF1 => int_entry(2),
            0xF2 => int_entry(3),
            0xF3 => int_entry(4),
            0xF4 => int_entry(8),
            0xF5..=0xFE => Err(BlobError::new(
                at,
                format!("listpack: invalid entry encoding {b:#04x}"),
            )),
            EOF => Err(BlobError::new(
                at,
                "listpack: terminator byte 0xff before the end of the blob",
            )),
        }
    }
}

/// Size of the backlen field for an entry of `len` bytes (encoding+data); Redis's
/// `lpEncodeBacklen` thresholds, strict `<` from 2 bytes on.
fn backlen_size(len: usize) -> usize {
    if len <= 127 {
        1
    } else if len < 16383 {
        2
    } else if len < 2_097_151 {
        3
    } else if len < 268_435_455 {
        4
    } else {
        5
    }
}

/// Decodes the backlen whose last byte is at `last`, reading backwards as Redis's
/// `lpDecodeBacklen` does (at most 5 bytes). `None` when it is longer than 5 bytes.
fn decode_backlen(blob: &[u8], last: usize) -> Option<u64> {
    let mut value = 0u64;
    let mut shift = 0;
    let mut p = last;
    loop {
        let b = blob[p];
        value |= u64::from(b & 0x7F) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
        shift += 7;
        if shift > 28 || p == 0 {
            return None;
        }
        p -= 1;
    }
}

impl<'a> Iterator for ListpackIter<'a> {
    type Item = Result<Elem<'a>, BlobError>;

    // Inlined so that callers' loops keep the small-entry path in registers; everything else
    // is out of line.
    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        match self.next_small() {
            Some(elem) => Some(Ok(elem)),
            None => self.next_other(),
        }
    }
}

impl<'a> ListpackIter<'a> {
    /// Fast path for most entries: whole entries (encoding + data) under 128 bytes, whose
    /// backlen is the single byte `size`. `None` for anything else (the terminator, other
    /// entries, anything failing a check here, or after the end), which [`Self::next_other`]
    /// handles with its detailed errors.
    #[inline(always)]
    fn next_small(&mut self) -> Option<Elem<'a>> {
        let blob = self.blob;
        let at = self.pos;
        let terminator = blob.len() - 1;
        if at >= terminator {
            return None;
        }
        let b = blob[at];
        // `back_at`: where the entry's one-byte backlen must be. Arms that read data bytes
        // check first that they lie before the terminator.
        let (elem, back_at) = match b {
            0x00..=0x7F => (Elem::Int(i64::from(b)), at + 1),
            0x80..=0xBF => {
                let back_at = at + 1 + usize::from(b & 0x3F);
                if back_at >= terminator {
                    return None;
                }
                (Elem::Str(&blob[at + 1..back_at]), back_at)
            }
            0xC0..=0xDF => {
                let back_at = at + 2;
                if back_at >= terminator {
                    return None;
                }
                let u = (i64::from(b & 0x1F) << 8) | i64::from(blob[at + 1]);
                (
                    Elem::Int(if u >= 1 << 12 { u - (1 << 13) } else { u }),
                    back_at,
                )
            }
            0xE0..=0xEF => {
                if at + 1 >= terminator {
                    return None;
                }
                let len = (usize::from(b & 0x0F) << 8) | usize::from(blob[at + 1]);
                let back_at = at + 2 + len;
                if len > 125 || back_at >= terminator {
                    return None;
                }
                (Elem::Str(&blob[at + 2..back_at]), back_at)
            }
            0xF1..=0xF4 => {
                let back_at = at + 1 + if b == 0xF4 { 8 } else { usize::from(b - 0xEF) };
                if back_at >= terminator {
                    return None;
                }
                // Fixed-size reads: a copy of a variable length would call `memcpy`.
                let d = &blob[at + 1..back_at];
                let v = match b {
                    0xF1 => i64::from(i16::from_le_bytes([d[0], d[1]])),
                    0xF2 => i64::from(i32::from_le_bytes([0, d[0], d[1], d[2]]) >> 8),
                    0xF3 => i64::from(i32::from_le_bytes([d[0], d[1], d[2], d[3]])),
                    _ => i64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]),
                };
                (Elem::Int(v), back_at)
            }
            _ => return None,
        };
        if back_at >= terminator || blob[back_at] != (back_at - at) as u8 {
            return None;
        }
        self.pos = back_at + 1;
        self.seen += 1;
        Some(elem)
    }

    /// Whatever the fast path does not take: the end, and entries with all checks.
    #[inline(never)]
    fn next_other(&mut self) -> Option<Result<Elem<'a>, BlobError>> {
        let at = self.pos;
        let terminator = self.blob.len() - 1;
        match at.cmp(&terminator) {
            std::cmp::Ordering::Less => self.next_general(at, terminator),
            std::cmp::Ordering::Equal => self.end(),
            std::cmp::Ordering::Greater => None,
        }
    }
}

impl<'a> ListpackIter<'a> {
    /// At the terminator: the count of elements seen must match the header's.
    fn end(&mut self) -> Option<Result<Elem<'a>, BlobError>> {
        self.stop();
        match self.header_count() {
            Some(want) if want != self.seen => self.fail(
                4,
                format!("listpack: header says {want} elements, found {}", self.seen),
            ),
            _ => None,
        }
    }

    /// Every entry the fast path of `next` does not take, with all checks.
    fn next_general(
        &mut self,
        at: usize,
        terminator: usize,
    ) -> Option<Result<Elem<'a>, BlobError>> {
        let (elem, size) = match self.decode() {
            Ok(decoded) => decoded,
            Err(e) => {
                self.stop();
                return Some(Err(e));
            }
        };
        let back = backlen_size(size);
        let end = at + size + back;
        if end > terminator {
            return self.fail(
                at,
                format!(
                    "listpack: entry of {size} bytes plus {back}-byte backlen runs into the \
                     terminator"
                ),
            );
        }
        match decode_backlen(self.blob, end - 1) {
            Some(v) if v == size as u64 => {}
            Some(v) => {
                return self.fail(
                    at + size,
                    format!("listpack: backlen says {v}, entry is {size} bytes"),
                );
            }
            None => {
                return self.fail(at + size, "listpack: backlen longer than 5 bytes".into());
            }
        }
        self.pos = end;
        self.seen += 1;
        Some(Ok(elem))
    }
}

impl std::iter::FusedIterator for ListpackIter<'_> {}

/// Builds a listpack the way Redis's `lpAppend` does, byte for byte.
#[derive(Debug, Clone)]
pub struct ListpackWriter {
    /// Header placeholder followed by the entries; the terminator is added by `finish`.
    buf: Vec<u8>,
    entries: usize,
}

impl Default for ListpackWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl ListpackWriter {
    pub fn new() -> Self {
        ListpackWriter {
            buf: vec![0; HEADER],
            entries: 0,
        }
    }

    /// Appends an element as Redis does: a canonical integer (see [`parse_canonical_i64`]) gets
    /// the smallest integer encoding, anything else is a string.
    pub fn push(&mut self, bytes: &[u8]) {
        match parse_canonical_i64(bytes) {
            Some(v) => self.push_int(v),
            None => self.push_str(bytes),
        }
    }

    /// Appends an integer with the smallest integer encoding.
    pub fn push_int(&mut self, v: i64) {
        let start = self.buf.len();
        if (0..=127).contains(&v) {
            self.buf.push(v as u8);
        } else if (-4096..=4095).contains(&v) {
            let u = (v & 0x1FFF) as u16;
            self.buf.push(0xC0 | (u >> 8) as u8);
            self.buf.push(u as u8);
        } else if let Ok(v) = i16::try_from(v) {
            self.buf.push(0xF1);
            self.buf.extend_from_slice(&v.to_le_bytes());
        } else if (-(1 << 23)..(1 << 23)).contains(&v) {
            self.buf.push(0xF2);
            self.buf.extend_from_slice(&v.to_le_bytes()[..3]);
        } else if let Ok(v) = i32::try_from(v) {
            self.buf.push(0xF3);
            self.buf.extend_from_slice(&v.to_le_bytes());
        } else {
            self.buf.push(0xF4);
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
        self.end_entry(start);
    }

    /// Appends `bytes` as a string, even if it looks like an integer.
    ///
    /// Strings of 4 GiB or more cannot be represented; the length field is then wrong (Redis
    /// caps a listpack at 1 GiB, so callers never get near this).
    pub fn push_str(&mut self, bytes: &[u8]) {
        let start = self.buf.len();
        let len = bytes.len();
        if len < 64 {
            self.buf.push(0x80 | len as u8);
        } else if len < 4096 {
            self.buf.push(0xE0 | (len >> 8) as u8);
            self.buf.push(len as u8);
        } else {
            self.buf.push(0xF0);
            let len32 = u32::try_from(len).unwrap_or(u32::MAX);
            self.buf.extend_from_slice(&len32.to_le_bytes());
        }
        self.buf.extend_from_slice(bytes);
        self.end_entry(start);
    }

    /// Writes the backlen of the entry that starts at `start`.
    fn end_entry(&mut self, start: usize) {
        let l = self.buf.len() - start;
        let n = backlen_size(l);
        for i in (0..n).rev() {
            let group = ((l >> (7 * i)) & 0x7F) as u8;
            // The first byte written carries the highest group with bit 7 clear.
            self.buf.push(if i == n - 1 { group } else { group | 0x80 });
        }
        self.entries += 1;
    }

    /// Number of entries so far.
    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Size the listpack would have if finished now (header and terminator included).
    pub fn byte_len(&self) -> usize {
        self.buf.len() + 1
    }

    /// Writes the header and terminator and returns the listpack. The count field is `0xFFFF`
    /// (unknown) from 65535 entries on, as in Redis.
    ///
    /// The total-bytes field is 32 bits: callers keep [`byte_len`](Self::byte_len) far below
    /// 4 GiB (Redis refuses listpacks over 1 GiB); beyond it the field saturates and the blob
    /// is rejected by any reader rather than misread.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(EOF);
        let total = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        let count = u16::try_from(self.entries)
            .ok()
            .filter(|&c| c != COUNT_UNKNOWN)
            .unwrap_or(COUNT_UNKNOWN);
        self.buf[0..4].copy_from_slice(&total.to_le_bytes());
        self.buf[4..6].copy_from_slice(&count.to_le_bytes());
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::encoding::hex;
    use proptest::prelude::*;

    fn collect(blob: &[u8]) -> Result<Vec<Elem<'_>>, BlobError> {
        iter(blob)?.collect()
    }

    fn build(items: &[&[u8]]) -> Vec<u8> {
        let mut w = ListpackWriter::new();
        for i in items {
            w.push(i);
        }
        w.finish()
    }

    #[test]
    fn redis_hash_example() {
        let want = hex("15000000 0400 82 6631 03 82 7631 03 82 6632 03 02 01 FF");
        let got = build(&[b"f1", b"v1", b"f2", b"2"]);
        assert_eq!(got, want);
        assert_eq!(
            collect(&got).unwrap(),
            vec![
                Elem::Str(b"f1"),
                Elem::Str(b"v1"),
                Elem::Str(b"f2"),
                Elem::Int(2)
            ]
        );
        assert_eq!(count(&got).unwrap(), 4);
        assert_eq!(iter(&got).unwrap().header_count(), Some(4));
    }

    #[test]
    fn empty_listpack() {
        let lp = ListpackWriter::new().finish();
        assert_eq!(lp, hex("07000000 0000 FF"));
        assert_eq!(collect(&lp).unwrap(), vec![]);
    }

    #[test]
    fn integer_encodings() {
        let cases: &[(i64, &str)] = &[
            (0, "00 01"),
            (127, "7F 01"),
            (128, "C080 02"),
            (-1, "DFFF 02"),
            (4095, "CFFF 02"),
            (-4096, "D000 02"),
            (4096, "F1 0010 03"),
            (-4097, "F1 FFEF 03"),
            (32767, "F1 FF7F 03"),
            (32768, "F2 008000 04"),
            (-8388608, "F2 000080 04"),
            (8388608, "F3 00008000 05"),
            (i64::from(i32::MIN), "F3 00000080 05"),
            (1 << 31, "F4 0000008000000000 09"),
            (i64::MIN, "F4 0000000000000080 09"),
            (i64::MAX, "F4 FFFFFFFFFFFFFF7F 09"),
        ];
        for &(v, enc) in cases {
            let mut w = ListpackWriter::new();
            w.push_int(v);
            let lp = w.finish();
            assert_eq!(&lp[6..lp.len() - 1], hex(enc).as_slice(), "{v}");
            assert_eq!(collect(&lp).unwrap(), vec![Elem::Int(v)], "{v}");
            // push() of the decimal text gives the same bytes.
            assert_eq!(build(&[v.to_string().as_bytes()]), lp, "{v}");
        }
        // Non-canonical integers stay strings.
        for s in ["007", "-0", "+1", " 1", "1.0", "9223372036854775808"] {
            let lp = build(&[s.as_bytes()]);
            assert_eq!(collect(&lp).unwrap(), vec![Elem::Str(s.as_bytes())], "{s}");
        }
        let mut w = ListpackWriter::new();
        w.push_str(b"12");
        assert_eq!(w.finish(), hex("0B000000 0100 82 3132 03 FF"));
    }

    #[test]
    fn string_encodings_and_backlen_thresholds() {
        // Entry sizes around each backlen threshold: 127/128 (1→2 bytes), 16382/16383 (2→3).
        for len in [
            0usize, 63, 64, 125, 126, 127, 4095, 4096, 16377, 16378, 70_000,
        ] {
            let s = vec![b'x'; len];
            let mut w = ListpackWriter::new();
            w.push_str(&s);
            w.push_str(b"end");
            let before = w.byte_len();
            let lp = w.finish();
            assert_eq!(lp.len(), before);
            let head = if len < 64 {
                1
            } else if len < 4096 {
                2
            } else {
                5
            };
            let entry = head + len;
            let back = backlen_size(entry);
            assert_eq!(lp.len(), 6 + entry + back + 1 + 3 + 1 + 1, "len {len}");
            assert_eq!(
                collect(&lp).unwrap(),
                vec![Elem::Str(&s), Elem::Str(b"end")]
            );
        }
        assert_eq!(backlen_size(127), 1);
        assert_eq!(backlen_size(128), 2);
        assert_eq!(backlen_size(16382), 2);
        assert_eq!(backlen_size(16383), 3);
        assert_eq!(backlen_size(2_097_150), 3);
        assert_eq!(backlen_size(2_097_151), 4);
        assert_eq!(backlen_size(268_435_454), 4);
        assert_eq!(backlen_size(268_435_455), 5);
        // 16383 exactly: 3 bytes with a leading zero group, as Redis writes it.
        let mut w = ListpackWriter::new();
        w.push_str(&vec![b'y'; 16383 - 5]);
        let lp = w.finish();
        assert_eq!(&lp[lp.len() - 4..], &[0x00, 0xFF, 0xFF, 0xFF]);
        assert_eq!(count(&lp).unwrap(), 1);
        // 200: two bytes, high group first.
        let mut w = ListpackWriter::new();
        w.push_str(&[b'z'; 198]);
        let lp = w.finish();
        assert_eq!(&lp[lp.len() - 3..lp.len() - 1], &[0x01, 0xC8]);
    }

    #[test]
    fn count_field_saturates() {
        let mut w = ListpackWriter::new();
        for _ in 0..65534 {
            w.push_int(1);
        }
        let lp = w.clone().finish();
        assert_eq!(&lp[4..6], &[0xFE, 0xFF]);
        assert_eq!(iter(&lp).unwrap().header_count(), Some(65534));
        w.push_int(1);
        let lp = w.finish();
        assert_eq!(&lp[4..6], &[0xFF, 0xFF]);
        assert_eq!(iter(&lp).unwrap().header_count(), None);
        assert_eq!(count(&lp).unwrap(), 65535);
    }

    fn err(blob: &[u8]) -> BlobError {
        match iter(blob) {
            Err(e) => e,
            Ok(it) => {
                let results: Vec<_> = it.collect();
                // Fused: exactly one error, and it is the last item.
                let errors = results.iter().filter(|r| r.is_err()).count();
                assert_eq!(errors, 1, "{results:?}");
                results.into_iter().last().unwrap().unwrap_err()
            }
        }
    }

    #[test]
    fn header_errors() {
        assert!(err(&hex("06000000 0000")).reason.contains("shorter"));
        assert!(
            err(&hex("08000000 0000 FF"))
                .reason
                .contains("header says 8")
        );
        let e = err(&hex("07000000 0000 00"));
        assert_eq!(e.offset, 6);
        assert!(e.reason.contains("terminator"));
    }

    #[test]
    fn entry_errors() {
        // Count mismatch.
        let e = err(&hex("09000000 0200 01 01 FF"));
        assert_eq!(e.offset, 4);
        assert!(e.reason.contains("2 elements, found 1"), "{}", e.reason);
        // Unknown count is fine.
        assert_eq!(count(&hex("09000000 FFFF 01 01 FF")).unwrap(), 1);
        // Wrong backlen.
        let e = err(&hex("09000000 0100 01 02 FF"));
        assert_eq!(e.offset, 7);
        assert!(e.reason.contains("backlen says 2"), "{}", e.reason);
        // Backlen with continuation bits everywhere.
        let e = err(&hex("0E000000 0100 85 8181818181 81 FF"));
        assert!(e.reason.contains("backlen"), "{}", e.reason);
        // String running into the terminator.
        let e = err(&hex("0B000000 0100 85 6162 03 FF"));
        assert_eq!(e.offset, 6);
        assert!(e.reason.contains("terminator"), "{}", e.reason);
        // Backlen missing: entry ends right at the terminator.
        let e = err(&hex("08000000 0100 01 FF"));
        assert!(
            e.reason.contains("runs into the terminator"),
            "{}",
            e.reason
        );
        // Invalid encodings.
        for b in 0xF5..=0xFEu8 {
            let mut lp = hex("09000000 0100 00 01 FF");
            lp[6] = b;
            let e = err(&lp);
            assert_eq!(e.offset, 6);
            assert!(e.reason.contains("invalid entry encoding"), "{}", e.reason);
        }
        // A terminator in the middle.
        let e = err(&hex("0B000000 0100 01 01 FF 01 FF"));
        assert_eq!(e.offset, 8);
        // A huge 32-bit string length.
        let e = err(&hex("0D000000 0100 F0 FFFFFFFF 00 FF"));
        assert_eq!(e.offset, 6);
        // Truncated int64.
        let e = err(&hex("0B000000 0100 F4 0000 02 FF"));
        assert_eq!(e.offset, 6);
    }

    #[test]
    fn non_canonical_backlen_accepted_like_redis() {
        // lpDecodeBacklen reads 0x81 as "more to come" and then a zero group from the entry's
        // own data; the value still matches, so Redis accepts it, and so do we.
        let mut lp = build(&[&[0u8; 60]]);
        let n = lp.len();
        assert_eq!(lp[n - 2], 61);
        lp[n - 3] = 0x00; // last data byte, already 0
        lp[n - 2] = 0x80 | 61;
        assert_eq!(count(&lp).unwrap(), 1);
    }

    /// Every item through the general path alone, to hold the fast path to the same results.
    fn collect_general(blob: &[u8]) -> Vec<Result<Elem<'_>, BlobError>> {
        match iter(blob) {
            Ok(mut it) => std::iter::from_fn(|| it.next_other()).collect(),
            Err(e) => vec![Err(e)],
        }
    }

    fn collect_all(blob: &[u8]) -> Vec<Result<Elem<'_>, BlobError>> {
        match iter(blob) {
            Ok(it) => it.collect(),
            Err(e) => vec![Err(e)],
        }
    }

    #[test]
    fn fast_path_matches_general_path_on_every_small_entry() {
        // Every encoding byte, with each possible data byte after it and each backlen value.
        for b in 0..=0xFEu8 {
            for next in [0u8, 1, 2, 0x7D, 0x7E, 0x7F, 0x80, 0xFF] {
                for back in [0u8, 1, 2, 3, 4, 5, 9, 0x40, 0x7F, 0x80, 0x81] {
                    let mut body = vec![b, next];
                    body.resize(usize::from(back).max(2), 0);
                    body.push(back);
                    body.push(0x01);
                    body.push(0x01);
                    let mut lp = vec![0; HEADER];
                    lp.extend_from_slice(&body);
                    lp.push(EOF);
                    let n = lp.len() as u32;
                    lp[..4].copy_from_slice(&n.to_le_bytes());
                    lp[4..6].copy_from_slice(&[0xFF, 0xFF]);
                    assert_eq!(collect_all(&lp), collect_general(&lp), "{lp:02x?}");
                }
            }
        }
    }

    fn elem_strategy() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            any::<i64>().prop_map(|v| v.to_string().into_bytes()),
            (-70_000i64..70_000).prop_map(|v| v.to_string().into_bytes()),
            prop::collection::vec(any::<u8>(), 0..100),
            (0usize..3, 60usize..5000).prop_map(|(b, n)| vec![b'a' + b as u8; n]),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn round_trip(items in prop::collection::vec(elem_strategy(), 0..40)) {
            let mut w = ListpackWriter::new();
            for i in &items {
                w.push(i);
            }
            prop_assert_eq!(w.len(), items.len());
            let len = w.byte_len();
            let lp = w.finish();
            prop_assert_eq!(lp.len(), len);
            let got = collect(&lp).unwrap();
            prop_assert_eq!(got.len(), items.len());
            for (g, want) in got.iter().zip(&items) {
                prop_assert_eq!(&g.to_bytes()[..], &want[..]);
                prop_assert_eq!(matches!(g, Elem::Int(_)), parse_canonical_i64(want).is_some());
            }
        }

        #[test]
        fn random_bytes_never_panic(mut blob in prop::collection::vec(any::<u8>(), 0..100), fix_header in any::<bool>()) {
            if fix_header && blob.len() >= 7 {
                let n = blob.len() as u32;
                blob[..4].copy_from_slice(&n.to_le_bytes());
                let last = blob.len() - 1;
                blob[last] = 0xFF;
            }
            if let Ok(it) = iter(&blob) {
                prop_assert!(it.count() <= blob.len());
            }
            prop_assert_eq!(collect_all(&blob), collect_general(&blob));
        }

        #[test]
        fn mutated_listpacks_never_panic(
            items in prop::collection::vec(elem_strategy(), 1..10),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut lp = build(&items.iter().map(|i| &i[..]).collect::<Vec<_>>());
            for (i, b) in flips {
                // Keep the header and terminator intact so the entries get exercised.
                let at = HEADER + i.index(lp.len() - HEADER - 1);
                lp[at] = b;
            }
            if let Ok(it) = iter(&lp) {
                prop_assert!(it.count() <= lp.len());
            }
            prop_assert_eq!(collect_all(&lp), collect_general(&lp));
        }
    }
}
