//! Glob-style matching exactly as Redis's `stringmatchlen` (src/util.c) does it, for `KEYS`,
//! the `MATCH` option of `SCAN`/`SSCAN`/`HSCAN`/`ZSCAN`, `PSUBSCRIBE`, `CONFIG GET` and
//! anything else that takes a pattern.
//!
//! Syntax: `*` any run of bytes, `?` one byte, `[abc]` / `[^abc]` / `[a-z]` (bounds in any
//! order) a byte class, `\x` the byte `x`. Quirks kept on purpose, since clients depend on
//! Redis's answers: an unclosed `[` class ends at the end of the pattern, and range bounds
//! are compared as C's signed `char` (bytes ≥ 0x80 sort before ASCII).
//!
//! Like Redis 7.2.6 and later, and the Redis 7.0.15 Debian ships (CVE-2024-31228 fix
//! backported), matching gives up (no match) beyond 1000 nested `*`, so a hostile pattern
//! cannot exhaust the stack: `KEYS` with 1000 `*a` finds a key of 1001 `a`, with 1001 it does
//! not (checked against that server).

/// Nesting of `*` beyond which a pattern never matches (see the module docs).
const MAX_STAR_NESTING: usize = 1000;

/// True when `text` matches `pattern`, case-sensitively.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    matches(pattern, text, false)
}

/// True when `text` matches `pattern`; `nocase` ignores ASCII case (`CONFIG GET`).
pub fn matches(pattern: &[u8], text: &[u8], nocase: bool) -> bool {
    let mut skip_longer = false;
    match_from(pattern, 0, text, 0, nocase, &mut skip_longer, 0)
}

/// The byte at `i`, or 0 past the end (C reads the string's terminating NUL there).
fn at(bytes: &[u8], i: usize) -> u8 {
    bytes.get(i).copied().unwrap_or(0)
}

/// A byte as C's `tolower((int)(char)b)` in the C locale sees it: signed, ASCII folded.
fn c_char(b: u8, nocase: bool) -> i32 {
    let b = if nocase { b.to_ascii_lowercase() } else { b };
    i32::from(b as i8)
}

fn same(a: u8, b: u8, nocase: bool) -> bool {
    if nocase {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b
    }
}

/// `stringmatchlen_impl`: `p`/`s` index the pattern and the text. `skip_longer` is Redis's
/// early exit: once the rest of a pattern after a `*` failed at every position, earlier
/// `*`s need not try longer matches.
fn match_from(
    pattern: &[u8],
    mut p: usize,
    text: &[u8],
    mut s: usize,
    nocase: bool,
    skip_longer: &mut bool,
    nesting: usize,
) -> bool {
    if nesting > MAX_STAR_NESTING {
        return false;
    }
    while p < pattern.len() && s < text.len() {
        match pattern[p] {
            b'*' => {
                while at(pattern, p + 1) == b'*' && p + 1 < pattern.len() {
                    p += 1;
                }
                if pattern.len() - p == 1 {
                    return true;
                }
                while s < text.len() {
                    if match_from(pattern, p + 1, text, s, nocase, skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    s += 1;
                }
                *skip_longer = true;
                return false;
            }
            b'?' => s += 1,
            b'[' => {
                p += 1;
                let negate = at(pattern, p) == b'^' && p < pattern.len();
                if negate {
                    p += 1;
                }
                let mut matched = false;
                loop {
                    let left = pattern.len().saturating_sub(p);
                    if at(pattern, p) == b'\\' && left >= 2 {
                        p += 1;
                        if pattern[p] == text[s] {
                            matched = true;
                        }
                    } else if at(pattern, p) == b']' && left >= 1 {
                        break;
                    } else if left == 0 {
                        // Unclosed class: step back so the advance below ends the pattern.
                        p -= 1;
                        break;
                    } else if left >= 3 && pattern[p + 1] == b'-' {
                        let mut start = c_char(pattern[p], false);
                        let mut end = c_char(pattern[p + 2], false);
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        let mut c = c_char(text[s], false);
                        if nocase {
                            start = c_char(start as u8, true);
                            end = c_char(end as u8, true);
                            c = c_char(text[s], true);
                        }
                        p += 2;
                        if c >= start && c <= end {
                            matched = true;
                        }
                    } else if same(pattern[p], text[s], nocase) {
                        matched = true;
                    }
                    p += 1;
                }
                if negate {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                s += 1;
            }
            first => {
                let literal = if first == b'\\' && pattern.len() - p >= 2 {
                    p += 1;
                    pattern[p]
                } else {
                    first
                };
                if !same(literal, text[s], nocase) {
                    return false;
                }
                s += 1;
            }
        }
        p += 1;
        if s == text.len() {
            while p < pattern.len() && pattern[p] == b'*' {
                p += 1;
            }
            break;
        }
    }
    p == pattern.len() && s == text.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        glob_match(pattern.as_bytes(), text.as_bytes())
    }

    #[test]
    fn wildcards() {
        // Like stringmatchlen, nothing matches the empty string (KEYS and SCAN special-case
        // the pattern "*" before matching, so there "*" does find the empty key).
        assert!(!m("*", ""));
        assert!(!m("**", ""));
        assert!(m("*", "anything"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h*llo", "hllo"));
        assert!(m("h*llo", "heeeello"));
        assert!(m("a*", "a"));
        assert!(m("a**", "a"));
        assert!(m("*a*b*", "xxaxxbxx"));
        assert!(!m("*a*b*", "xxbxxaxx"));
        assert!(!m("", "a"));
        assert!(m("", ""));
        assert!(!m("a", ""));
        assert!(!m("?", ""));
        assert!(m("user:*:name", "user:42:name"));
        assert!(!m("user:*:name", "user:42:names"));
    }

    #[test]
    fn classes() {
        assert!(m("h[ae]llo", "hello"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h[b-a]llo", "hbllo"), "reversed bounds");
        assert!(!m("h[a-b]llo", "hcllo"));
        assert!(m("[\\]]", "]"));
        assert!(m("[\\-]", "-"));
        // "[a-]" is the range 'a'..']' (swapped to ']'..'a'), not 'a' or '-' (as Redis does).
        assert!(m("[a-]", "a"));
        assert!(m("[a-]", "]"));
        assert!(!m("[a-]", "-"));
        // An unclosed class matches what it lists so far and ends the pattern.
        assert!(m("a[bc", "ab"));
        assert!(!m("a[bc", "abx"));
        assert!(!m("[", "a"));
        assert!(m("[^", "a"), "an empty negated class matches any byte");
    }

    #[test]
    fn escapes() {
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("a\\?", "a?"));
        assert!(m("a\\", "a\\"), "a trailing backslash is literal");
        assert!(m("\\[a]", "[a]"));
    }

    #[test]
    fn bytes_and_case() {
        // Range bounds are signed chars: 0xC3 (-61) is below 'a'.
        assert!(!glob_match(b"[a-z]", &[0xC3]));
        assert!(glob_match(b"[\x80-\xff]", &[0xC3]));
        assert!(glob_match(b"\xff*", &[0xFF, 0x00, 0x01]));
        assert!(matches(b"HeLLo*", b"hello world", true));
        assert!(matches(b"[A-C]x", b"bX", true));
        assert!(!glob_match(b"HeLLo*", b"hello world"));
    }

    /// Cases checked against Redis 7.0.15's `KEYS`.
    #[test]
    fn follows_stringmatchlen() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "abc", true),
            ("a*", "abc", true),
            ("a*c", "abc", true),
            ("a*d", "abc", false),
            ("h[^e]llo", "hallo", true),
            ("h[\\]]llo", "h]llo", true),
            ("h\\*llo", "h*llo", true),
            ("h\\*llo", "hello", false),
            ("abc", "abcd", false),
            ("abc*", "abc", true),
            ("[abc", "a", true),
            ("[abc", "ab", false),
            (
                "*a*a*a*a*a*a*a*a*b",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                false,
            ),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(m(pattern, text), *expected, "{pattern:?} vs {text:?}");
        }
    }

    #[test]
    fn star_nesting_limit_is_redis() {
        let text = "a".repeat(1001);
        assert!(m(&"*a".repeat(MAX_STAR_NESTING), &text));
        assert!(!m(&"*a".repeat(MAX_STAR_NESTING + 1), &text));
    }

    #[test]
    fn pathological_patterns_finish() {
        // Without Redis's early exit this takes exponential time.
        let pattern = "a*".repeat(30) + "b";
        let text = "a".repeat(60);
        assert!(!m(&pattern, &text));
        let deep = "*a".repeat(5000);
        assert!(!m(&deep, &"a".repeat(4000)));
    }
}
