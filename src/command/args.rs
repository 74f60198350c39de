//! Argument parsing with Redis's exact rules.

use super::errors;
use crate::resp::Reply;

/// Parses a signed 64-bit integer as Redis's `string2ll` does: optional `-`, digits, no
/// leading zeros (except "0"), no spaces or `+`, at most 20 characters.
pub fn parse_i64(arg: &[u8]) -> Option<i64> {
    if arg.is_empty() || arg.len() > 20 {
        return None;
    }
    let (negative, digits) = match arg {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, arg),
    };
    if digits.is_empty() || (digits[0] == b'0' && (digits.len() > 1 || negative)) {
        return None;
    }
    let mut value: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    if negative {
        if value > i64::MAX as u64 + 1 {
            None
        } else {
            Some((value as i64).wrapping_neg())
        }
    } else {
        i64::try_from(value).ok()
    }
}

/// Parses a double as Redis's `string2d`/`strtod` accepts it: decimal or exponent forms,
/// `inf`/`+inf`/`-inf` (any case), no surrounding spaces, never NaN.
pub fn parse_f64(arg: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(arg).ok()?;
    if text.is_empty()
        || text.starts_with(char::is_whitespace)
        || text.ends_with(char::is_whitespace)
    {
        return None;
    }
    let lower = text.to_ascii_lowercase();
    let value = match lower.as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => {
            if lower.contains("inf") || lower.contains("nan") {
                return None;
            }
            text.parse::<f64>().ok()?
        }
    };
    (!value.is_nan()).then_some(value)
}

/// C's `isspace` in the "C" locale.
pub(super) fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// An integer argument, or Redis's `ERR value is not an integer or out of range`
/// (`getLongLongFromObjectOrReply`).
pub(super) fn int_arg(arg: &[u8]) -> Result<i64, Reply> {
    parse_i64(arg).ok_or_else(|| Reply::error(errors::NOT_INTEGER))
}

/// A non-negative integer argument (`getPositiveLongFromObjectOrReply`): every failure,
/// malformed or negative, gets the same error, `message` or Redis's default.
pub(super) fn non_negative_arg(arg: &[u8], message: Option<&'static str>) -> Result<i64, Reply> {
    let error = || Reply::error(message.unwrap_or("ERR value is out of range, must be positive"));
    match parse_i64(arg) {
        Some(n) if n >= 0 => Ok(n),
        _ => Err(error()),
    }
}

/// A C `int` argument (`getIntFromObjectOrReply`): `message` for every failure when given,
/// otherwise Redis's two default errors (not an integer / outside the `int` range).
pub(super) fn c_int_arg(arg: &[u8], message: Option<&'static str>) -> Result<i32, Reply> {
    let Some(value) = parse_i64(arg) else {
        return Err(Reply::error(message.unwrap_or(errors::NOT_INTEGER)));
    };
    i32::try_from(value).map_err(|_| {
        Reply::error(
            message.unwrap_or(
                "ERR value is out of range, value must between -2147483648 and 2147483647",
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_follow_string2ll() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        for bad in [
            &b""[..],
            b"01",
            b"-0",
            b"+1",
            b" 1",
            b"1 ",
            b"9223372036854775808",
            b"1a",
        ] {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn floats_follow_strtod() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"1e3"), Some(1000.0));
        assert_eq!(parse_f64(b"nan"), None);
        assert_eq!(parse_f64(b" 1"), None);
        assert_eq!(parse_f64(b""), None);
    }
}
