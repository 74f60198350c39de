//! What the benches share.

use bytes::Bytes;

/// A deterministic pseudo-random sequence (xorshift), so runs compare.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// `len` random lowercase letters.
    #[allow(dead_code)] // not every bench makes text
    pub fn text(&mut self, len: usize) -> Bytes {
        Bytes::from(
            (0..len)
                .map(|_| b'a' + (self.next() % 26) as u8)
                .collect::<Vec<u8>>(),
        )
    }
}
