//! The replication backlog: the last `repl-backlog-size` bytes of the propagated stream, so a
//! replica that lost its link can continue from the byte it last applied (`+CONTINUE`) instead
//! of taking a full sync (`redis-formats.md` §3.2, §3.5).
//!
//! Offsets follow Redis: the stream's first byte has offset 1, `master_repl_offset` is the
//! offset of the last byte propagated, and a backlog created at `master_repl_offset = N` holds
//! nothing and starts at `N + 1` (`repl_backlog_first_byte_offset`). Invariant:
//! `first_byte_offset + histlen == end_offset + 1`, where `end_offset` is the offset of the last
//! byte appended (the primary's `master_repl_offset` while the backlog is fed every byte).
//!
//! A replica asking for offset `o` (the first byte it lacks, its own offset + 1) can continue
//! when `first_byte_offset <= o <= first_byte_offset + histlen`; `o` past the last byte is
//! "nothing to send". Reads may start in the middle of a command: the replica applied exactly
//! the bytes before `o`.
//!
//! Storage is one ring of at most `size` bytes, allocated as the stream grows (a node with few
//! writes never holds a whole megabyte). Redis 7.0 keeps its backlog as a list of 16 KiB blocks
//! trimmed one block at a time, so its `repl_backlog_histlen` hovers up to a block above the
//! size; keeper keeps exactly the last `size` bytes, so `histlen` never exceeds it.

/// `repl-backlog-size` when none is configured (Redis's default, 1 MiB).
pub const DEFAULT_BACKLOG_SIZE: u64 = 1024 * 1024;
/// The smallest backlog: Redis raises any smaller `repl-backlog-size` to this (16 KiB).
pub const MIN_BACKLOG_SIZE: u64 = 16 * 1024;

/// The ring buffer. See the module docs for offsets.
#[derive(Debug, Clone)]
pub struct Backlog {
    /// Grows up to `size` bytes, then stays that long and wraps.
    buf: Vec<u8>,
    /// Capacity in bytes, at least [`MIN_BACKLOG_SIZE`].
    size: usize,
    /// Index in `buf` of the oldest byte held.
    start: usize,
    /// Bytes held, at most `size`.
    histlen: usize,
    /// Stream offset of the byte at `start`.
    first_byte_offset: u64,
}

impl Backlog {
    /// An empty backlog of `size` bytes (raised to [`MIN_BACKLOG_SIZE`]) for a stream whose
    /// last byte so far has offset `end_offset` (`master_repl_offset`): the first byte it will
    /// hold is `end_offset + 1`.
    pub fn new(size: u64, end_offset: u64) -> Backlog {
        Backlog {
            buf: Vec::new(),
            size: clamp_size(size),
            start: 0,
            histlen: 0,
            first_byte_offset: end_offset + 1,
        }
    }

    /// `repl_backlog_size`: the most bytes it holds.
    pub fn size(&self) -> u64 {
        self.size as u64
    }

    /// `repl_backlog_histlen`: the bytes it holds.
    pub fn histlen(&self) -> u64 {
        self.histlen as u64
    }

    /// `repl_backlog_first_byte_offset`: the offset of the oldest byte held (of the next byte
    /// appended while it holds nothing).
    pub fn first_byte_offset(&self) -> u64 {
        self.first_byte_offset
    }

    /// The offset of the last byte appended (`first_byte_offset + histlen - 1`): the
    /// `master_repl_offset` this backlog is in step with.
    pub fn end_offset(&self) -> u64 {
        self.first_byte_offset + self.histlen as u64 - 1
    }

    /// True when a replica asking for the stream from `offset` (the first byte it lacks) can
    /// be served from here: `first_byte_offset <= offset <= end_offset + 1`.
    pub fn covers(&self, offset: u64) -> bool {
        offset >= self.first_byte_offset && offset <= self.first_byte_offset + self.histlen as u64
    }

    /// Appends stream bytes; the oldest ones fall off once `size` bytes are held.
    pub fn append(&mut self, mut data: &[u8]) {
        if data.len() >= self.size {
            // Only the last `size` bytes survive: keep them and start the ring over.
            let dropped = self.histlen + data.len() - self.size;
            self.buf.clear();
            self.buf.extend_from_slice(&data[data.len() - self.size..]);
            self.start = 0;
            self.histlen = self.size;
            self.first_byte_offset += dropped as u64;
            return;
        }
        if self.buf.len() < self.size {
            // Growing: no wrap yet, so `start` is 0 and the bytes held are `buf` itself.
            let grow = data.len().min(self.size - self.buf.len());
            self.buf.extend_from_slice(&data[..grow]);
            self.histlen += grow;
            data = &data[grow..];
            if data.is_empty() {
                return;
            }
        }
        // Full-length ring: write after the newest byte, wrapping, then drop what overflowed.
        let write = (self.start + self.histlen) % self.size;
        let first = data.len().min(self.size - write);
        self.buf[write..write + first].copy_from_slice(&data[..first]);
        self.buf[..data.len() - first].copy_from_slice(&data[first..]);
        self.histlen += data.len();
        if self.histlen > self.size {
            let over = self.histlen - self.size;
            self.start = (self.start + over) % self.size;
            self.histlen = self.size;
            self.first_byte_offset += over as u64;
        }
    }

    /// The bytes from stream offset `offset` to the end, as at most two slices in order (the
    /// ring may wrap); `None` when [`Backlog::covers`] is false. Empty when `offset` is the
    /// next byte to come.
    pub fn read_from(&self, offset: u64) -> Option<[&[u8]; 2]> {
        if !self.covers(offset) {
            return None;
        }
        let skip = (offset - self.first_byte_offset) as usize;
        let len = self.histlen - skip;
        if len == 0 {
            return Some([&[], &[]]);
        }
        let from = (self.start + skip) % self.buf.len();
        let first = len.min(self.buf.len() - from);
        Some([&self.buf[from..from + first], &self.buf[..len - first]])
    }

    /// [`Backlog::read_from`] as one vector.
    pub fn copy_from(&self, offset: u64) -> Option<Vec<u8>> {
        let [a, b] = self.read_from(offset)?;
        let mut out = Vec::with_capacity(a.len() + b.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b);
        Some(out)
    }

    /// Changes the capacity (`CONFIG SET repl-backlog-size`; raised to [`MIN_BACKLOG_SIZE`]),
    /// keeping the newest bytes that fit.
    pub fn resize(&mut self, size: u64) {
        let size = clamp_size(size);
        if size == self.size {
            return;
        }
        let keep = self.histlen.min(size);
        let from = self.end_offset() + 1 - keep as u64;
        let kept = self.copy_from(from).unwrap_or_default();
        self.buf = kept;
        self.size = size;
        self.start = 0;
        self.histlen = keep;
        self.first_byte_offset = from;
    }
}

/// `repl-backlog-size` as Redis applies it: at least [`MIN_BACKLOG_SIZE`].
pub fn clamp_size(size: u64) -> usize {
    usize::try_from(size.max(MIN_BACKLOG_SIZE)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K16: usize = MIN_BACKLOG_SIZE as usize;

    /// A stream of `len` bytes whose byte at offset `o` (1-based) is recognisable.
    fn stream(len: usize) -> Vec<u8> {
        (1..=len as u64).map(|o| (o * 31 % 251) as u8).collect()
    }

    #[test]
    fn a_new_backlog_starts_after_the_current_offset() {
        let b = Backlog::new(DEFAULT_BACKLOG_SIZE, 0);
        assert_eq!(
            (b.first_byte_offset(), b.histlen(), b.size()),
            (1, 0, 1 << 20)
        );
        assert_eq!(b.end_offset(), 0);
        assert!(b.covers(1));
        assert!(!b.covers(0));
        assert!(!b.covers(2));
        assert_eq!(b.copy_from(1), Some(Vec::new()));
        let b = Backlog::new(100, 5000);
        assert_eq!((b.first_byte_offset(), b.size()), (5001, MIN_BACKLOG_SIZE));
    }

    #[test]
    fn reads_are_byte_exact_from_any_offset_before_the_wrap() {
        let data = stream(1000);
        let mut b = Backlog::new(0, 0);
        // Appended in pieces the size of commands.
        for piece in data.chunks(37) {
            b.append(piece);
        }
        assert_eq!(b.histlen(), 1000);
        assert_eq!(b.end_offset(), 1000);
        for offset in [1u64, 2, 223, 999, 1000, 1001] {
            assert_eq!(
                b.copy_from(offset).unwrap(),
                &data[offset as usize - 1..],
                "offset {offset}"
            );
        }
        assert_eq!(b.copy_from(1002), None);
    }

    #[test]
    fn wrap_around_keeps_exactly_the_last_size_bytes() {
        let data = stream(3 * K16 + 123);
        let mut b = Backlog::new(0, 0);
        for piece in data.chunks(1000) {
            b.append(piece);
        }
        let total = data.len() as u64;
        assert_eq!(b.histlen(), K16 as u64);
        assert_eq!(b.first_byte_offset(), total - K16 as u64 + 1);
        assert_eq!(b.end_offset(), total);
        let first = b.first_byte_offset();
        assert_eq!(b.copy_from(first - 1), None, "fell off");
        assert_eq!(b.copy_from(total + 2), None, "not yet written");
        for offset in [first, first + 1, first + 5000, total - 1, total, total + 1] {
            let [x, y] = b.read_from(offset).unwrap();
            let mut got = x.to_vec();
            got.extend_from_slice(y);
            assert_eq!(got, &data[offset as usize - 1..], "offset {offset}");
        }
        // Somewhere the read spans the wrap.
        assert!(
            (first..=total).any(|o| !b.read_from(o).unwrap()[1].is_empty()),
            "no read crossed the end of the ring"
        );
    }

    #[test]
    fn an_append_larger_than_the_backlog_keeps_its_tail() {
        let data = stream(K16 * 2 + 7);
        let mut b = Backlog::new(0, 10);
        b.append(&data[..100]);
        b.append(&data[100..]);
        let total = 10 + data.len() as u64;
        assert_eq!(b.end_offset(), total);
        assert_eq!(b.histlen(), K16 as u64);
        assert_eq!(b.copy_from(total - 9).unwrap(), &data[data.len() - 10..]);
        // It keeps working as a ring afterwards.
        b.append(b"abc");
        assert_eq!(
            b.copy_from(total - 1).unwrap(),
            [&data[data.len() - 2..], b"abc"].concat()
        );
    }

    #[test]
    fn resizing_keeps_the_newest_bytes() {
        let data = stream(K16 * 3);
        let mut b = Backlog::new(K16 as u64 * 4, 0);
        for piece in data.chunks(777) {
            b.append(piece);
        }
        assert_eq!(b.histlen(), data.len() as u64);
        b.resize(K16 as u64);
        assert_eq!((b.size(), b.histlen()), (K16 as u64, K16 as u64));
        assert_eq!(b.end_offset(), data.len() as u64);
        let first = b.first_byte_offset();
        assert_eq!(b.copy_from(first).unwrap(), &data[first as usize - 1..]);
        // Growing keeps everything and makes room.
        b.resize(K16 as u64 * 2);
        b.append(&data[..K16 / 2]);
        assert_eq!(b.histlen(), (K16 + K16 / 2) as u64);
        assert_eq!(b.first_byte_offset(), first);
        // Below the minimum is the minimum.
        b.resize(1);
        assert_eq!(b.size(), MIN_BACKLOG_SIZE);
    }

    /// Random appends against a model that keeps the whole stream.
    #[test]
    fn matches_a_model_under_random_appends() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..20 {
            let size = K16 + (next() % 5000) as usize;
            let mut b = Backlog::new(size as u64, 0);
            let mut model: Vec<u8> = Vec::new();
            for _ in 0..200 {
                let len = (next() % (size as u64 / 3)) as usize;
                let piece: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                b.append(&piece);
                model.extend_from_slice(&piece);
                let total = model.len() as u64;
                assert_eq!(b.end_offset(), total, "round {round}");
                assert_eq!(b.histlen(), total.min(size as u64));
                let offset = b.first_byte_offset() + next() % (b.histlen() + 1);
                assert_eq!(
                    b.copy_from(offset).unwrap(),
                    &model[offset as usize - 1..],
                    "round {round}, offset {offset}"
                );
            }
        }
    }
}
