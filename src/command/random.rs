//! A small, fast random source for SPOP, SRANDMEMBER, RANDOMKEY and the like, and the
//! sampling that SRANDMEMBER, ZRANDMEMBER and HRANDFIELD share.

use bytes::Bytes;

use super::{args, errors};
use crate::resp::Reply;

/// SplitMix64: statistically good enough for picking members, seeded per connection/engine.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// A generator seeded from the clock and the process id.
    pub fn from_clock() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Rng(nanos ^ (u64::from(std::process::id()) << 32))
    }

    /// The next random number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// Largest count a negative count of `SRANDMEMBER`, `ZRANDMEMBER` or `HRANDFIELD` may ask
/// for: the reply is built in memory, and Redis would stream an unbounded reply where we
/// would abort on allocation.
const MAX_REPEATED_SAMPLES: u64 = 1 << 26;

/// The count of `SRANDMEMBER`, `ZRANDMEMBER` and `HRANDFIELD`
/// (`getRangeLongFromObjectOrReply(-LONG_MAX, LONG_MAX)`).
pub(super) fn count_arg(arg: &[u8]) -> Result<i64, Reply> {
    match args::int_arg(arg)? {
        i64::MIN => Err(Reply::error(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        )),
        n => Ok(n),
    }
}

/// The count and the `with` flag (`WITHSCORES`, `WITHVALUES`) of `ZRANDMEMBER` and
/// `HRANDFIELD` called with a count (`argv.len() >= 3`), checked in Redis's order. With the
/// flag, the count must stay within ±`LONG_MAX / 2` (the reply has twice as many items).
pub(super) fn count_and_flag(argv: &[Bytes], with: &[u8]) -> Result<(i64, bool), Reply> {
    let requested = count_arg(&argv[2])?;
    let flag = match argv.len() {
        3 => false,
        4 if argv[3].eq_ignore_ascii_case(with) => true,
        _ => return Err(Reply::error(errors::SYNTAX)),
    };
    if flag && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&requested) {
        return Err(Reply::error("ERR value is out of range"));
    }
    Ok((requested, flag))
}

/// `requested` elements of `all` picked as Redis picks them for a count (`srandmemberWithCountCommand`
/// and its `ZRANDMEMBER`/`HRANDFIELD` twins): a negative count (or 1) makes independent picks,
/// repeats allowed; a count of at least the collection returns all of it, in the given order;
/// otherwise distinct elements in random order.
pub(super) fn sample<T: Clone>(
    all: Vec<T>,
    requested: i64,
    rng: &mut Rng,
) -> Result<Vec<T>, Reply> {
    let count = requested.unsigned_abs();
    if count == 0 || all.is_empty() {
        return Ok(Vec::new());
    }
    if requested < 0 || count == 1 {
        if count > MAX_REPEATED_SAMPLES {
            return Err(Reply::error("ERR value is out of range"));
        }
        return Ok((0..count)
            .map(|_| all[rng.below(all.len() as u64) as usize].clone())
            .collect());
    }
    if count >= all.len() as u64 {
        return Ok(all);
    }
    Ok(distinct(all, count as usize, rng))
}

/// `count` distinct elements of `all` (`count <= all.len()`) in random order: a partial
/// Fisher–Yates shuffle.
pub(super) fn distinct<T>(mut all: Vec<T>, count: usize, rng: &mut Rng) -> Vec<T> {
    for i in 0..count {
        let j = i + rng.below((all.len() - i) as u64) as usize;
        all.swap(i, j);
    }
    all.truncate(count);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_follow_the_count() {
        let mut rng = Rng::new(3);
        let all: Vec<u32> = (0..10).collect();
        assert_eq!(sample(all.clone(), 0, &mut rng), Ok(vec![]));
        assert_eq!(sample(Vec::<u32>::new(), -5, &mut rng), Ok(vec![]));
        assert_eq!(
            sample(all.clone(), 10, &mut rng),
            Ok(all.clone()),
            "whole, in order"
        );
        assert_eq!(sample(all.clone(), 99, &mut rng), Ok(all.clone()));
        let mut some = sample(all.clone(), 6, &mut rng).unwrap();
        some.sort_unstable();
        some.dedup();
        assert_eq!(some.len(), 6, "distinct");
        let repeated = sample(all.clone(), -200, &mut rng).unwrap();
        assert_eq!(repeated.len(), 200);
        assert!(repeated.iter().all(|x| *x < 10));
        assert_eq!(
            sample(all, -(1 << 27), &mut rng),
            Err(Reply::error("ERR value is out of range"))
        );
        assert_eq!(count_arg(b"-9223372036854775807"), Ok(-i64::MAX));
        assert!(count_arg(b"-9223372036854775808").is_err());
        assert!(count_arg(b"x").is_err());
    }
}
