//! Redis's compact blob encodings, as found inside RDB strings: listpack, ziplist, intset,
//! zipmap, and LZF compression.
//!
//! Decoders take a blob (`&[u8]`) and validate it the way Redis's deep sanitizer does before
//! yielding anything that depends on a length or offset inside it: a hostile blob gives a
//! [`BlobError`] with the offset inside the blob, never a panic or an out-of-bounds read. The
//! RDB reader adds the blob's position in the file.

pub mod intset;
pub mod listpack;
pub mod lzf;
pub mod ziplist;
pub mod zipmap;

use bytes::Bytes;

/// One element of a listpack or ziplist: an integer or a byte string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Elem<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl Elem<'_> {
    /// The element as bytes: integers become their decimal text, as Redis returns them.
    pub fn to_bytes(self) -> Bytes {
        match self {
            Elem::Int(v) => Bytes::from(v.to_string()),
            Elem::Str(s) => Bytes::copy_from_slice(s),
        }
    }

    /// The element as an integer: `Int` as is, `Str` when it is a canonical integer.
    pub fn as_int(self) -> Option<i64> {
        match self {
            Elem::Int(v) => Some(v),
            Elem::Str(s) => parse_canonical_i64(s),
        }
    }
}

/// A structural problem inside a blob, `offset` bytes from the blob's first byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobError {
    pub offset: usize,
    pub reason: String,
}

impl BlobError {
    #[cold]
    pub fn new(offset: usize, reason: impl Into<String>) -> Self {
        BlobError {
            offset,
            reason: reason.into(),
        }
    }
}

/// Checks the start shared by listpacks and ziplists: at least `min` bytes, and a u32 LE total
/// length that equals the blob's length.
pub(crate) fn check_total_len(blob: &[u8], what: &str, min: usize) -> Result<(), BlobError> {
    if blob.len() < min {
        return Err(BlobError::new(
            0,
            format!(
                "{what}: {} bytes is shorter than the {min}-byte minimum",
                blob.len()
            ),
        ));
    }
    let total = u32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]);
    if usize::try_from(total).ok() != Some(blob.len()) {
        return Err(BlobError::new(
            0,
            format!("{what}: header says {total} bytes, blob has {}", blob.len()),
        ));
    }
    Ok(())
}

/// Parses `bytes` as an int64 only if it is the canonical decimal form Redis's `string2ll`
/// accepts: optional `-`, no `+`, no leading zeros, no spaces, `0` only as itself, at most 20
/// characters, and in range. Writers use this to decide integer encodings exactly as Redis does.
pub fn parse_canonical_i64(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    if bytes == b"0" {
        return Some(0);
    }
    let (negative, digits) = match bytes[0] {
        b'-' => (true, &bytes[1..]),
        _ => (false, bytes),
    };
    if digits.is_empty() || digits[0] == b'0' {
        return None;
    }
    let mut magnitude: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        magnitude = magnitude
            .checked_mul(10)?
            .checked_add(u64::from(b - b'0'))?;
    }
    if negative {
        if magnitude > i64::MAX as u64 + 1 {
            None
        } else {
            Some((magnitude as i64).wrapping_neg())
        }
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Bytes from hex text (spaces ignored), for tests that spell out blobs byte by byte.
#[cfg(test)]
pub(crate) fn hex(text: &str) -> Vec<u8> {
    let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_integers() {
        for (text, want) in [
            ("0", Some(0)),
            ("12345", Some(12345)),
            ("-1", Some(-1)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("-0", None),
            ("007", None),
            ("+1", None),
            (" 1", None),
            ("1 ", None),
            ("", None),
            ("-", None),
            ("1.0", None),
        ] {
            assert_eq!(parse_canonical_i64(text.as_bytes()), want, "{text:?}");
        }
    }
}
