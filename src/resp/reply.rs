//! Replies a server sends, encoded in RESP2 or RESP3.

use std::borrow::Cow;

use bytes::Bytes;

/// One reply. Errors carry their whole text including the code (`ERR …`, `WRONGTYPE …`).
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// `+OK`.
    Ok,
    /// A status line (`+PONG`).
    Simple(Cow<'static, str>),
    /// An error line (`-ERR …`).
    Error(Cow<'static, str>),
    Int(i64),
    Bulk(Bytes),
    /// The null bulk string (RESP2 `$-1`, RESP3 `_`).
    Nil,
    Array(Vec<Reply>),
    /// The null array (RESP2 `*-1`, RESP3 `_`).
    NilArray,
    /// A double (RESP3 `,`; RESP2 sends it as a bulk string in Redis's `%.17g` form).
    Double(f64),
    /// A map (RESP3 `%`; RESP2 a flat array of key, value, …).
    Map(Vec<(Reply, Reply)>),
    /// A set (RESP3 `~`; RESP2 an array).
    Set(Vec<Reply>),
    /// A push message (RESP3 `>`; RESP2 an array): pub/sub messages.
    Push(Vec<Reply>),
    /// Pairs RESP2 sends flat (`m1 s1 m2 s2 …`) and RESP3 as an array of two-element arrays:
    /// `ZRANGE … WITHSCORES`, `ZPOPMIN key count`, `ZRANDMEMBER … WITHSCORES`.
    Pairs(Vec<(Reply, Reply)>),
    /// Text RESP3 sends as a verbatim string (`=N\r\ntxt:…`) and RESP2 as a bulk string:
    /// `INFO`, `CLIENT LIST`.
    Verbatim(Bytes),
    /// Keyed results RESP3 sends as a map and RESP2 as an array of two-element arrays:
    /// `XREAD`, `XREADGROUP`.
    KeyedArrays(Vec<(Reply, Reply)>),
}

impl Reply {
    /// An error reply from its full text.
    pub fn error(text: impl Into<Cow<'static, str>>) -> Reply {
        Reply::Error(text.into())
    }

    /// A bulk reply with a copy of `bytes`.
    pub fn bulk(bytes: impl AsRef<[u8]>) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(bytes.as_ref()))
    }

    /// A bulk reply, or nil.
    pub fn bulk_or_nil(bytes: Option<Bytes>) -> Reply {
        bytes.map_or(Reply::Nil, Reply::Bulk)
    }

    /// True for an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Appends the encoding of this reply; `resp3` selects the protocol version.
    pub fn encode(&self, out: &mut Vec<u8>, resp3: bool) {
        match self {
            Reply::Ok => out.extend_from_slice(b"+OK\r\n"),
            Reply::Simple(s) => line(out, b'+', s.as_bytes()),
            Reply::Error(e) => line(out, b'-', e.as_bytes()),
            Reply::Int(n) => {
                out.push(b':');
                push_int(out, *n);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Bulk(b) => bulk(out, b),
            Reply::Verbatim(text) if resp3 => {
                out.push(b'=');
                push_int(out, text.len() as i64 + 4);
                out.extend_from_slice(b"\r\ntxt:");
                out.extend_from_slice(text);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Verbatim(text) => bulk(out, text),
            Reply::Nil => out.extend_from_slice(if resp3 { b"_\r\n" } else { b"$-1\r\n" }),
            Reply::NilArray => out.extend_from_slice(if resp3 { b"_\r\n" } else { b"*-1\r\n" }),
            Reply::Array(items) => aggregate(out, b'*', items, resp3),
            Reply::Set(items) => aggregate(out, if resp3 { b'~' } else { b'*' }, items, resp3),
            Reply::Push(items) => aggregate(out, if resp3 { b'>' } else { b'*' }, items, resp3),
            Reply::Double(d) => {
                let text = format_double(*d);
                if resp3 {
                    line(out, b',', text.as_bytes());
                } else {
                    bulk(out, text.as_bytes());
                }
            }
            Reply::Pairs(pairs) => {
                out.push(b'*');
                push_int(out, pairs.len() as i64 * if resp3 { 1 } else { 2 });
                out.extend_from_slice(b"\r\n");
                for (k, v) in pairs {
                    if resp3 {
                        out.extend_from_slice(b"*2\r\n");
                    }
                    k.encode(out, resp3);
                    v.encode(out, resp3);
                }
            }
            Reply::KeyedArrays(pairs) => {
                out.push(if resp3 { b'%' } else { b'*' });
                push_int(out, pairs.len() as i64);
                out.extend_from_slice(b"\r\n");
                for (k, v) in pairs {
                    if !resp3 {
                        out.extend_from_slice(b"*2\r\n");
                    }
                    k.encode(out, resp3);
                    v.encode(out, resp3);
                }
            }
            Reply::Map(pairs) => {
                if resp3 {
                    out.push(b'%');
                    push_int(out, pairs.len() as i64);
                } else {
                    out.push(b'*');
                    push_int(out, pairs.len() as i64 * 2);
                }
                out.extend_from_slice(b"\r\n");
                for (k, v) in pairs {
                    k.encode(out, resp3);
                    v.encode(out, resp3);
                }
            }
        }
    }
}

/// A double as Redis 7.0 replies it: C's `%.17g` (`1.1` reads back as `1.1000000000000001`),
/// `inf` and `-inf`.
pub fn format_double(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d.is_nan() {
        return "nan".into();
    }
    const PRECISION: i32 = 17;
    // `{:.16e}` gives the 17 significant digits and the decimal exponent %g decides with.
    let sci = format!("{:.*e}", (PRECISION - 1) as usize, d);
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if !(-4..PRECISION).contains(&exponent) {
        let mantissa = strip_fraction_zeros(mantissa);
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    } else {
        let decimals = (PRECISION - 1 - exponent).max(0) as usize;
        strip_fraction_zeros(&format!("{d:.decimals$}")).to_string()
    }
}

fn strip_fraction_zeros(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}

/// Appends `n` in decimal without allocating (this runs for every reply length).
pub(crate) fn push_int(out: &mut Vec<u8>, n: i64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
}

fn line(out: &mut Vec<u8>, prefix: u8, text: &[u8]) {
    out.push(prefix);
    // A status or error line cannot hold CR or LF; Redis replaces them with spaces.
    out.extend(
        text.iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

fn bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'$');
    push_int(out, bytes.len() as i64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

fn aggregate(out: &mut Vec<u8>, prefix: u8, items: &[Reply], resp3: bool) {
    out.push(prefix);
    push_int(out, items.len() as i64);
    out.extend_from_slice(b"\r\n");
    for item in items {
        item.encode(out, resp3);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(r: &Reply, resp3: bool) -> String {
        let mut out = Vec::new();
        r.encode(&mut out, resp3);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn resp2_and_resp3_forms() {
        assert_eq!(enc(&Reply::Nil, false), "$-1\r\n");
        assert_eq!(enc(&Reply::Nil, true), "_\r\n");
        let info = Reply::Verbatim(Bytes::from_static(b"a:1"));
        assert_eq!(enc(&info, false), "$3\r\na:1\r\n");
        assert_eq!(enc(&info, true), "=7\r\ntxt:a:1\r\n");
        assert_eq!(enc(&Reply::Double(1.5), false), "$3\r\n1.5\r\n");
        assert_eq!(enc(&Reply::Double(1.5), true), ",1.5\r\n");
        let map = Reply::Map(vec![(Reply::bulk("a"), Reply::Int(1))]);
        assert_eq!(enc(&map, false), "*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&map, true), "%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&Reply::error("ERR a\r\nb"), false), "-ERR a  b\r\n");
        let pairs = Reply::Pairs(vec![(Reply::bulk("m"), Reply::Double(1.5))]);
        assert_eq!(enc(&pairs, false), "*2\r\n$1\r\nm\r\n$3\r\n1.5\r\n");
        assert_eq!(enc(&pairs, true), "*1\r\n*2\r\n$1\r\nm\r\n,1.5\r\n");
        let keyed = Reply::KeyedArrays(vec![(Reply::bulk("k"), Reply::Array(vec![]))]);
        assert_eq!(enc(&keyed, false), "*1\r\n*2\r\n$1\r\nk\r\n*0\r\n");
        assert_eq!(enc(&keyed, true), "%1\r\n$1\r\nk\r\n*0\r\n");
        assert_eq!(
            enc(&Reply::Int(i64::MIN), false),
            ":-9223372036854775808\r\n"
        );
        assert_eq!(enc(&Reply::Int(0), false), ":0\r\n");
        assert_eq!(enc(&Reply::Int(1234), false), ":1234\r\n");
    }

    #[test]
    fn doubles_render_like_printf_17g() {
        for (d, text) in [
            (1.1, "1.1000000000000001"),
            (1.5, "1.5"),
            (0.0, "0"),
            (-2.0, "-2"),
            (1e17, "1e+17"),
            (123456789012345680.0, "1.2345678901234568e+17"),
            (0.0001, "0.0001"),
            (0.00001, "1.0000000000000001e-05"),
            (3.0e-300, "3.0000000000000002e-300"),
            (f64::INFINITY, "inf"),
        ] {
            assert_eq!(format_double(d), text, "{d}");
        }
    }
}
