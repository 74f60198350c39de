//! Redis's `save <seconds> <changes> …` option.

use std::fmt;

/// One save point: save when at least `changes` writes happened and more than `seconds`
/// passed since the last successful save.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavePoint {
    /// At least 1.
    pub seconds: u64,
    pub changes: u64,
}

/// The `save` option: a list of [`SavePoint`]s; empty disables automatic saves.
///
/// Default: `3600 1 300 100 60 10000` (Redis 7.0's). Formats as `CONFIG GET save` shows it
/// (`"3600 1 300 100 60 10000"`, `""` when disabled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavePoints(Vec<SavePoint>);

/// The `save` value is malformed. Displays Redis's text, `Invalid save parameters` (a
/// `CONFIG SET` reply wraps it: `ERR CONFIG SET failed (possibly related to argument 'save') -
/// Invalid save parameters`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Invalid save parameters")]
pub struct InvalidSavePoints;

impl From<InvalidSavePoints> for crate::Error {
    fn from(e: InvalidSavePoints) -> Self {
        crate::Error::InvalidArgument(e.to_string())
    }
}

impl Default for SavePoints {
    fn default() -> Self {
        SavePoints(vec![
            SavePoint {
                seconds: 3600,
                changes: 1,
            },
            SavePoint {
                seconds: 300,
                changes: 100,
            },
            SavePoint {
                seconds: 60,
                changes: 10000,
            },
        ])
    }
}

impl SavePoints {
    /// No save points: automatic saves are off (`save ""`).
    pub fn disabled() -> Self {
        SavePoints(Vec::new())
    }

    /// The points, in the order given.
    pub fn points(&self) -> &[SavePoint] {
        &self.0
    }

    /// True when automatic saves are off.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses a `CONFIG SET save VALUE` value: arguments separated by single spaces (Redis
    /// splits it with `sdssplitlen(" ")`, so two spaces in a row make an empty argument);
    /// `""` disables saving.
    pub fn parse_config_set(value: &str) -> Result<Self, InvalidSavePoints> {
        if value.is_empty() {
            return Ok(Self::disabled());
        }
        let args: Vec<&str> = value.split(' ').collect();
        Self::from_arg_list(&args)
    }

    /// Parses the arguments of one `save` line of redis.conf or one `--save` of the command
    /// line, as the config parser tokenised them. A single empty argument (`save ""`)
    /// disables saving; a single non-empty argument is split on whitespace (`--save "900 1"`).
    ///
    /// In a config file the first `save` line replaces the defaults and later lines add to it
    /// ([`SavePoints::extend`]); a `save ""` line empties the list.
    pub fn from_config_args(args: &[&str]) -> Result<Self, InvalidSavePoints> {
        match args {
            [""] => Ok(Self::disabled()),
            [one] => Self::from_arg_list(&one.split_whitespace().collect::<Vec<_>>()),
            _ => Self::from_arg_list(args),
        }
    }

    /// Appends the points of `more` (a later `save` line of a config file).
    pub fn extend(&mut self, more: SavePoints) {
        self.0.extend(more.0);
    }

    /// Pairs of `<seconds> <changes>`; seconds ≥ 1, changes ≥ 0, as Redis's
    /// `setConfigSaveOption` checks them.
    fn from_arg_list(args: &[&str]) -> Result<Self, InvalidSavePoints> {
        if !args.len().is_multiple_of(2) {
            return Err(InvalidSavePoints);
        }
        let mut points = Vec::with_capacity(args.len() / 2);
        for pair in args.chunks_exact(2) {
            let seconds = strtoll(pair[0])
                .filter(|&s| s >= 1)
                .ok_or(InvalidSavePoints)?;
            let changes = strtoll(pair[1])
                .filter(|&c| c >= 0)
                .ok_or(InvalidSavePoints)?;
            points.push(SavePoint {
                seconds: seconds.unsigned_abs(),
                changes: changes.unsigned_abs(),
            });
        }
        Ok(SavePoints(points))
    }

    /// The first point that is due (Redis's `serverCron` test): at least `changes` writes since
    /// the last successful save (`dirty`), and strictly more than `seconds` since it.
    pub fn due(&self, now_unix: i64, last_save_unix: i64, dirty: u64) -> Option<SavePoint> {
        let since = now_unix.saturating_sub(last_save_unix);
        self.0
            .iter()
            .find(|p| dirty >= p.changes && since > 0 && since.unsigned_abs() > p.seconds)
            .copied()
    }
}

impl fmt::Display for SavePoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{} {}", p.seconds, p.changes)?;
        }
        Ok(())
    }
}

/// A number as C's `strtoll` reads it when the caller requires the whole string to be used:
/// optional leading whitespace, optional sign, digits; out-of-range values saturate. The empty
/// string reads as 0 (no digits, and the end pointer is at the terminator), as in Redis.
fn strtoll(s: &str) -> Option<i64> {
    if s.is_empty() {
        return Some(0);
    }
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let magnitude: i128 = digits
        .bytes()
        .try_fold(0i128, |acc, d| {
            let next = acc * 10 + i128::from(d - b'0');
            // Past i64's range the value saturates anyway; stop growing.
            Some(next.min(i128::from(i64::MAX) + 1))
        })
        .unwrap_or(0);
    let value = if negative { -magnitude } else { magnitude };
    Some(value.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_redis_7_0s_and_formats_like_config_get() {
        assert_eq!(SavePoints::default().to_string(), "3600 1 300 100 60 10000");
        assert_eq!(SavePoints::disabled().to_string(), "");
        let parsed = SavePoints::parse_config_set("3600 1 300 100 60 10000").unwrap();
        assert_eq!(parsed, SavePoints::default());
    }

    #[test]
    fn config_set_parsing_matches_redis() {
        // Checked against redis-server 7.0.15: CONFIG SET save "900  1" is refused (the
        // double space makes an empty argument, so the count is odd).
        assert_eq!(
            SavePoints::parse_config_set("900  1"),
            Err(InvalidSavePoints)
        );
        assert!(SavePoints::parse_config_set("").unwrap().is_empty());
        assert_eq!(SavePoints::parse_config_set("900"), Err(InvalidSavePoints));
        assert_eq!(SavePoints::parse_config_set("0 1"), Err(InvalidSavePoints));
        assert_eq!(SavePoints::parse_config_set("5 -1"), Err(InvalidSavePoints));
        assert_eq!(SavePoints::parse_config_set("5 x"), Err(InvalidSavePoints));
        assert_eq!(SavePoints::parse_config_set("5x 1"), Err(InvalidSavePoints));
        let zero_changes = SavePoints::parse_config_set("5 0").unwrap();
        assert_eq!(
            zero_changes.points(),
            &[SavePoint {
                seconds: 5,
                changes: 0
            }]
        );
        assert_eq!(
            SavePoints::parse_config_set("+10 007").unwrap().to_string(),
            "10 7"
        );
        assert_eq!(InvalidSavePoints.to_string(), "Invalid save parameters");
    }

    #[test]
    fn config_file_arguments() {
        assert!(SavePoints::from_config_args(&[""]).unwrap().is_empty());
        assert_eq!(
            SavePoints::from_config_args(&["900 1 300 10"])
                .unwrap()
                .to_string(),
            "900 1 300 10"
        );
        let mut points = SavePoints::from_config_args(&["900", "1"]).unwrap();
        points.extend(SavePoints::from_config_args(&["60", "5"]).unwrap());
        assert_eq!(points.to_string(), "900 1 60 5");
        assert_eq!(
            SavePoints::from_config_args(&["900", "1", "2"]),
            Err(InvalidSavePoints)
        );
    }

    #[test]
    fn due_needs_enough_changes_and_strictly_more_seconds() {
        let points = SavePoints::parse_config_set("60 10 3600 1").unwrap();
        let last = 1_000;
        assert_eq!(points.due(last + 60, last, 10), None, "60 s is not > 60 s");
        assert_eq!(
            points.due(last + 61, last, 10),
            Some(SavePoint {
                seconds: 60,
                changes: 10
            })
        );
        assert_eq!(points.due(last + 61, last, 9), None);
        assert_eq!(
            points.due(last + 3601, last, 1).map(|p| p.seconds),
            Some(3600)
        );
        assert_eq!(SavePoints::disabled().due(i64::MAX, 0, u64::MAX), None);
        // A clock that went backwards never makes a point due.
        assert_eq!(points.due(last - 5000, last, 100), None);
    }

    #[test]
    fn strtoll_reads_like_c() {
        assert_eq!(strtoll(""), Some(0));
        assert_eq!(strtoll("  12"), Some(12));
        assert_eq!(strtoll("-3"), Some(-3));
        assert_eq!(strtoll(" "), None);
        assert_eq!(strtoll("12 "), None);
        assert_eq!(strtoll("99999999999999999999"), Some(i64::MAX));
        assert_eq!(strtoll("-99999999999999999999"), Some(i64::MIN));
    }
}
