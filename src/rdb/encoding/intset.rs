//! Intset (redis/redis `src/intset.c`): the blob behind RDB type 11 (sets of integers).
//!
//! Layout: encoding (u32 LE: 2, 4 or 8, the bytes per value), count (u32 LE), then `count`
//! signed little-endian values of that width in strictly ascending order.
//!
//! Checked as Redis's `intsetValidateIntegrity` (deep) does: at least the 8-byte header, a known
//! encoding, a non-zero count, a length of exactly `8 + count * width` (computed without
//! overflow), and strictly ascending values, which also rules out duplicates. [`iter`] checks
//! all of it up front, so iterating cannot fail.

use super::BlobError;

const HEADER: usize = 8;

/// Validates `blob` completely (header, length, ordering) and returns an iterator over its
/// values.
pub fn iter(blob: &[u8]) -> Result<IntsetIter<'_>, BlobError> {
    if blob.len() < HEADER {
        return Err(BlobError::new(
            0,
            format!(
                "intset: {} bytes is shorter than the 8-byte header",
                blob.len()
            ),
        ));
    }
    let encoding = u32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]);
    let width = match encoding {
        2 | 4 | 8 => encoding as usize,
        _ => {
            return Err(BlobError::new(
                0,
                format!("intset: invalid encoding {encoding} (expected 2, 4 or 8)"),
            ));
        }
    };
    let count = u32::from_le_bytes([blob[4], blob[5], blob[6], blob[7]]);
    if count == 0 {
        return Err(BlobError::new(4, "intset: empty (count 0)"));
    }
    let want = usize::try_from(count)
        .ok()
        .and_then(|c| c.checked_mul(width))
        .and_then(|n| n.checked_add(HEADER));
    if want != Some(blob.len()) {
        return Err(BlobError::new(
            4,
            format!(
                "intset: {count} values of {width} bytes need {} bytes, blob has {}",
                u64::from(count) * width as u64 + HEADER as u64,
                blob.len()
            ),
        ));
    }
    let it = IntsetIter {
        blob,
        width,
        pos: HEADER,
    };
    // Check the ordering up front, so iteration itself cannot fail.
    let mut prev: Option<i64> = None;
    for (i, v) in it.clone().enumerate() {
        if let Some(p) = prev
            && v <= p
        {
            return Err(BlobError::new(
                HEADER + i * width,
                format!("intset: value {v} is not greater than the previous value {p}"),
            ));
        }
        prev = Some(v);
    }
    Ok(it)
}

/// Iterator over an intset's values, in ascending order (already validated by [`iter`]).
#[derive(Debug, Clone)]
pub struct IntsetIter<'a> {
    blob: &'a [u8],
    width: usize,
    pos: usize,
}

impl IntsetIter<'_> {
    /// Number of values, from the header (checked against the blob length).
    pub fn header_count(&self) -> usize {
        (self.blob.len() - HEADER) / self.width
    }

    /// Bytes per value: 2, 4 or 8.
    pub fn width(&self) -> usize {
        self.width
    }
}

impl Iterator for IntsetIter<'_> {
    type Item = i64;

    fn next(&mut self) -> Option<i64> {
        let bytes = self.blob.get(self.pos..self.pos + self.width)?;
        self.pos += self.width;
        Some(match *bytes {
            [a, b] => i64::from(i16::from_le_bytes([a, b])),
            [a, b, c, d] => i64::from(i32::from_le_bytes([a, b, c, d])),
            [a, b, c, d, e, f, g, h] => i64::from_le_bytes([a, b, c, d, e, f, g, h]),
            // `iter` only builds widths 2, 4 and 8.
            _ => return None,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.blob.len() - self.pos) / self.width;
        (left, Some(left))
    }
}

impl ExactSizeIterator for IntsetIter<'_> {}

impl std::iter::FusedIterator for IntsetIter<'_> {}

/// Encodes sorted, distinct values with the smallest width that fits them all, as Redis does.
///
/// The caller provides the ordering (checked in debug builds). An empty slice gives an intset
/// with count 0, which readers (this module's included) reject, as Redis does.
pub fn encode(sorted_unique: &[i64]) -> Vec<u8> {
    debug_assert!(
        sorted_unique.windows(2).all(|w| w[0] < w[1]),
        "intset::encode needs strictly ascending values"
    );
    // Sorted: the extremes are the first and last values.
    let (lo, hi) = match (sorted_unique.first(), sorted_unique.last()) {
        (Some(&lo), Some(&hi)) => (lo.min(hi), hi.max(lo)),
        _ => (0, 0),
    };
    let fits = |min: i64, max: i64| lo >= min && hi <= max;
    let width: usize = if fits(i16::MIN.into(), i16::MAX.into()) {
        2
    } else if fits(i32::MIN.into(), i32::MAX.into()) {
        4
    } else {
        8
    };
    let mut out = Vec::with_capacity(HEADER + width * sorted_unique.len());
    out.extend_from_slice(&(width as u32).to_le_bytes());
    let count = u32::try_from(sorted_unique.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_le_bytes());
    for &v in sorted_unique {
        out.extend_from_slice(&v.to_le_bytes()[..width]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::encoding::hex;
    use proptest::prelude::*;

    fn values(blob: &[u8]) -> Result<Vec<i64>, BlobError> {
        Ok(iter(blob)?.collect())
    }

    #[test]
    fn redis_example() {
        let blob = hex("02000000 03000000 0100 0200 0300");
        assert_eq!(encode(&[1, 2, 3]), blob);
        assert_eq!(values(&blob).unwrap(), vec![1, 2, 3]);
        let it = iter(&blob).unwrap();
        assert_eq!((it.header_count(), it.len(), it.width()), (3, 3, 2));
    }

    #[test]
    fn widths() {
        assert_eq!(encode(&[-32768, 32767])[0], 2);
        assert_eq!(encode(&[-32769, 0])[0], 4);
        assert_eq!(encode(&[0, 32768])[0], 4);
        assert_eq!(encode(&[i32::MIN.into(), i32::MAX.into()])[0], 4);
        assert_eq!(encode(&[-1, 1 << 31])[0], 8);
        assert_eq!(encode(&[i64::MIN, i64::MAX])[0], 8);
        for vals in [
            vec![-32768, -1, 0, 32767],
            vec![i64::from(i32::MIN), -5, 7, i64::from(i32::MAX)],
            vec![i64::MIN, -1, i64::MAX],
        ] {
            assert_eq!(values(&encode(&vals)).unwrap(), vals);
        }
    }

    #[test]
    fn header_errors() {
        let e = iter(&hex("02000000 0100")).unwrap_err();
        assert!(e.reason.contains("shorter"), "{}", e.reason);
        let e = iter(&hex("03000000 01000000 010000")).unwrap_err();
        assert_eq!(e.offset, 0);
        assert!(e.reason.contains("invalid encoding 3"), "{}", e.reason);
        let e = iter(&hex("02000000 00000000")).unwrap_err();
        assert_eq!(e.offset, 4);
        assert!(e.reason.contains("empty"), "{}", e.reason);
        let e = iter(&hex("02000000 02000000 0100")).unwrap_err();
        assert_eq!(e.offset, 4);
        assert!(
            e.reason.contains("need 12 bytes, blob has 10"),
            "{}",
            e.reason
        );
        // A count whose byte size overflows 32 bits.
        let e = iter(&hex("08000000 ffffffff 0100000000000000")).unwrap_err();
        assert_eq!(e.offset, 4);
    }

    #[test]
    fn ordering_errors() {
        let e = values(&hex("02000000 03000000 0100 0300 0200")).unwrap_err();
        assert_eq!(e.offset, 12);
        assert!(e.reason.contains("value 2"), "{}", e.reason);
        let e = values(&hex("04000000 02000000 05000000 05000000")).unwrap_err();
        assert_eq!(e.offset, 12);
        let e = values(&hex("02000000 03000000 0200 0100 0300")).unwrap_err();
        assert_eq!(e.offset, 10);
    }

    #[test]
    fn fixtures() {
        // intset_16/32/64.rdb from redis-rdb-tools `tests/dumps` (Redis 2.x).
        for (blob, want) in [
            ("0200000003000000fc7ffd7ffe7f", [0x7ffc, 0x7ffd, 0x7ffe]),
            (
                "0400000003000000fcfffe7ffdfffe7ffefffe7f",
                [0x7ffe_fffc, 0x7ffe_fffd, 0x7ffe_fffe],
            ),
            (
                "0800000003000000fcfffefffefffe7ffdfffefffefffe7ffefffefffefffe7f",
                [
                    0x7ffe_fffe_fffe_fffc,
                    0x7ffe_fffe_fffe_fffd,
                    0x7ffe_fffe_fffe_fffe,
                ],
            ),
        ] {
            let blob = hex(blob);
            assert_eq!(values(&blob).unwrap(), want);
            assert_eq!(encode(&want), blob);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn round_trip(set in prop::collection::btree_set(
            prop_oneof![any::<i16>().prop_map(i64::from), any::<i32>().prop_map(i64::from), any::<i64>()],
            1..50,
        )) {
            let vals: Vec<i64> = set.into_iter().collect();
            let blob = encode(&vals);
            prop_assert_eq!(values(&blob).unwrap(), vals);
        }

        #[test]
        fn random_bytes_never_panic(mut blob in prop::collection::vec(any::<u8>(), 0..80), width in prop::sample::select(vec![2u32, 4, 8])) {
            if blob.len() >= 8 {
                blob[..4].copy_from_slice(&width.to_le_bytes());
                let count = (blob.len() - 8) / width as usize;
                blob[4..8].copy_from_slice(&(count as u32).to_le_bytes());
                blob.truncate(8 + count * width as usize);
            }
            if let Ok(it) = iter(&blob) {
                let n = it.header_count();
                let vals: Vec<i64> = it.collect();
                prop_assert_eq!(vals.len(), n);
                prop_assert!(vals.windows(2).all(|w| w[0] < w[1]));
            }
        }
    }
}
