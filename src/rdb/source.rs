//! Where the RDB reader takes its bytes from: a whole file in memory (memory-mapped) or any
//! `io::Read` stream (a socket during full sync).
//!
//! Invariant for hostile input: a [`Source`] never allocates for bytes it has not received. A
//! slice source knows how much remains and rejects a request for more at once; a stream source
//! grows its buffer only as data actually arrives.

use std::io::{self, Read};
use std::ops::Deref;

use super::crc::{Crc64, crc64};
use crate::error::{Error, Result};

/// A byte source with a position.
pub trait Source {
    /// The next `n` bytes, or a "truncated" corruption error if fewer remain.
    fn take(&mut self, n: usize) -> Result<&[u8]>;
    /// Bytes consumed so far.
    fn position(&self) -> u64;
    /// Bytes known to remain, when the total length is known.
    fn remaining(&self) -> Option<u64>;
    /// CRC-64/REDIS of every byte consumed so far.
    fn crc_so_far(&mut self) -> u64;
    /// Bytes available right now without reading (possibly none): a fast path for small reads.
    fn peek(&self) -> &[u8];
    /// Consumes `n` bytes, `n <= self.peek().len()`.
    fn advance(&mut self, n: usize);
}

#[cold]
fn truncated(position: u64, wanted: usize, available: u64) -> Error {
    Error::corrupt(
        position,
        format!("unexpected end of data: needed {wanted} bytes, {available} left"),
    )
}

/// A source over bytes that are all in memory (a memory-mapped file, a `Vec`, a slice).
#[derive(Debug)]
pub struct SliceSource<B> {
    data: B,
    pos: usize,
}

impl<B: Deref<Target = [u8]>> SliceSource<B> {
    pub fn new(data: B) -> Self {
        SliceSource { data, pos: 0 }
    }

    /// The bytes not consumed yet.
    pub fn rest(&self) -> &[u8] {
        &self.data[self.pos..]
    }
}

impl<B: Deref<Target = [u8]>> Source for SliceSource<B> {
    #[inline]
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let start = self.pos;
        match start.checked_add(n) {
            Some(end) if end <= self.data.len() => {
                self.pos = end;
                Ok(&self.data[start..end])
            }
            _ => Err(truncated(start as u64, n, (self.data.len() - start) as u64)),
        }
    }

    fn position(&self) -> u64 {
        self.pos as u64
    }

    fn remaining(&self) -> Option<u64> {
        Some((self.data.len() - self.pos) as u64)
    }

    fn crc_so_far(&mut self) -> u64 {
        crc64(&self.data[..self.pos])
    }

    #[inline]
    fn peek(&self) -> &[u8] {
        &self.data[self.pos..]
    }

    #[inline]
    fn advance(&mut self, n: usize) {
        debug_assert!(n <= self.data.len() - self.pos);
        self.pos += n;
    }
}

/// Bytes read from the stream per refill when nothing bigger is needed.
const CHUNK: usize = 256 * 1024;

/// A source over an `io::Read` stream, buffered, hashing consumed bytes in batches.
///
/// The CRC is not updated per `take` (most are a few bytes, and the SIMD CRC's per-call cost
/// would then exceed its per-byte cost): consumed bytes are hashed when the buffer is
/// compacted and when the checksum is asked for.
pub struct StreamSource<R> {
    inner: R,
    buf: Vec<u8>,
    /// `buf[start..end]` holds bytes received and not consumed yet; `buf[end..]` is room.
    start: usize,
    end: usize,
    /// `buf[hashed..start]` holds bytes consumed and not hashed yet (`hashed <= start`).
    hashed: usize,
    consumed: u64,
    crc: Crc64,
}

impl<R: Read> StreamSource<R> {
    pub fn new(inner: R) -> Self {
        StreamSource {
            inner,
            buf: Vec::new(),
            start: 0,
            end: 0,
            hashed: 0,
            consumed: 0,
            crc: Crc64::new(),
        }
    }

    /// Reads until at least `n` unconsumed bytes are buffered. Capacity grows with the data
    /// received, never with the request, so a hostile length cannot force a large allocation;
    /// the buffer is zeroed once as it grows, not at every read.
    fn fill(&mut self, n: usize) -> Result<()> {
        if self.start > 0 && self.end - self.start < n {
            self.hash_consumed();
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            self.hashed = 0;
        }
        while self.end - self.start < n {
            let want = (n - (self.end - self.start)).clamp(4096, CHUNK);
            if self.buf.len() < self.end + want {
                self.buf.resize(self.end + want, 0);
            }
            let got = loop {
                match self.inner.read(&mut self.buf[self.end..]) {
                    Ok(got) => break got,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(Error::Io {
                            path: None,
                            op: "read",
                            source: e,
                        });
                    }
                }
            };
            if got == 0 {
                return Err(truncated(self.consumed, n, (self.end - self.start) as u64));
            }
            self.end += got;
        }
        Ok(())
    }

    /// Feeds the consumed, not yet hashed bytes to the CRC.
    fn hash_consumed(&mut self) {
        self.crc.update(&self.buf[self.hashed..self.start]);
        self.hashed = self.start;
    }
}

impl<R: Read> Source for StreamSource<R> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.end - self.start < n {
            self.fill(n)?;
        }
        let start = self.start;
        self.start += n;
        self.consumed += n as u64;
        Ok(&self.buf[start..start + n])
    }

    fn position(&self) -> u64 {
        self.consumed
    }

    fn remaining(&self) -> Option<u64> {
        None
    }

    fn crc_so_far(&mut self) -> u64 {
        self.hash_consumed();
        self.crc.value()
    }

    fn peek(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn advance(&mut self, n: usize) {
        debug_assert!(n <= self.end - self.start);
        self.start += n;
        self.consumed += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_source_rejects_overlong_requests() {
        let mut src = SliceSource::new(&b"abcdef"[..]);
        assert_eq!(src.take(2).unwrap(), b"ab");
        let err = src.take(usize::MAX).unwrap_err();
        assert_eq!(err.offset(), Some(2));
        assert_eq!(src.take(4).unwrap(), b"cdef");
        assert_eq!(src.remaining(), Some(0));
    }

    /// A reader that hands out one byte per call, to exercise refills.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() || out.is_empty() {
                return Ok(0);
            }
            out[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }

    #[test]
    fn stream_source_matches_slice_source() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut a = StreamSource::new(Trickle(&data));
        let mut b = SliceSource::new(&data[..]);
        for n in [1usize, 10, 1000, 50_000, 30_000] {
            assert_eq!(a.take(n).unwrap(), b.take(n).unwrap());
        }
        assert_eq!(a.crc_so_far(), b.crc_so_far());
        let err = a.take(1_000_000_000).unwrap_err();
        assert!(err.to_string().contains("unexpected end"), "{err}");
        // The failed request did not allocate anything near its size.
        assert!(a.buf.capacity() < 1_000_000);
    }

    /// A reader that hands out 1 to 1,500 bytes per call, varying from call to call.
    struct Uneven<'a> {
        data: &'a [u8],
        calls: usize,
    }
    impl Read for Uneven<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            self.calls += 1;
            let n = (self.calls * 7919 % 1500 + 1)
                .min(out.len())
                .min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    proptest::proptest! {
        /// The batched CRC equals the CRC of every byte consumed so far, whatever the mix of
        /// takes, advances, checks and refill sizes.
        #[test]
        fn stream_source_crc_covers_exactly_the_consumed_bytes(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40_000),
            steps in proptest::collection::vec((0usize..3, 0usize..9_000), 1..40),
        ) {
            let mut src = StreamSource::new(Uneven { data: &data, calls: 0 });
            let mut pos = 0usize;
            for (kind, n) in steps {
                let n = n.min(data.len() - pos);
                match kind {
                    0 => { src.take(n).unwrap(); }
                    1 => {
                        if src.peek().len() < n {
                            src.fill(n).unwrap();
                        }
                        src.advance(n);
                    }
                    _ => {}
                }
                pos += if kind < 2 { n } else { 0 };
                proptest::prop_assert_eq!(src.crc_so_far(), crc64(&data[..pos]));
            }
        }
    }
}
