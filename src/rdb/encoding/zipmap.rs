//! Zipmap (redis/redis `src/zipmap.c`): the blob behind RDB type 9, small hashes in files from
//! Redis 2.4 and earlier.
//!
//! Layout: a count byte (254 = unknown), then per pair `len key len free value padding`, then
//! the terminator `0xFF`. A `len` is 1 byte if < 254, else `0xFE` + u32 LE; `free` is one byte
//! giving the number of unused padding bytes after the value. A `0xFF` where a key length would
//! start ends the map.
//!
//! Checked as Redis's `zipmapValidateIntegrity` (deep) does: at least 2 bytes, last byte
//! `0xFF`, every length, key, value and padding inside the blob and before the terminator, the
//! pairs ending exactly at the terminator, at least one pair, and the count byte matching unless
//! it says 254. Like Redis, a value length byte of `0xFF` is read as the 5-byte form (only a key
//! position treats it as the end). Duplicate keys are the caller's business, as in Redis's
//! loader.

use super::BlobError;

const BIGLEN: u8 = 254;
const END: u8 = 0xFF;

/// Validates the frame of `blob` and returns an iterator over its `(key, value)` pairs, which
/// validates each pair as it goes and the count at the end.
pub fn iter(blob: &[u8]) -> Result<ZipmapIter<'_>, BlobError> {
    if blob.len() < 2 {
        return Err(BlobError::new(
            0,
            format!(
                "zipmap: {} bytes is shorter than the 2-byte minimum",
                blob.len()
            ),
        ));
    }
    let last = blob.len() - 1;
    if blob[last] != END {
        return Err(BlobError::new(
            last,
            format!(
                "zipmap: last byte is {:#04x}, not the 0xff terminator",
                blob[last]
            ),
        ));
    }
    Ok(ZipmapIter {
        blob,
        pos: 1,
        seen: 0,
        done: false,
    })
}

/// Iterator over a zipmap's pairs; stops after the first error.
#[derive(Debug, Clone)]
pub struct ZipmapIter<'a> {
    blob: &'a [u8],
    pos: usize,
    seen: usize,
    done: bool,
}

impl<'a> ZipmapIter<'a> {
    /// The pair count from the header byte: `None` when it says 254 (unknown).
    pub fn header_count(&self) -> Option<usize> {
        (self.blob[0] != BIGLEN).then_some(usize::from(self.blob[0]))
    }

    /// Reads a length at `p`: the length and the position after it.
    fn len_at(&self, p: usize, what: &str) -> Result<(usize, usize), BlobError> {
        let blob = self.blob;
        let last = blob.len() - 1;
        let size = if blob[p] < BIGLEN { 1 } else { 5 };
        // The length field must leave room for at least the terminator after it.
        if p + size > last {
            return Err(BlobError::new(
                p,
                format!("zipmap: {what} length runs into the terminator"),
            ));
        }
        let len = if size == 1 {
            usize::from(blob[p])
        } else {
            let v = u32::from_le_bytes([blob[p + 1], blob[p + 2], blob[p + 3], blob[p + 4]]);
            usize::try_from(v).unwrap_or(usize::MAX)
        };
        Ok((len, p + size))
    }

    /// Decodes the pair at `self.pos`: key, value and the position after the padding.
    fn decode(&self) -> Result<(&'a [u8], &'a [u8], usize), BlobError> {
        let blob = self.blob;
        let at = self.pos;
        let last = blob.len() - 1;
        let past = |end: usize, what: &str| -> Result<(), BlobError> {
            if end <= last {
                Ok(())
            } else {
                Err(BlobError::new(
                    at,
                    format!("zipmap: {what} runs into the terminator"),
                ))
            }
        };
        let (klen, kstart) = self.len_at(at, "key")?;
        let kend = kstart.saturating_add(klen);
        past(kend, "key")?;
        let (vlen, p) = self.len_at(kend, "value")?;
        // `len_at` left room for the free byte (p <= last).
        let free = usize::from(blob[p]);
        let vstart = p + 1;
        let vend = vstart.saturating_add(vlen);
        past(vend, "value")?;
        let next = vend + free;
        past(next, "padding")?;
        Ok((&blob[kstart..kend], &blob[vstart..vend], next))
    }
}

impl<'a> Iterator for ZipmapIter<'a> {
    type Item = Result<(&'a [u8], &'a [u8]), BlobError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.blob[self.pos] == END {
            self.done = true;
            let err = if self.pos != self.blob.len() - 1 {
                BlobError::new(
                    self.pos,
                    "zipmap: terminator byte 0xff before the end of the blob",
                )
            } else if self.seen == 0 {
                BlobError::new(0, "zipmap: empty (no pairs)")
            } else if let Some(want) = self.header_count()
                && want != self.seen
            {
                BlobError::new(
                    0,
                    format!("zipmap: header says {want} pairs, found {}", self.seen),
                )
            } else {
                return None;
            };
            return Some(Err(err));
        }
        match self.decode() {
            Ok((key, value, next)) => {
                self.pos = next;
                self.seen += 1;
                Some(Ok((key, value)))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl std::iter::FusedIterator for ZipmapIter<'_> {}

/// Encodes pairs as a zipmap with no free padding (for building test data and legacy
/// fixtures; keeper never writes zipmaps).
pub fn encode(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    out.push(
        u8::try_from(pairs.len())
            .ok()
            .filter(|&n| n < BIGLEN)
            .unwrap_or(BIGLEN),
    );
    let push_len = |out: &mut Vec<u8>, len: usize| {
        if len < usize::from(BIGLEN) {
            out.push(len as u8);
        } else {
            out.push(BIGLEN);
            out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
        }
    };
    for (key, value) in pairs {
        push_len(&mut out, key.len());
        out.extend_from_slice(key);
        push_len(&mut out, value.len());
        out.push(0);
        out.extend_from_slice(value);
    }
    out.push(END);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::encoding::hex;
    use proptest::prelude::*;

    type Pairs<'a> = Vec<(&'a [u8], &'a [u8])>;

    fn pairs(blob: &[u8]) -> Result<Pairs<'_>, BlobError> {
        iter(blob)?.collect()
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
        // zipmap.c: "foo" => "bar", "hello" => "world", with one byte of free space after "bar".
        let zm = hex("02 03 666f6f 03 01 626172 00 05 68656c6c6f 05 00 776f726c64 ff");
        let got = pairs(&zm).unwrap();
        assert_eq!(
            got,
            vec![(&b"foo"[..], &b"bar"[..]), (&b"hello"[..], &b"world"[..])]
        );
        assert_eq!(iter(&zm).unwrap().header_count(), Some(2));
    }

    #[test]
    fn encode_round_trip_and_big_lengths() {
        let big = vec![b'v'; 300];
        let zm = encode(&[(b"k", &big), (b"", b"")]);
        assert_eq!(&zm[..5], &[2, 1, b'k', 0xFE, 44]);
        assert_eq!(
            pairs(&zm).unwrap(),
            vec![(&b"k"[..], &big[..]), (&b""[..], &b""[..])]
        );
        // 254+ pairs: unknown count.
        let keys: Vec<Vec<u8>> = (0..300).map(|i: u32| i.to_string().into_bytes()).collect();
        let input: Pairs = keys.iter().map(|k| (&k[..], &b"x"[..])).collect();
        let zm = encode(&input);
        assert_eq!(zm[0], 254);
        assert_eq!(iter(&zm).unwrap().header_count(), None);
        assert_eq!(pairs(&zm).unwrap(), input);
    }

    #[test]
    fn errors() {
        assert!(err(&[0xFF]).reason.contains("shorter"));
        assert_eq!(err(&hex("01 01 61 01 00 62 00")).offset, 6);
        // Empty.
        let e = err(&hex("00 ff"));
        assert!(e.reason.contains("empty"), "{}", e.reason);
        // Count mismatch.
        let e = err(&hex("02 01 61 01 00 62 ff"));
        assert_eq!(e.offset, 0);
        assert!(e.reason.contains("2 pairs, found 1"), "{}", e.reason);
        assert_eq!(pairs(&hex("fe 01 61 01 00 62 ff")).unwrap().len(), 1);
        // Key past the end.
        let e = err(&hex("01 05 61 ff"));
        assert_eq!(e.offset, 1);
        assert!(e.reason.contains("key"), "{}", e.reason);
        // Value length missing: the terminator byte reads as a 5-byte length.
        let e = err(&hex("01 01 61 ff"));
        assert_eq!(e.offset, 3);
        assert!(e.reason.contains("value length"), "{}", e.reason);
        // Free byte missing.
        let e = err(&hex("01 01 61 01 ff"));
        assert!(e.reason.contains("value"), "{}", e.reason);
        // Value past the end.
        let e = err(&hex("01 01 61 05 00 62 ff"));
        assert!(e.reason.contains("value"), "{}", e.reason);
        // Padding past the end.
        let e = err(&hex("01 01 61 01 09 62 ff"));
        assert!(e.reason.contains("padding"), "{}", e.reason);
        // Huge big length.
        let e = err(&hex("01 fe ffffffff 61 ff"));
        assert_eq!(e.offset, 1);
        // Terminator in the middle.
        let e = err(&hex("01 01 61 01 00 62 ff 00 ff"));
        assert_eq!(e.offset, 6);
        // A value length byte of 0xff is the 5-byte form, as in Redis.
        let zm = hex("01 01 61 ff 01000000 00 62 ff");
        assert_eq!(pairs(&zm).unwrap(), vec![(&b"a"[..], &b"b"[..])]);
    }

    // Blobs cut by hand out of RDB files written by Redis 2.x (redis-rdb-tools `tests/dumps`).

    #[test]
    fn fixture_zipmap_that_doesnt_compress() {
        let zm = hex("02064d4b4431473601003205594e4e584b040046375449ff");
        assert_eq!(
            pairs(&zm).unwrap(),
            vec![(&b"MKD1G6"[..], &b"2"[..]), (&b"YNNXK"[..], &b"F7TI"[..])]
        );
        assert_eq!(encode(&pairs(&zm).unwrap()), zm);
    }

    #[test]
    fn fixture_zipmap_that_compresses_easily() {
        // An LZF string, clen 32, ulen 39.
        let c = hex("0a030161020061610261610420060261610520030261610e600be000000161ff");
        let zm = crate::rdb::encoding::lzf::decompress(&c, 39).unwrap();
        assert_eq!(
            pairs(&zm).unwrap(),
            vec![
                (&b"a"[..], &b"aa"[..]),
                (&b"aa"[..], &b"aaaa"[..]),
                (&b"aaaaa"[..], &b"aaaaaaaaaaaaaa"[..]),
            ]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn round_trip(input in prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 0..20), prop::collection::vec(any::<u8>(), 0..300)),
            1..20,
        )) {
            let refs: Pairs = input.iter().map(|(k, v)| (&k[..], &v[..])).collect();
            let zm = encode(&refs);
            prop_assert_eq!(pairs(&zm).unwrap(), refs);
        }

        #[test]
        fn random_bytes_never_panic(mut blob in prop::collection::vec(any::<u8>(), 0..100), fix in any::<bool>()) {
            if fix && !blob.is_empty() {
                let last = blob.len() - 1;
                blob[last] = 0xFF;
            }
            if let Ok(it) = iter(&blob) {
                prop_assert!(it.count() <= blob.len());
            }
        }

        #[test]
        fn mutated_zipmaps_never_panic(
            input in prop::collection::vec((prop::collection::vec(any::<u8>(), 0..5), prop::collection::vec(any::<u8>(), 0..5)), 1..6),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let refs: Pairs = input.iter().map(|(k, v)| (&k[..], &v[..])).collect();
            let mut zm = encode(&refs);
            for (i, b) in flips {
                let at = i.index(zm.len() - 1);
                zm[at] = b;
            }
            if let Ok(it) = iter(&zm) {
                prop_assert!(it.count() <= zm.len());
            }
        }
    }
}
