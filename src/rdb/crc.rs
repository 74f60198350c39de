//! CRC-64/REDIS ("Jones" polynomial, reflected, init 0, xorout 0), the checksum of RDB files and
//! DUMP payloads. Computed with `crc-fast`'s SIMD (carry-less multiply) implementation; the
//! tests check it against the `crc` crate's table-driven `CRC_64_REDIS` and Redis's own vectors.

use crc_fast::{CrcAlgorithm, Digest};

/// CRC-64/REDIS of `data` in one call.
pub fn crc64(data: &[u8]) -> u64 {
    crc_fast::checksum(CrcAlgorithm::Crc64Redis, data)
}

/// The CRC-64/REDIS of `a ++ b` from the CRCs of `a` and `b` and the length of `b`, so ranges
/// of a file can be hashed separately (on different threads) and combined.
pub fn crc64_combine(crc_a: u64, crc_b: u64, len_b: u64) -> u64 {
    crc_fast::checksum_combine(CrcAlgorithm::Crc64Redis, crc_a, crc_b, len_b)
}

/// A streaming CRC-64/REDIS digest: `update` in any chunking gives the same result.
#[derive(Clone)]
pub struct Crc64 {
    digest: Digest,
}

impl Default for Crc64 {
    fn default() -> Self {
        Crc64 {
            digest: Digest::new(CrcAlgorithm::Crc64Redis),
        }
    }
}

impl Crc64 {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, data: &[u8]) {
        self.digest.update(data);
    }

    /// The checksum of everything fed so far.
    pub fn value(&self) -> u64 {
        self.digest.finalize()
    }
}

impl std::fmt::Debug for Crc64 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Crc64({:#018x})", self.value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ORACLE: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_REDIS);

    #[test]
    fn redis_vectors() {
        assert_eq!(crc64(b"123456789"), 0xe9c6_d914_c4b8_d9ca);
        assert_eq!(crc64(b""), 0);
        assert_eq!(crc64(b"hello world!"), 0x56b9_41dd_8303_2669);
    }

    proptest! {
        #[test]
        fn matches_oracle_in_any_chunking(data in proptest::collection::vec(any::<u8>(), 0..4096), cut in 0usize..4096) {
            let cut = cut.min(data.len());
            let mut digest = Crc64::new();
            digest.update(&data[..cut]);
            digest.update(&data[cut..]);
            prop_assert_eq!(digest.value(), ORACLE.checksum(&data));
            prop_assert_eq!(crc64(&data), ORACLE.checksum(&data));
            let combined = crc64_combine(crc64(&data[..cut]), crc64(&data[cut..]), (data.len() - cut) as u64);
            prop_assert_eq!(combined, ORACLE.checksum(&data));
        }
    }
}
