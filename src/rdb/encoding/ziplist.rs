//! Ziplist (redis/redis `src/ziplist.c`): the legacy blob behind RDB types 10, 12, 13 and the
//! nodes of type 14 quicklists (Redis 3.2 to 6.2 files).
//!
//! Layout: `zlbytes` (u32 LE, whole blob), `zltail` (u32 LE, offset of the last entry), `zllen`
//! (u16 LE, `0xFFFF` = unknown), entries, terminator `0xFF`. Each entry is `prevlen` (the
//! previous entry's total size: 1 byte if < 254, else `0xFE` + u32 LE), an encoding with its
//! length, and data. String encodings: `00pppppp` (6-bit length), `01pppppp qqqqqqqq` (14-bit,
//! big-endian), `10xxxxxx` + u32 big-endian length; integers: `0xC0` i16, `0xD0` i32, `0xE0`
//! i64, `0xF0` i24, `0xFE` i8 (all little-endian), `0xF1..=0xFD` the immediates 0..=12.
//!
//! Checked as Redis's deep sanitizer (`ziplistValidateIntegrity`, `zipEntrySafe`) does: header
//! size, `zlbytes` == blob length, last byte `0xFF`, `zltail` inside the blob; every entry's
//! headers and data inside the blob (ending at the terminator at the latest), encodings known,
//! `prevlen` equal to the previous entry's size (0 for the first); at the end, the entries
//! ending exactly at the terminator, `zltail` pointing at the last entry and the count matching
//! `zllen` unless that says `0xFFFF`. Like Redis, the low six bits of a `10xxxxxx` string
//! encoding are ignored.
//!
//! [`ZiplistWriter`] builds ziplists the way Redis's `ziplistPush` does.

use super::{BlobError, Elem, parse_canonical_i64};

const HEADER: usize = 10;
const END: u8 = 0xFF;
const BIG_PREVLEN: u8 = 0xFE;
const COUNT_UNKNOWN: u16 = 0xFFFF;

/// Validates the header of `blob` and returns an iterator over its entries, which validates
/// each entry as it goes and the tail offset and count at the end.
pub fn iter(blob: &[u8]) -> Result<ZiplistIter<'_>, BlobError> {
    super::check_total_len(blob, "ziplist", HEADER + 1)?;
    let last = blob.len() - 1;
    if blob[last] != END {
        return Err(BlobError::new(
            last,
            format!(
                "ziplist: last byte is {:#04x}, not the 0xff terminator",
                blob[last]
            ),
        ));
    }
    let zltail = u32::from_le_bytes([blob[4], blob[5], blob[6], blob[7]]);
    let tail = usize::try_from(zltail).unwrap_or(usize::MAX);
    if tail > last {
        return Err(BlobError::new(
            4,
            format!("ziplist: tail offset {zltail} is past the terminator at {last}"),
        ));
    }
    Ok(ZiplistIter {
        blob,
        pos: HEADER,
        prev_size: 0,
        prev_start: None,
        tail,
        seen: 0,
        header_count: u16::from_le_bytes([blob[8], blob[9]]),
        done: false,
    })
}

/// Iterator over a ziplist's elements; stops after the first error.
#[derive(Debug, Clone)]
pub struct ZiplistIter<'a> {
    blob: &'a [u8],
    pos: usize,
    prev_size: usize,
    prev_start: Option<usize>,
    tail: usize,
    seen: usize,
    header_count: u16,
    done: bool,
}

impl<'a> ZiplistIter<'a> {
    /// The element count from the header: `None` when it says `0xFFFF` (unknown).
    pub fn header_count(&self) -> Option<usize> {
        (self.header_count != COUNT_UNKNOWN).then_some(usize::from(self.header_count))
    }

    /// Checks done when the terminator is reached.
    fn finish(&self) -> Result<(), BlobError> {
        if let Some(start) = self.prev_start
            && start != self.tail
        {
            return Err(BlobError::new(
                4,
                format!(
                    "ziplist: tail offset {} does not point at the last entry (at {start})",
                    self.tail
                ),
            ));
        }
        if let Some(want) = self.header_count()
            && want != self.seen
        {
            return Err(BlobError::new(
                8,
                format!("ziplist: header says {want} elements, found {}", self.seen),
            ));
        }
        Ok(())
    }

    /// Decodes the entry at `self.pos`: the element and the entry's total size.
    fn decode(&self) -> Result<(Elem<'a>, usize), BlobError> {
        let blob = self.blob;
        let at = self.pos;
        // Entries may use bytes up to, not including, the terminator.
        let limit = blob.len() - 1;
        let need = |end: usize, what: &str| -> Result<(), BlobError> {
            if end <= limit {
                Ok(())
            } else {
                Err(BlobError::new(
                    at,
                    format!("ziplist: entry {what} runs into the terminator"),
                ))
            }
        };
        // prevlen
        let (prevlen, mut p) = if blob[at] < BIG_PREVLEN {
            (usize::from(blob[at]), at + 1)
        } else {
            need(at + 5, "prevlen")?;
            let v = u32::from_le_bytes([blob[at + 1], blob[at + 2], blob[at + 3], blob[at + 4]]);
            (usize::try_from(v).unwrap_or(usize::MAX), at + 5)
        };
        if prevlen != self.prev_size {
            return Err(BlobError::new(
                at,
                format!(
                    "ziplist: prevlen says {prevlen}, previous entry is {} bytes",
                    self.prev_size
                ),
            ));
        }
        need(p + 1, "encoding")?;
        let enc = blob[p];
        let (elem_len, header_len): (Option<usize>, usize) = match enc >> 6 {
            0b00 => (Some(usize::from(enc & 0x3F)), 1),
            0b01 => {
                need(p + 2, "length")?;
                (
                    Some((usize::from(enc & 0x3F) << 8) | usize::from(blob[p + 1])),
                    2,
                )
            }
            0b10 => {
                need(p + 5, "length")?;
                let v = u32::from_be_bytes([blob[p + 1], blob[p + 2], blob[p + 3], blob[p + 4]]);
                (Some(usize::try_from(v).unwrap_or(usize::MAX)), 5)
            }
            _ => (None, 1),
        };
        p += header_len;
        if let Some(len) = elem_len {
            let end = p.saturating_add(len);
            need(end, "string")?;
            return Ok((Elem::Str(&blob[p..end]), end - at));
        }
        let width = match enc {
            0xC0 => 2,
            0xD0 => 4,
            0xE0 => 8,
            0xF0 => 3,
            0xFE => 1,
            0xF1..=0xFD => return Ok((Elem::Int(i64::from(enc & 0x0F) - 1), p - at)),
            _ => {
                return Err(BlobError::new(
                    p - 1,
                    format!("ziplist: invalid entry encoding {enc:#04x}"),
                ));
            }
        };
        need(p + width, "integer")?;
        let mut buf = [0u8; 8];
        buf[..width].copy_from_slice(&blob[p..p + width]);
        // Sign-extend from `width` bytes.
        let shift = 64 - 8 * width as u32;
        let v = (i64::from_le_bytes(buf) << shift) >> shift;
        Ok((Elem::Int(v), p + width - at))
    }
}

impl<'a> Iterator for ZiplistIter<'a> {
    type Item = Result<Elem<'a>, BlobError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.blob[self.pos] == END {
            self.done = true;
            if self.pos != self.blob.len() - 1 {
                return Some(Err(BlobError::new(
                    self.pos,
                    "ziplist: terminator byte 0xff before the end of the blob",
                )));
            }
            return self.finish().err().map(Err);
        }
        match self.decode() {
            Ok((elem, size)) => {
                self.prev_start = Some(self.pos);
                self.prev_size = size;
                self.pos += size;
                self.seen += 1;
                Some(Ok(elem))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl std::iter::FusedIterator for ZiplistIter<'_> {}

/// Builds a ziplist the way Redis's `ziplistPush` (tail) does: for building test data and
/// legacy fixtures (keeper itself writes listpacks).
#[derive(Debug, Clone)]
pub struct ZiplistWriter {
    /// Header placeholder followed by the entries; the terminator is added by `finish`.
    buf: Vec<u8>,
    entries: usize,
    last_start: usize,
    last_size: usize,
}

impl Default for ZiplistWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl ZiplistWriter {
    pub fn new() -> Self {
        ZiplistWriter {
            buf: vec![0; HEADER],
            entries: 0,
            last_start: HEADER,
            last_size: 0,
        }
    }

    /// Appends an element: canonical integers (see [`parse_canonical_i64`]) get the smallest
    /// integer encoding (immediate 0..=12, then int8, int16, int24, int32, int64), anything else
    /// is a string.
    pub fn push(&mut self, bytes: &[u8]) {
        match parse_canonical_i64(bytes) {
            Some(v) => self.push_int(v),
            None => self.push_str(bytes),
        }
    }

    /// Appends an integer with the smallest integer encoding.
    pub fn push_int(&mut self, v: i64) {
        let start = self.start_entry();
        if (0..=12).contains(&v) {
            self.buf.push(0xF1 + v as u8);
        } else if let Ok(v) = i8::try_from(v) {
            self.buf.push(0xFE);
            self.buf.extend_from_slice(&v.to_le_bytes());
        } else if let Ok(v) = i16::try_from(v) {
            self.buf.push(0xC0);
            self.buf.extend_from_slice(&v.to_le_bytes());
        } else if (-(1 << 23)..(1 << 23)).contains(&v) {
            self.buf.push(0xF0);
            self.buf.extend_from_slice(&v.to_le_bytes()[..3]);
        } else if let Ok(v) = i32::try_from(v) {
            self.buf.push(0xD0);
            self.buf.extend_from_slice(&v.to_le_bytes());
        } else {
            self.buf.push(0xE0);
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
        self.end_entry(start);
    }

    /// Appends `bytes` as a string, even if it looks like an integer.
    pub fn push_str(&mut self, bytes: &[u8]) {
        let start = self.start_entry();
        let len = bytes.len();
        if len <= 0x3F {
            self.buf.push(len as u8);
        } else if len <= 0x3FFF {
            self.buf.push(0x40 | (len >> 8) as u8);
            self.buf.push(len as u8);
        } else {
            self.buf.push(0x80);
            let len32 = u32::try_from(len).unwrap_or(u32::MAX);
            self.buf.extend_from_slice(&len32.to_be_bytes());
        }
        self.buf.extend_from_slice(bytes);
        self.end_entry(start);
    }

    fn start_entry(&mut self) -> usize {
        let start = self.buf.len();
        if self.last_size < usize::from(BIG_PREVLEN) {
            self.buf.push(self.last_size as u8);
        } else {
            self.buf.push(BIG_PREVLEN);
            let v = u32::try_from(self.last_size).unwrap_or(u32::MAX);
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
        start
    }

    fn end_entry(&mut self, start: usize) {
        self.last_start = start;
        self.last_size = self.buf.len() - start;
        self.entries += 1;
    }

    /// Number of entries so far.
    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Writes the header and terminator and returns the ziplist (`zllen` saturates at
    /// `0xFFFF`, as in Redis).
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(END);
        let total = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        let tail = u32::try_from(self.last_start).unwrap_or(u32::MAX);
        let count = u16::try_from(self.entries).unwrap_or(COUNT_UNKNOWN);
        self.buf[0..4].copy_from_slice(&total.to_le_bytes());
        self.buf[4..8].copy_from_slice(&tail.to_le_bytes());
        self.buf[8..10].copy_from_slice(&count.to_le_bytes());
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
        let mut w = ZiplistWriter::new();
        for i in items {
            w.push(i);
        }
        w.finish()
    }

    fn err(blob: &[u8]) -> BlobError {
        match iter(blob) {
            Err(e) => e,
            Ok(it) => {
                let results: Vec<_> = it.collect();
                let errors = results.iter().filter(|r| r.is_err()).count();
                assert_eq!(errors, 1, "{results:?}");
                results.into_iter().last().unwrap().unwrap_err()
            }
        }
    }

    #[test]
    fn redis_doc_example() {
        // From ziplist.c's header comment: a ziplist holding "2" and "5".
        let zl = hex("0f000000 0c000000 0200 00f3 02f6 ff");
        assert_eq!(collect(&zl).unwrap(), vec![Elem::Int(2), Elem::Int(5)]);
        assert_eq!(build(&[b"2", b"5"]), zl);
        // ... and after appending "Hello World".
        let zl = hex("1c000000 0e000000 0300 00f3 02f6 020b 48656c6c6f20576f726c64 ff");
        assert_eq!(
            collect(&zl).unwrap(),
            vec![Elem::Int(2), Elem::Int(5), Elem::Str(b"Hello World")]
        );
        assert_eq!(build(&[b"2", b"5", b"Hello World"]), zl);
    }

    #[test]
    fn empty_ziplist() {
        let zl = ZiplistWriter::new().finish();
        assert_eq!(zl, hex("0b000000 0a000000 0000 ff"));
        assert_eq!(collect(&zl).unwrap(), vec![]);
    }

    #[test]
    fn integer_encodings() {
        let cases: &[(i64, &str)] = &[
            (0, "f1"),
            (12, "fd"),
            (13, "fe0d"),
            (-1, "feff"),
            (-128, "fe80"),
            (128, "c08000"),
            (-32768, "c00080"),
            (32768, "f0008000"),
            (-8388608, "f0000080"),
            (8388608, "d000008000"),
            (i64::from(i32::MIN), "d000000080"),
            (1 << 31, "e00000008000000000"),
            (i64::MIN, "e00000000000000080"),
        ];
        for &(v, enc) in cases {
            let zl = build(&[v.to_string().as_bytes()]);
            assert_eq!(&zl[11..zl.len() - 1], hex(enc).as_slice(), "{v}");
            assert_eq!(collect(&zl).unwrap(), vec![Elem::Int(v)], "{v}");
        }
        let mut w = ZiplistWriter::new();
        w.push_str(b"12");
        let zl = w.finish();
        assert_eq!(collect(&zl).unwrap(), vec![Elem::Str(b"12")]);
    }

    #[test]
    fn string_encodings_and_big_prevlen() {
        for len in [0usize, 63, 64, 300, 16383, 16384, 70_000] {
            let s = vec![b'q'; len];
            let zl = build(&[&s, b"x", &s, b"-5"]);
            assert_eq!(
                collect(&zl).unwrap(),
                vec![Elem::Str(&s), Elem::Str(b"x"), Elem::Str(&s), Elem::Int(-5)],
                "len {len}"
            );
        }
        // 64 bytes: 14-bit big-endian length.
        let zl = build(&[&[b'a'; 64]]);
        assert_eq!(&zl[10..13], &[0x00, 0x40, 0x40]);
        // 16384: 32-bit big-endian length.
        let zl = build(&[&vec![b'a'; 16384]]);
        assert_eq!(&zl[10..16], &[0x00, 0x80, 0x00, 0x00, 0x40, 0x00]);
        // An entry of 254 bytes or more makes the next prevlen 5 bytes.
        let zl = build(&[&[b'a'; 252], b"b"]);
        let second = 10 + 1 + 2 + 252;
        assert_eq!(&zl[second..second + 5], &[0xFE, 255, 0, 0, 0]);
    }

    #[test]
    fn non_minimal_32bit_string_encoding_accepted_like_redis() {
        // 0x80..0xBF all mean "32-bit length" in ziplist.c (ZIP_ENTRY_ENCODING masks them).
        let zl = hex("13000000 0a000000 0100 00 bf00000002 6869 ff");
        assert_eq!(collect(&zl).unwrap(), vec![Elem::Str(b"hi")]);
    }

    #[test]
    fn header_errors() {
        assert!(err(&hex("0a000000 0a000000 00")).reason.contains("shorter"));
        assert!(
            err(&hex("0c000000 0a000000 0000 ff"))
                .reason
                .contains("header says 12")
        );
        let e = err(&hex("0b000000 0a000000 0000 00"));
        assert_eq!(e.offset, 10);
        let e = err(&hex("0b000000 0b000000 0000 ff"));
        assert_eq!(e.offset, 4);
        assert!(e.reason.contains("tail offset 11"), "{}", e.reason);
    }

    #[test]
    fn entry_errors() {
        let good = build(&[b"a", b"bb", b"300"]);
        assert_eq!(collect(&good).unwrap().len(), 3);
        // Wrong tail.
        let mut zl = good.clone();
        zl[4] = 10;
        let e = err(&zl);
        assert_eq!(e.offset, 4);
        assert!(e.reason.contains("last entry"), "{}", e.reason);
        // Wrong count.
        let mut zl = good.clone();
        zl[8] = 4;
        let e = err(&zl);
        assert_eq!(e.offset, 8);
        assert!(e.reason.contains("4 elements, found 3"), "{}", e.reason);
        zl[8] = 0xFF;
        zl[9] = 0xFF;
        assert_eq!(collect(&zl).unwrap().len(), 3);
        // Wrong prevlen of the second entry (at 13).
        let mut zl = good.clone();
        assert_eq!(zl[13], 3);
        zl[13] = 4;
        let e = err(&zl);
        assert_eq!(e.offset, 13);
        assert!(e.reason.contains("prevlen says 4"), "{}", e.reason);
        // First prevlen must be 0.
        let mut zl = good.clone();
        zl[10] = 1;
        assert_eq!(err(&zl).offset, 10);
        // Invalid encodings.
        for enc in [0xC1u8, 0xCF, 0xD1, 0xE5, 0xEF] {
            let zl = hex(&format!("0d000000 0a000000 0100 00 {enc:02x} ff"));
            let e = err(&zl);
            assert_eq!(e.offset, 11, "{enc:#x}");
            assert!(e.reason.contains("invalid entry encoding"), "{}", e.reason);
        }
        // String running into the terminator.
        let e = err(&hex("0f000000 0a000000 0100 00 05 6162 ff"));
        assert_eq!(e.offset, 10);
        assert!(e.reason.contains("terminator"), "{}", e.reason);
        // Integer running into the terminator.
        let e = err(&hex("0f000000 0a000000 0100 00 e0 0000 ff"));
        assert_eq!(e.offset, 10);
        // Huge 32-bit length.
        let e = err(&hex("11000000 0a000000 0100 00 80ffffffff ff"));
        assert_eq!(e.offset, 10);
        // Truncated big prevlen.
        let e = err(&hex("0e000000 0a000000 0100 fe 0000 ff"));
        assert_eq!(e.offset, 10);
        // A terminator in the middle.
        let e = err(&hex("0e000000 0a000000 0100 00f1 ff ff"));
        assert_eq!(e.offset, 12);
    }

    // Blobs cut by hand out of RDB files written by real Redis (redis-rdb-tools `tests/dumps`,
    // redis `tests/assets`); the expected contents are those the source projects assert.

    #[test]
    fn fixture_ziplist_with_integers() {
        // ziplist_with_integers.rdb (Redis 2.x, RDB 6), key "ziplist_with_integers".
        let zl = hex(
            "550000004a000000180000f102f202f302f402f502f602f702f802f902fa02fb02fc02fd02fefe03\
             fe0d03fe1903fec303fe3f03c0fc3f04c080c104f0ffff0005f00d00ff05f000004005e0ffffffff\
             ffffff7fff",
        );
        let mut want: Vec<i64> = (0..=12).collect();
        want.extend([
            -2,
            13,
            25,
            -61,
            63,
            16380,
            -16000,
            65535,
            -65523,
            4194304,
            i64::MAX,
        ]);
        let got: Vec<i64> = collect(&zl)
            .unwrap()
            .into_iter()
            .map(|e| match e {
                Elem::Int(v) => v,
                Elem::Str(s) => panic!("string {s:?}"),
            })
            .collect();
        assert_eq!(got, want);
        // Our writer picks the same encodings as that Redis did.
        let text: Vec<String> = want.iter().map(i64::to_string).collect();
        assert_eq!(
            build(&text.iter().map(|s| s.as_bytes()).collect::<Vec<_>>()),
            zl
        );
    }

    #[test]
    fn fixture_hash_ziplist() {
        // redis tests/assets/hash-ziplist.rdb (RDB 9), key "hash".
        let zl = hex("1b00000016000000040000026631040276310402663204027632ff");
        assert_eq!(
            collect(&zl).unwrap(),
            vec![
                Elem::Str(b"f1"),
                Elem::Str(b"v1"),
                Elem::Str(b"f2"),
                Elem::Str(b"v2")
            ]
        );
        assert_eq!(build(&[b"f1", b"v1", b"f2", b"v2"]), zl);
    }

    #[test]
    fn fixture_lzf_compressed_ziplists() {
        use crate::rdb::encoding::lzf;
        // hash_as_ziplist.rdb: an LZF string (clen 44, ulen 51) holding a hash ziplist.
        let c = hex(
            "04330000002220030906000001610302616104400301046120000106052004036161070e2004e001\
             000161ff",
        );
        let zl = lzf::decompress(&c, 51).unwrap();
        let items: [&[u8]; 6] = [b"a", b"aa", b"aa", b"aaaa", b"aaaaa", b"aaaaaaaaaaaaaa"];
        assert_eq!(
            collect(&zl).unwrap(),
            items.iter().map(|s| Elem::Str(s)).collect::<Vec<_>>()
        );
        assert_eq!(build(&items), zl);
        // ziplist_that_compresses_easily.rdb: clen 60, ulen 149, a list of 'a' * 6, 12 .. 36.
        let c = hex(
            "04950000006e2003000620020061600001080c6006a000010e12a008e00200011418e0020ce00400\
             011a1ee0040ee00800012024e00812e00a0000ff",
        );
        let zl = lzf::decompress(&c, 149).unwrap();
        let want: Vec<Vec<u8>> = (1..=6).map(|i| vec![b'a'; 6 * i]).collect();
        assert_eq!(
            collect(&zl).unwrap(),
            want.iter().map(|s| Elem::Str(s)).collect::<Vec<_>>()
        );
        assert_eq!(build(&want.iter().map(|s| &s[..]).collect::<Vec<_>>()), zl);
    }

    fn elem_strategy() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            any::<i64>().prop_map(|v| v.to_string().into_bytes()),
            (-300i64..300).prop_map(|v| v.to_string().into_bytes()),
            prop::collection::vec(any::<u8>(), 0..100),
            (0usize..3, 200usize..20_000).prop_map(|(b, n)| vec![b'a' + b as u8; n]),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn round_trip(items in prop::collection::vec(elem_strategy(), 0..30)) {
            let zl = build(&items.iter().map(|i| &i[..]).collect::<Vec<_>>());
            let it = iter(&zl).unwrap();
            prop_assert_eq!(it.header_count(), Some(items.len()));
            let got: Vec<_> = it.collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(got.len(), items.len());
            for (g, want) in got.iter().zip(&items) {
                prop_assert_eq!(&g.to_bytes()[..], &want[..]);
                prop_assert_eq!(matches!(g, Elem::Int(_)), parse_canonical_i64(want).is_some());
            }
        }

        #[test]
        fn random_bytes_never_panic(mut blob in prop::collection::vec(any::<u8>(), 0..100), fix_header in any::<bool>()) {
            if fix_header && blob.len() >= 11 {
                let n = blob.len() as u32;
                blob[..4].copy_from_slice(&n.to_le_bytes());
                blob[4..8].copy_from_slice(&10u32.to_le_bytes());
                let last = blob.len() - 1;
                blob[last] = 0xFF;
            }
            if let Ok(it) = iter(&blob) {
                prop_assert!(it.count() <= blob.len());
            }
        }

        #[test]
        fn mutated_ziplists_never_panic(
            items in prop::collection::vec(elem_strategy(), 1..10),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut zl = build(&items.iter().map(|i| &i[..]).collect::<Vec<_>>());
            for (i, b) in flips {
                let at = HEADER + i.index(zl.len() - HEADER - 1);
                zl[at] = b;
            }
            if let Ok(it) = iter(&zl) {
                prop_assert!(it.count() <= zl.len());
            }
        }
    }
}
