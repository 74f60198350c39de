//! The x87 80-bit `long double` of x86-64 Linux, as far as `INCRBYFLOAT` and `HINCRBYFLOAT`
//! need it.
//!
//! Redis parses both operands with `strtold`, adds them in `long double` (64-bit significand)
//! and prints the sum with `%.17Lf`, trailing zeros trimmed. With only `f64`, `INCRBYFLOAT k
//! 0.1` on `10` would print `10.09999999999999964` instead of Redis's `10.1`, so this module
//! does the same arithmetic exactly: a value is `mantissa × 2^exponent` with a 64-bit
//! mantissa, every conversion is computed with big integers and rounded once, to nearest with
//! ties to even, as glibc and the FPU do.

use std::cmp::Ordering;

/// Exponent of the least significant mantissa bit of the smallest values (subnormals and the
/// smallest normal): 2^-16382 is the smallest normal, with 63 fraction bits below it.
const MIN_EXPONENT: i64 = -16382 - 63;
/// Exponent of the least significant mantissa bit of the largest finite values (< 2^16384).
const MAX_EXPONENT: i64 = 16383 - 63;
/// `string2ld` refuses strings this long or longer (`MAX_LONG_DOUBLE_CHARS`).
const MAX_CHARS: usize = 5 * 1024;

/// A finite or infinite `long double`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LongDouble {
    /// `mantissa × 2^exponent`; zero when `mantissa` is 0. A non-zero mantissa has its top bit
    /// set unless the value is subnormal (`exponent == MIN_EXPONENT`).
    Finite {
        negative: bool,
        mantissa: u64,
        exponent: i64,
    },
    Infinite {
        negative: bool,
    },
}

impl LongDouble {
    const ZERO: LongDouble = LongDouble::Finite {
        negative: false,
        mantissa: 0,
        exponent: 0,
    };

    /// Parses `text` as Redis's `string2ld` does: the whole string must be what `strtold`
    /// reads (decimal or hexadecimal, `inf`/`infinity` in any case, optional sign), no leading
    /// space, not NaN, and neither overflowing nor underflowing to zero.
    pub fn parse(text: &[u8]) -> Option<LongDouble> {
        if text.is_empty() || text.len() >= MAX_CHARS || is_c_space(text[0]) {
            return None;
        }
        let (negative, body) = match text[0] {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
            return Some(LongDouble::Infinite { negative });
        }
        match body {
            [b'0', b'x' | b'X', hex @ ..] => parse_hex(negative, hex),
            _ => parse_decimal(negative, body),
        }
    }

    /// `self + other` rounded to a `long double`, or `None` when the sum is NaN or infinite
    /// (Redis refuses those results).
    pub fn checked_add(self, other: LongDouble) -> Option<LongDouble> {
        let (
            LongDouble::Finite {
                negative: a_neg,
                mantissa: a_man,
                exponent: a_exp,
            },
            LongDouble::Finite {
                negative: b_neg,
                mantissa: b_man,
                exponent: b_exp,
            },
        ) = (self, other)
        else {
            return None;
        };
        if a_man == 0 && b_man == 0 {
            return Some(LongDouble::Finite {
                negative: a_neg && b_neg,
                mantissa: 0,
                exponent: 0,
            });
        }
        if a_man == 0 {
            return Some(other);
        }
        if b_man == 0 {
            return Some(self);
        }
        let base = a_exp.min(b_exp);
        let a = Big::from_u64(a_man).shl((a_exp - base) as u64);
        let b = Big::from_u64(b_man).shl((b_exp - base) as u64);
        let (negative, sum) = if a_neg == b_neg {
            (a_neg, a.add(&b))
        } else {
            match a.cmp(&b) {
                Ordering::Equal => return Some(LongDouble::ZERO),
                Ordering::Greater => (a_neg, a.sub(&b)),
                Ordering::Less => (b_neg, b.sub(&a)),
            }
        };
        match round(negative, &sum, &Big::from_u64(1), base) {
            LongDouble::Infinite { .. } => None,
            finite => Some(finite),
        }
    }

    /// The value as Redis's `ld2string(…, LD_STR_HUMAN)` prints it: `%.17Lf`, then trailing
    /// zeros (and a trailing point) removed, and `-0` written `0`.
    pub fn to_human_string(self) -> String {
        let (negative, mantissa, exponent) = match self {
            LongDouble::Infinite { negative } => {
                return if negative { "-inf" } else { "inf" }.to_string();
            }
            LongDouble::Finite {
                negative,
                mantissa,
                exponent,
            } => (negative, mantissa, exponent),
        };
        let mut text = String::new();
        if negative {
            text.push('-');
        }
        text.push_str(&fixed_17(mantissa, exponent));
        let trimmed = text.trim_end_matches('0').trim_end_matches('.');
        if trimmed == "-0" {
            "0".to_string()
        } else {
            trimmed.to_string()
        }
    }
}

/// `mantissa × 2^exponent` (non-negative) as `%.17f` prints it: exact, rounded half to even.
fn fixed_17(mantissa: u64, exponent: i64) -> String {
    const DECIMALS: usize = 17;
    let scaled = if exponent >= 0 {
        Big::from_u64(mantissa)
            .shl(exponent as u64)
            .mul(&Big::pow10(DECIMALS as u64))
    } else {
        let shift = exponent.unsigned_abs();
        let product = Big::from_u64(mantissa).mul(&Big::pow10(DECIMALS as u64));
        let mut quotient = product.shr(shift);
        let remainder = product.sub(&quotient.shl(shift));
        // Compare the dropped bits with one half of the last kept unit.
        let half = Big::from_u64(1).shl(shift - 1);
        let round_up = match remainder.cmp(&half) {
            Ordering::Greater => true,
            Ordering::Equal => quotient.is_odd(),
            Ordering::Less => false,
        };
        if round_up {
            quotient = quotient.add(&Big::from_u64(1));
        }
        quotient
    };
    let mut digits = scaled.to_decimal();
    if digits.len() <= DECIMALS {
        digits = format!("{}{digits}", "0".repeat(DECIMALS + 1 - digits.len()));
    }
    let point = digits.len() - DECIMALS;
    format!("{}.{}", &digits[..point], &digits[point..])
}

fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Reads an optional exponent (`e`/`p` already matched by the caller) of the form
/// `[+-]digits`; returns `None` when no digit follows (then `strtold` stops before the
/// letter, and the string is refused). The value saturates far beyond any finite result.
fn parse_exponent(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut value: i64 = 0;
    for &d in digits {
        value = (value * 10 + i64::from(d - b'0')).min(1 << 40);
    }
    Some(if negative { -value } else { value })
}

/// Splits a literal's body into integer digits, fraction digits and the exponent after
/// `exponent_marker` (either case): `12.5e3` → (`12`, `5`, 3). `None` when it is malformed (two
/// dots, no digits, junk after the exponent).
fn split_literal(
    body: &[u8],
    is_digit: fn(&u8) -> bool,
    exponent_marker: u8,
) -> Option<(&[u8], &[u8], i64)> {
    let mantissa_end = body
        .iter()
        .position(|b| !(is_digit(b) || *b == b'.'))
        .unwrap_or(body.len());
    let (mantissa_text, rest) = body.split_at(mantissa_end);
    let exponent = match rest {
        [] => 0,
        [marker, exp @ ..] if marker.to_ascii_lowercase() == exponent_marker => {
            parse_exponent(exp)?
        }
        _ => return None,
    };
    let (int_part, frac_part) = match mantissa_text.iter().position(|&b| b == b'.') {
        Some(dot) => (&mantissa_text[..dot], &mantissa_text[dot + 1..]),
        None => (mantissa_text, &b""[..]),
    };
    if frac_part.contains(&b'.') || (int_part.is_empty() && frac_part.is_empty()) {
        return None;
    }
    Some((int_part, frac_part, exponent))
}

fn parse_decimal(negative: bool, body: &[u8]) -> Option<LongDouble> {
    let (int_part, frac_part, exponent) = split_literal(body, u8::is_ascii_digit, b'e')?;
    // value = digits × 10^(exponent - frac digits), with leading and trailing zeros dropped.
    let all: Vec<u8> = int_part.iter().chain(frac_part).copied().collect();
    let mut scale = exponent - frac_part.len() as i64;
    let first = all.iter().position(|&d| d != b'0');
    let Some(first) = first else {
        return Some(LongDouble::Finite {
            negative,
            mantissa: 0,
            exponent: 0,
        });
    };
    let mut last = all.len();
    while all[last - 1] == b'0' {
        last -= 1;
        scale += 1;
    }
    let digits = &all[first..last];
    // The value lies in [10^(magnitude-1), 10^magnitude): beyond these bounds it certainly
    // overflows (max ≈ 1.19e4932) or rounds to zero (min subnormal ≈ 3.6e-4951).
    let magnitude = digits.len() as i64 + scale;
    if !(-4952..=4934).contains(&magnitude) {
        return None;
    }
    let number = Big::from_decimal(digits);
    let value = if scale >= 0 {
        round(
            negative,
            &number.mul(&Big::pow10(scale as u64)),
            &Big::from_u64(1),
            0,
        )
    } else {
        round(negative, &number, &Big::pow10(scale.unsigned_abs()), 0)
    };
    in_range(value)
}

/// A parsed non-zero literal, unless it overflowed to infinity or underflowed to zero:
/// `strtold` reports ERANGE for both and `string2ld` refuses them.
fn in_range(value: LongDouble) -> Option<LongDouble> {
    match value {
        LongDouble::Finite { mantissa, .. } if mantissa != 0 => Some(value),
        _ => None,
    }
}

fn parse_hex(negative: bool, body: &[u8]) -> Option<LongDouble> {
    let (int_part, frac_part, exponent) = split_literal(body, u8::is_ascii_hexdigit, b'p')?;
    let mut number = Big::default();
    for &d in int_part.iter().chain(frac_part) {
        let nibble = (d as char).to_digit(16)?;
        number = number.shl(4).add(&Big::from_u64(u64::from(nibble)));
    }
    if number.is_zero() {
        return Some(LongDouble::Finite {
            negative,
            mantissa: 0,
            exponent: 0,
        });
    }
    let scale = exponent - 4 * frac_part.len() as i64;
    let magnitude = number.bits() as i64 + scale;
    if !(MIN_EXPONENT - 2..=16385).contains(&magnitude) {
        return None;
    }
    in_range(round(negative, &number, &Big::from_u64(1), scale))
}

/// Rounds `numerator / denominator × 2^exp2` (both positive) to the nearest `long double`,
/// ties to even, with gradual underflow and overflow to infinity.
fn round(negative: bool, numerator: &Big, denominator: &Big, exp2: i64) -> LongDouble {
    // The quotient numerator × 2^shift / denominator lies in [2^63, 2^65) for this shift.
    let mut shift = 64 - (numerator.bits() as i64 - denominator.bits() as i64);
    if exp2 - shift < MIN_EXPONENT {
        shift = exp2 - MIN_EXPONENT;
    }
    let (mut quotient, mut remainder, mut divisor) = divide_scaled(numerator, denominator, shift);
    if quotient >= 1 << 64 {
        shift -= 1;
        (quotient, remainder, divisor) = divide_scaled(numerator, denominator, shift);
    }
    let mut exponent = exp2 - shift;
    let round_up = match remainder.shl(1).cmp(&divisor) {
        Ordering::Greater => true,
        Ordering::Equal => quotient & 1 == 1,
        Ordering::Less => false,
    };
    if round_up {
        quotient += 1;
        if quotient == 1 << 64 {
            quotient = 1 << 63;
            exponent += 1;
        }
    }
    divisor.clear();
    if exponent > MAX_EXPONENT {
        return LongDouble::Infinite { negative };
    }
    LongDouble::Finite {
        negative,
        mantissa: quotient as u64,
        exponent: if quotient == 0 { 0 } else { exponent },
    }
}

/// `numerator × 2^shift / denominator` (shift may be negative): quotient (known to be below
/// 2^66), remainder and the divisor actually used.
fn divide_scaled(numerator: &Big, denominator: &Big, shift: i64) -> (u128, Big, Big) {
    let (mut remainder, divisor) = if shift >= 0 {
        (numerator.shl(shift as u64), denominator.clone())
    } else {
        (numerator.clone(), denominator.shl(shift.unsigned_abs()))
    };
    let mut quotient: u128 = 0;
    let mut step = divisor.shl(66);
    for bit in (0..=66).rev() {
        if remainder.cmp(&step) != Ordering::Less {
            remainder = remainder.sub(&step);
            quotient |= 1 << bit;
        }
        step = step.shr(1);
    }
    (quotient, remainder, divisor)
}

/// A minimal unsigned big integer: little-endian 32-bit limbs, no trailing zero limbs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Big {
    limbs: Vec<u32>,
}

impl Big {
    fn from_u64(value: u64) -> Big {
        let mut big = Big {
            limbs: vec![value as u32, (value >> 32) as u32],
        };
        big.trim();
        big
    }

    fn trim(&mut self) {
        while self.limbs.last() == Some(&0) {
            self.limbs.pop();
        }
    }

    fn clear(&mut self) {
        self.limbs.clear();
    }

    fn is_zero(&self) -> bool {
        self.limbs.is_empty()
    }

    fn is_odd(&self) -> bool {
        self.limbs.first().is_some_and(|l| l & 1 == 1)
    }

    fn bits(&self) -> u64 {
        match self.limbs.last() {
            None => 0,
            Some(top) => self.limbs.len() as u64 * 32 - u64::from(top.leading_zeros()),
        }
    }

    /// Decimal digits (ASCII, no leading zeros) as a number.
    fn from_decimal(digits: &[u8]) -> Big {
        let mut big = Big::default();
        for chunk in digits.chunks(9) {
            let mut part = 0u32;
            for &d in chunk {
                part = part * 10 + u32::from(d - b'0');
            }
            big.mul_add_small(10u32.pow(chunk.len() as u32), part);
        }
        big
    }

    fn pow10(n: u64) -> Big {
        let mut big = Big::from_u64(1);
        let mut left = n;
        while left > 0 {
            let step = left.min(9);
            big.mul_add_small(10u32.pow(step as u32), 0);
            left -= step;
        }
        big
    }

    fn mul_add_small(&mut self, factor: u32, addend: u32) {
        let mut carry = u64::from(addend);
        for limb in &mut self.limbs {
            let product = u64::from(*limb) * u64::from(factor) + carry;
            *limb = product as u32;
            carry = product >> 32;
        }
        if carry > 0 {
            self.limbs.push(carry as u32);
        }
        self.trim();
    }

    fn mul(&self, other: &Big) -> Big {
        let mut limbs = vec![0u32; self.limbs.len() + other.limbs.len()];
        for (i, &a) in self.limbs.iter().enumerate() {
            let mut carry = 0u64;
            for (j, &b) in other.limbs.iter().enumerate() {
                let sum = u64::from(a) * u64::from(b) + u64::from(limbs[i + j]) + carry;
                limbs[i + j] = sum as u32;
                carry = sum >> 32;
            }
            let mut k = i + other.limbs.len();
            while carry > 0 {
                let sum = u64::from(limbs[k]) + carry;
                limbs[k] = sum as u32;
                carry = sum >> 32;
                k += 1;
            }
        }
        let mut big = Big { limbs };
        big.trim();
        big
    }

    fn add(&self, other: &Big) -> Big {
        let (long, short) = if self.limbs.len() >= other.limbs.len() {
            (self, other)
        } else {
            (other, self)
        };
        let mut limbs = Vec::with_capacity(long.limbs.len() + 1);
        let mut carry = 0u64;
        for (i, &a) in long.limbs.iter().enumerate() {
            let sum = u64::from(a) + u64::from(short.limbs.get(i).copied().unwrap_or(0)) + carry;
            limbs.push(sum as u32);
            carry = sum >> 32;
        }
        if carry > 0 {
            limbs.push(carry as u32);
        }
        Big { limbs }
    }

    /// `self - other`; requires `self >= other`.
    fn sub(&self, other: &Big) -> Big {
        let mut limbs = Vec::with_capacity(self.limbs.len());
        let mut borrow = 0i64;
        for (i, &a) in self.limbs.iter().enumerate() {
            let mut diff =
                i64::from(a) - i64::from(other.limbs.get(i).copied().unwrap_or(0)) - borrow;
            borrow = 0;
            if diff < 0 {
                diff += 1 << 32;
                borrow = 1;
            }
            limbs.push(diff as u32);
        }
        let mut big = Big { limbs };
        big.trim();
        big
    }

    fn shl(&self, n: u64) -> Big {
        if self.is_zero() {
            return Big::default();
        }
        let words = (n / 32) as usize;
        let bits = (n % 32) as u32;
        let mut limbs = vec![0u32; words];
        limbs.reserve(self.limbs.len() + 1);
        let mut carry = 0u32;
        for &limb in &self.limbs {
            if bits == 0 {
                limbs.push(limb);
            } else {
                limbs.push((limb << bits) | carry);
                carry = limb >> (32 - bits);
            }
        }
        if carry > 0 {
            limbs.push(carry);
        }
        Big { limbs }
    }

    fn shr(&self, n: u64) -> Big {
        let words = (n / 32) as usize;
        if words >= self.limbs.len() {
            return Big::default();
        }
        let bits = (n % 32) as u32;
        let source = &self.limbs[words..];
        let mut limbs = Vec::with_capacity(source.len());
        for (i, &limb) in source.iter().enumerate() {
            if bits == 0 {
                limbs.push(limb);
            } else {
                let high = source.get(i + 1).copied().unwrap_or(0);
                limbs.push((limb >> bits) | (high << (32 - bits)));
            }
        }
        let mut big = Big { limbs };
        big.trim();
        big
    }

    fn cmp(&self, other: &Big) -> Ordering {
        self.limbs
            .len()
            .cmp(&other.limbs.len())
            .then_with(|| self.limbs.iter().rev().cmp(other.limbs.iter().rev()))
    }

    fn to_decimal(&self) -> String {
        if self.is_zero() {
            return "0".to_string();
        }
        let mut chunks = Vec::new();
        let mut rest = self.clone();
        while !rest.is_zero() {
            let mut remainder = 0u64;
            for limb in rest.limbs.iter_mut().rev() {
                let value = (remainder << 32) | u64::from(*limb);
                *limb = (value / 1_000_000_000) as u32;
                remainder = value % 1_000_000_000;
            }
            rest.trim();
            chunks.push(remainder as u32);
        }
        let mut text = String::new();
        for (i, chunk) in chunks.iter().rev().enumerate() {
            if i == 0 {
                text.push_str(&chunk.to_string());
            } else {
                text.push_str(&format!("{chunk:09}"));
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn human(text: &str) -> String {
        LongDouble::parse(text.as_bytes())
            .unwrap_or_else(|| panic!("{text} should parse"))
            .to_human_string()
    }

    fn sum(a: &str, b: &str) -> Option<String> {
        let a = LongDouble::parse(a.as_bytes())?;
        let b = LongDouble::parse(b.as_bytes())?;
        a.checked_add(b).map(LongDouble::to_human_string)
    }

    // Every expected text below was printed by Redis 7.0.15 (INCRBYFLOAT / HINCRBYFLOAT).
    #[test]
    fn sums_match_redis() {
        assert_eq!(sum("10", "0.1").as_deref(), Some("10.1"));
        assert_eq!(sum("3.0e3", "0").as_deref(), Some("3000"));
        assert_eq!(
            sum("3000", "1.1").as_deref(),
            Some("3001.10000000000000009")
        );
        assert_eq!(sum("0.1", "0.2").as_deref(), Some("0.3"));
        assert_eq!(sum("0", "5.0e-20").as_deref(), Some("0"));
        assert_eq!(sum("0", "-5.0e-20").as_deref(), Some("0"));
        assert_eq!(sum("0", "0x10").as_deref(), Some("16"));
        assert_eq!(sum("0", "+1.5").as_deref(), Some("1.5"));
        assert_eq!(sum("0", ".5").as_deref(), Some("0.5"));
        assert_eq!(sum("0", "5.").as_deref(), Some("5"));
        assert_eq!(sum("0", "2e-4950").as_deref(), Some("0"));
        assert_eq!(sum("0", "3.0000000000000000005").as_deref(), Some("3"));
        // An exact tie at the 17th decimal rounds to even.
        assert_eq!(
            sum("0", "0.00000381469726562500").as_deref(),
            Some("0.00000381469726562")
        );
        assert_eq!(sum("1.1e4932", "1e4932"), None);
        assert_eq!(sum("1", "inf"), None);
        assert_eq!(sum("-inf", "inf"), None);
    }

    #[test]
    fn large_values_print_every_digit() {
        let max_double = human("1.7976931348623157e308");
        assert_eq!(
            max_double,
            "179769313486231569995921046774104434048386446944329178485314420765176628523124396354701868608387085564428793419425520689308708363451136055357897278026477617073498977686288394835618163294045594434929537447290627480669417384648879122776218333598953852832103282504751611691208117720159985926376802466863339536384"
        );
        assert_eq!(
            sum("1.7976931348623157e308", "1.7976931348623157e308").as_deref(),
            Some(
                "359538626972463139991842093548208868096772893888658356970628841530353257046248792709403737216774171128857586838851041378617416726902272110715794556052955234146997955372576789671236326588091188869859074894581254961338834769297758245552436667197907705664206565009503223382416235440319971852753604933726679072768"
            )
        );
        let huge = human("1e4000");
        assert_eq!(huge.len(), 4000);
        assert!(huge.starts_with("99999999999999999999654638730996237849324925835069"));
        let near_max = human("1e4932");
        assert_eq!(near_max.len(), 4933);
        assert!(near_max.starts_with("10000000000000000000060189493879638913238377742545"));
        assert!(near_max.ends_with("3707008403466595204838733621633273383631944856989484138444978386656058755310848833689791896484998847550364264104800800578245511762594691161545730891319744107953897993101008217601269310629890308357893793344340072837782716410520818640099771094401772024731084835860689936533035726854175396195351768096519310944631445923638053214575993378468775292865871435742249777979822775014324475845899615096380079899099538453121043851821349178371736640702645304284254885437611441690360616466368202194307769462209963387690446576691969551571041941288302648912827345194286271122230347823246073498285153708579500062656222714954113329293953346495615947784091175883554988117167387650681525781361864450364992605079129770604793291076559668041153558254765774288831330658676910296506538343982699076824147706077401185501337053676875440863113630172067902223837838525802181406003942606507609826320015193807633035586661539150425605940691768637845815434184585255915074081317250319572700370579877977177644345205933505850374212779064837146242765034714569464306865784829936445754893825213995710137567750342556762329137973387913047300554841737506800154984198686923965286147079273203561004647365286049876790788288301130050437207489067798842078443360167772245834103629301041345252122743437501935254370757049878526838283810705343010153283985958550741661374001212323172562230037290597675029278865489570268803618001520280748588481858632332145422181524500970533738858652881625738158955840469334830106366243262210429210258173978186522208306814207038831590332622155464159216193005478809313772661406449321989529908990407599717265354887081027622412165764793106246309910984757869627982700885055259900973567128498437782671492610351088858271463387495833021819318548705558606395846070390500323204636339383655528123657438115225035433947543876805317781492691295772410403746456774175666884503175504415270824258750305653788473882671038340481278188648013647450190431469737277008003041204693859153544058059108384516541261521127088116402349679151317227395183628490922161336429757386698401928682323657056924758648793848799822907606679071280964393541325129231682456669123450140879120137931548652537601508656209183486928384515842973760163601756230697826779237275078471824258664382133759876151537532598429521999758431018087001817485300919479583171049967781322202936864648780744025361452947117776701129210049872555316467204668470989130203733391349501708713181244068921199587314823974568234174792429139799088587794666528769986602820375968045445209219875596678877912103336949894142378173648692130854177898020194629670311101994938157038765957014792056173739623614871557317714453597336202068774935086409386414223375141765601758268418764114651053088281009248246110195084364468926837572992870110411414878770616397817334529367403238061699632089293543118185299881280463481800696201966723511922556078483839325067415562633057448408746541808590342228476964416681055875561781810005936328191844815915658719683522845979901018335050006246392027657149580332319739660376707180429166280658258434773362764563277134220525779869893832824866422909928484939374964071386248088592408142723646533801882861736205992781965360090000802821408763787641023437653119263757280212773694655213507075717622521160227187157631635583682130089364682543007292042009976150135189415923413244100006421082817394988300265734422677548100741829682842668334472314928702968616204691717366798642916146473018363370523427203416579250811577900985980957404830019403600361860520985937973506956557739754741783354728589350876379371163141086538418113791886622720"));
    }

    #[test]
    fn parsing_follows_string2ld() {
        for bad in [
            "", " 1", "1.5 ", "1e", "1e+", "abc", "nan", "-nan", "0x", "0x1p", "1..2", ".",
            "1e-5000", "1e5000", "infin", "1,5",
        ] {
            assert_eq!(LongDouble::parse(bad.as_bytes()), None, "{bad:?}");
        }
        // 5119 characters are accepted, 5120 are not (checked against Redis).
        let long_one = format!("1.{}", "0".repeat(MAX_CHARS - 3));
        assert_eq!(human(&long_one), "1");
        assert_eq!(LongDouble::parse(format!("{long_one}0").as_bytes()), None);
        assert_eq!(
            LongDouble::parse(b"-Infinity"),
            Some(LongDouble::Infinite { negative: true })
        );
        assert_eq!(human("-0"), "0");
        assert_eq!(human("0e99999999999999"), "0");
        assert_eq!(human("0x1.8p1"), "3");
        assert_eq!(human("-2.5"), "-2.5");
        assert_eq!(
            human("123456789012345678901234567890"),
            "123456789012345678899921813504"
        );
    }

    #[test]
    fn rounding_is_to_nearest_even() {
        // 2^64 + 1 is halfway between 2^64 and 2^64 + 2: ties to the even mantissa (2^64).
        assert_eq!(human("18446744073709551617"), "18446744073709551616");
        // 2^64 + 3 is halfway between 2^64 + 2 and 2^64 + 4: ties to 2^64 + 4.
        assert_eq!(human("18446744073709551619"), "18446744073709551620");
        // Just above the tie rounds up.
        assert_eq!(human("18446744073709551617.001"), "18446744073709551618");
    }

    // Random operand pairs and the sums Redis 7.0.15 replied to `SET k a` + `INCRBYFLOAT k b`.
    #[test]
    fn random_sums_match_redis() {
        for (a, b, expected) in [
            (
                "-0.4891099670263084",
                "629e14",
                "62899999999999999.51171875",
            ),
            (
                "2486061241964195453257503.23990",
                "7.873e+299",
                "787300000000000000000832023139441586063418131155917155547724706592642118227053037972186361137611433598009772500733236264548027808237336840056844172741900624971974054621638148019686743550001112763353292882623038571437408199271674486992461124878860594762081736613204517449977435546849563708233405693952",
            ),
            (
                "-4.919e+299",
                "-0.6265784563151799",
                "-491899999999999999992205815663133073252561415764270573194517092895233106352698198981755673857257804330255036355654201938057191767552793503853673012619237917769810593666776945031957994674965213292433233801304287309706655887395644699036758652355570163036970593370159699630653420965236004767010285158400",
            ),
            ("304287", "0.29609818767532015", "304287.29609818767531237"),
            (
                "-2.673e+299",
                "0.49549520060548535",
                "-267300000000000000006318569265868150406591810492252552480101750320364998806990516823687365140118626831309002821129882152738111892430829165134126008598078457764415325013384099068951208123667291764725516237517267370354676188772931561486468293202068389958060109060090634019380146859956154111346260049920",
            ),
            (
                "0.895552847554639031",
                "0.9418790648382476",
                "1.83743191239288663",
            ),
            (
                "6.293e+299",
                "400e0",
                "629300000000000000007106920168203509049873132374989632381971487676502058792391206816487278587822354240947491834635490076926366860227368232394873109870040307853978127033823229233449698288284066536256401613958747577729320187699910770020079426305575096237830959281665087629076515123114360377891698507776",
            ),
            (
                "9998441311053974243805085.19447",
                "-217002",
                "9998441311053974244163584",
            ),
            (
                "-4226139074950020374721974.7485",
                "9.225e+299",
                "922500000000000000020461912917008037157017101699537880198727840188337704096883250463062837918078570599934922383244822282399935531266753551583226956025154869659774327665472405897125128450777757953630257918355731646822891509153784990874002030889952799728195655319060555075208759930720255218994959613952",
            ),
            (
                "0.7088492084601900809",
                "0.404623489445288139883994",
                "1.11347269790547822",
            ),
            (
                "251e30",
                "2502156587344685591864598.62366",
                "251000002502156587343698787827712",
            ),
            (
                "0.4987779621188977",
                "-316050.29004972730763256550",
                "-316049.79127176518872488",
            ),
            (
                "717908.71",
                "0.9123310705629653",
                "717909.62233107056295012",
            ),
            (
                "0.918924",
                "7318559946017519313093892.53952",
                "7318559946017519313092608",
            ),
            (
                "0.440335104338",
                "-803589.46290583396330475807",
                "-803589.02257072962532902",
            ),
            (
                "0.10055192750301978",
                "-2938805529151985659004865.17308",
                "-2938805529151985658888192",
            ),
            (
                "-427115",
                "-7163912324162180315986899.2627",
                "-7163912324162180316397568",
            ),
            (
                "615193.9506002389825880527",
                "14e-29",
                "615193.95060023898258805",
            ),
            (
                "-8651135357401740620502268.79741",
                "-7626813631896733188467371.31680",
                "-16277948989298473808429056",
            ),
            ("0.47035337541679123", "0.897993", "1.36834637541679123"),
            (
                "-0.29640798819596936",
                "-7.693e+299",
                "-769299999999999999973514586746893755657416894772862042715251488225087191681736884869588800727350446342631661614837824087004462229260574644272677244650486390807856334279093966652833114930361568091286420293999198647026701703490284601771056030535009646769114580660880904887887942018829474940572812705792",
            ),
            (
                "-5.726e+299",
                "-5.491e+299",
                "-1121700000000000000008139136562714772159621987529620137964908302141295037557024033419777458556521893750741939226704301720597826094981518048601353847735442215352039118428769775146382418543653003475953463526634843683460401059040608384738268974873810173239000178839023978770851590343545714359931213185024",
            ),
            ("176343", "-302842", "-126499"),
            ("0.479", "334e24", "334000000000000000000000000"),
            (
                "1.504e+299",
                "-139823",
                "150399999999999999999334688261503087077180212476097106440517390912068979910089516170834832089164666496932813254641624701609138380930283964690557144875965695099046369845325933375510028346873428104100343572054161721637338601360207280532621151372220171976557414177281973236528866955665652692842159538176",
            ),
            ("-816365", "891259.2191", "74894.21910000000002583"),
            (
                "4.187e+299",
                "-333877",
                "418700000000000000014230028054594273308998571071885072036501185679784958532063961947821063839615467462069366697818521977307970731505323721751645129567294338693309471631562938883028297247757713831183799175416256786151221229078228577153510387958615703778071544774682012720705757961668365141328388947968",
            ),
            ("-156e-5", "-776910", "-776910.00155999999998357"),
            (
                "0.75632914635419911",
                "0.575299244239128447963765971535961363",
                "1.33162839059332756",
            ),
            ("-980e28", "-894e12", "-9800000000000000893828865196032"),
        ] {
            assert_eq!(sum(a, b).as_deref(), Some(expected), "{a} + {b}");
        }
    }
}
