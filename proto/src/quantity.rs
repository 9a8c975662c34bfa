//! `Quantity`: resource amounts like `100m`, `1.5Gi`, `2e3`, stored exactly in nano-units.

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

/// Why a quantity string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid quantity {input:?}: {reason} (want e.g. \"500m\", \"2\", \"64Mi\", \"1.5G\" or \"1e3\")")]
    Invalid { input: String, reason: &'static str },
    #[error("invalid quantity {0:?}: out of range")]
    OutOfRange(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a quantity prints; it keeps the family it was written in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Format {
    /// Powers of 1024: Ki Mi Gi Ti Pi Ei.
    BinarySI,
    /// Powers of 1000: n u m "" k M G T P E.
    #[default]
    DecimalSI,
    /// `1e3`, `5E-3`.
    DecimalExponent,
}

const NANO: i128 = 1_000_000_000;

/// An exact amount with a preferred print format. Equality, ordering and hashing look at
/// the value only, so `1000m == 1` and `1Gi == 1024Mi`. Precision below one nano-unit is
/// rounded up (away from zero), as Kubernetes does.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}
impl Eq for Quantity {}
impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}
impl Hash for Quantity {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.nanos.hash(state);
    }
}

/// Divides rounding away from zero (Kubernetes' "round up").
fn div_away(n: i128, d: i128) -> i128 {
    let q = n / d;
    if n % d == 0 {
        q
    } else if n > 0 {
        q + 1
    } else {
        q - 1
    }
}

fn saturate(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

impl Quantity {
    /// `value` whole units, e.g. `Quantity::new(2, Format::DecimalSI)` prints `2`.
    pub fn new(value: i64, format: Format) -> Self {
        Quantity {
            nanos: i128::from(value) * NANO,
            format,
        }
    }

    /// `milli` thousandths, e.g. `Quantity::new_milli(250, Format::DecimalSI)` prints `250m`.
    pub fn new_milli(milli: i64, format: Format) -> Self {
        Quantity {
            nanos: i128::from(milli) * 1_000_000,
            format,
        }
    }

    /// An exact amount in nano-units.
    pub fn from_nanos(nanos: i128, format: Format) -> Self {
        Quantity { nanos, format }
    }

    /// Shorthand for `new_milli(milli, DecimalSI)`, the usual CPU form.
    pub fn from_milli(milli: i64) -> Self {
        Self::new_milli(milli, Format::DecimalSI)
    }

    /// Shorthand for `new(bytes, BinarySI)`, the usual memory form.
    pub fn from_bytes(bytes: i64) -> Self {
        Self::new(bytes, Format::BinarySI)
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// The exact value in nano-units.
    pub fn as_nanos(&self) -> i128 {
        self.nanos
    }

    /// The value in thousandths, rounded up like Kubernetes' `MilliValue()`.
    pub fn as_milli(&self) -> i64 {
        saturate(div_away(self.nanos, 1_000_000))
    }

    /// The value in whole units, rounded up like Kubernetes' `Value()`.
    pub fn value(&self) -> i64 {
        saturate(div_away(self.nanos, NANO))
    }

    /// The value in bytes (whole units, rounded up); the same number as [`Self::value`].
    pub fn as_i64_bytes(&self) -> i64 {
        self.value()
    }

    /// Sum, keeping `self`'s format; saturates instead of overflowing.
    pub fn add(&self, other: &Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_add(other.nanos),
            format: self.format,
        }
    }

    /// Difference, keeping `self`'s format; saturates instead of overflowing.
    pub fn sub(&self, other: &Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_sub(other.nanos),
            format: self.format,
        }
    }

    /// Parses Kubernetes quantity syntax: `[+-]<digits>[.<digits>]<suffix>` where the
    /// suffix is a binary SI suffix (Ki..Ei), a decimal SI suffix (n u m k M G T P E), an
    /// exponent (`e3`, `E-2`) or nothing.
    pub fn parse(input: &str) -> Result<Quantity> {
        let invalid = |reason| Error::Invalid {
            input: input.to_string(),
            reason,
        };
        let range = || Error::OutOfRange(input.to_string());
        let (neg, rest) = match input.as_bytes().first() {
            None => return Err(invalid("empty string")),
            Some(b'-') => (true, &input[1..]),
            Some(b'+') => (false, &input[1..]),
            Some(_) => (false, input),
        };
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(num_len);
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid("no digits"));
        }
        if frac_part.contains('.') {
            return Err(invalid("more than one decimal point"));
        }
        let (format, exp10, exp2): (Format, i32, u32) = match suffix {
            "" => (Format::DecimalSI, 0, 0),
            "n" => (Format::DecimalSI, -9, 0),
            "u" => (Format::DecimalSI, -6, 0),
            "m" => (Format::DecimalSI, -3, 0),
            "k" => (Format::DecimalSI, 3, 0),
            "M" => (Format::DecimalSI, 6, 0),
            "G" => (Format::DecimalSI, 9, 0),
            "T" => (Format::DecimalSI, 12, 0),
            "P" => (Format::DecimalSI, 15, 0),
            "E" => (Format::DecimalSI, 18, 0),
            "Ki" => (Format::BinarySI, 0, 10),
            "Mi" => (Format::BinarySI, 0, 20),
            "Gi" => (Format::BinarySI, 0, 30),
            "Ti" => (Format::BinarySI, 0, 40),
            "Pi" => (Format::BinarySI, 0, 50),
            "Ei" => (Format::BinarySI, 0, 60),
            s if s.starts_with(['e', 'E']) => {
                let e = &s[1..];
                let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid("bad exponent"));
                }
                let e: i32 = e.parse().map_err(|_| range())?;
                (Format::DecimalExponent, e, 0)
            }
            _ => return Err(invalid("unknown suffix")),
        };
        // Digits below 1e-30 of a nano-unit cannot change the rounded-up result beyond
        // the last kept digit, so keep a bounded number of them and remember the rest.
        let frac_trimmed = frac_part.trim_end_matches('0');
        let keep = usize::try_from(i64::from(exp10) + 9 + 30).unwrap_or(0);
        let (kept, dropped) = frac_trimmed.split_at(frac_trimmed.len().min(keep));
        let mut digits: i128 = 0;
        for b in int_part.bytes().chain(kept.bytes()) {
            digits = digits
                .checked_mul(10)
                .and_then(|d| d.checked_add(i128::from(b - b'0')))
                .ok_or_else(range)?;
        }
        let mut frac_len = kept.len() as i64;
        if !dropped.is_empty() {
            // Stand-in for the nonzero tail so that rounding up still happens.
            digits = digits
                .checked_mul(10)
                .and_then(|d| d.checked_add(1))
                .ok_or_else(range)?;
            frac_len += 1;
        }
        let mut n = digits.checked_mul(1i128 << exp2).ok_or_else(range)?;
        let shift = i64::from(exp10) + 9 - frac_len;
        if shift >= 0 {
            let p = u32::try_from(shift).map_err(|_| range())?;
            let f = 10i128.checked_pow(p).ok_or_else(range)?;
            n = n.checked_mul(f).ok_or_else(range)?;
        } else {
            match u32::try_from(-shift)
                .ok()
                .and_then(|p| 10i128.checked_pow(p))
            {
                Some(f) => n = div_away(n, f),
                // Smaller than any representable amount: rounds up to one nano.
                None => n = i128::from(n != 0),
            }
        }
        Ok(Quantity {
            nanos: if neg { -n } else { n },
            format,
        })
    }

    /// The canonical mantissa and suffix, e.g. `("1536", "Mi")`, as Kubernetes'
    /// `CanonicalizeBytes`: keep the format family, pick the largest suffix that leaves an
    /// integer mantissa; binary values below 1024 or with fractions print as decimal.
    pub fn canonical(&self) -> (String, String) {
        if self.nanos == 0 {
            return ("0".into(), String::new());
        }
        let mut format = self.format;
        if format == Format::BinarySI && (self.nanos.abs() < 1024 * NANO || self.nanos % NANO != 0)
        {
            format = Format::DecimalSI;
        }
        if format == Format::BinarySI {
            let mut m = self.nanos / NANO;
            let mut exp = 0;
            while exp < 6 && m % 1024 == 0 {
                m /= 1024;
                exp += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][exp];
            return (m.to_string(), suffix.to_string());
        }
        // Decimal: exponent (relative to units) is a multiple of 3, from -9 upwards.
        let mut m = self.nanos;
        let mut exp: i32 = -9;
        let cap = if format == Format::DecimalSI {
            18
        } else {
            i32::MAX
        };
        while exp < cap && m % 1000 == 0 {
            m /= 1000;
            exp += 3;
        }
        let suffix = match format {
            Format::DecimalExponent if exp == 0 => String::new(),
            Format::DecimalExponent => format!("e{exp}"),
            _ => match exp {
                -9 => "n",
                -6 => "u",
                -3 => "m",
                0 => "",
                3 => "k",
                6 => "M",
                9 => "G",
                12 => "T",
                15 => "P",
                _ => "E",
            }
            .to_string(),
        };
        (m.to_string(), suffix)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (m, s) = self.canonical();
        write!(f, "{m}{s}")
    }
}

impl FromStr for Quantity {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Quantity::parse(s)
    }
}

impl TryFrom<&str> for Quantity {
    type Error = Error;
    fn try_from(s: &str) -> Result<Self> {
        Quantity::parse(s)
    }
}

impl std::ops::Add for Quantity {
    type Output = Quantity;
    fn add(self, rhs: Quantity) -> Quantity {
        Quantity::add(&self, &rhs)
    }
}

impl std::ops::Sub for Quantity {
    type Output = Quantity;
    fn sub(self, rhs: Quantity) -> Quantity {
        Quantity::sub(&self, &rhs)
    }
}

impl std::ops::AddAssign for Quantity {
    fn add_assign(&mut self, rhs: Quantity) {
        *self = Quantity::add(self, &rhs);
    }
}

impl std::ops::SubAssign for Quantity {
    fn sub_assign(&mut self, rhs: Quantity) {
        *self = Quantity::sub(self, &rhs);
    }
}

impl std::ops::Neg for Quantity {
    type Output = Quantity;
    fn neg(self) -> Quantity {
        Quantity {
            nanos: -self.nanos,
            format: self.format,
        }
    }
}

impl std::iter::Sum for Quantity {
    fn sum<I: Iterator<Item = Quantity>>(iter: I) -> Quantity {
        iter.fold(Quantity::default(), |a, b| a + b)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quantity such as \"500m\" or \"64Mi\", or a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Quantity, E> {
                Quantity::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Quantity, E> {
                Ok(Quantity::new(v, Format::DecimalSI))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Quantity, E> {
                Ok(Quantity::from_nanos(
                    i128::from(v) * NANO,
                    Format::DecimalSI,
                ))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Quantity, E> {
                if !v.is_finite() {
                    return Err(E::custom(format!("invalid quantity {v}")));
                }
                // `{}` prints the shortest decimal that reads back as `v`, never exponents.
                Quantity::parse(&format!("{v}")).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn quantities_print_in_canonical_form() {
        let cases = [
            ("0", "0"),
            ("0Mi", "0"),
            ("0.0", "0"),
            ("1000m", "1"),
            ("1536Mi", "1536Mi"),
            ("1.5Gi", "1536Mi"),
            ("0.5", "500m"),
            ("1G", "1G"),
            ("100m", "100m"),
            ("1", "1"),
            ("1.0", "1"),
            ("1000", "1k"),
            ("1500", "1500"),
            ("1500000", "1500k"),
            ("2Gi", "2Gi"),
            ("1024Mi", "1Gi"),
            ("1Ki", "1Ki"),
            ("1024", "1024"),
            ("1023Ki", "1023Ki"),
            ("0.5Ki", "512"),
            ("1.5Ki", "1536"),
            ("0.5Mi", "512Ki"),
            ("1e3", "1e3"),
            ("1E3", "1e3"),
            ("1e-3", "1e-3"),
            ("1500e0", "1500"),
            ("12e6", "12e6"),
            ("1.5e3", "1500"),
            ("1n", "1n"),
            ("1u", "1u"),
            ("0.000000001", "1n"),
            ("0.0000000001", "1n"),
            ("0.1n", "1n"),
            ("1.1n", "2n"),
            ("-1.1n", "-2n"),
            ("-100m", "-100m"),
            ("-1Gi", "-1Gi"),
            ("-0.5", "-500m"),
            ("+5", "5"),
            (".5", "500m"),
            ("5.", "5"),
            ("1E", "1E"),
            ("1000E", "1000E"),
            ("1Ei", "1Ei"),
            ("1024Ei", "1024Ei"),
            ("2.5k", "2500"),
            ("250M", "250M"),
            ("1000k", "1M"),
            ("128974848", "128974848"),
            ("129e6", "129e6"),
            ("123Mi", "123Mi"),
            ("100Ki", "100Ki"),
            ("007", "7"),
        ];
        for (input, want) in cases {
            assert_eq!(q(input).to_string(), want, "{input}");
            // Canonical output parses back to the same value.
            assert_eq!(q(want), q(input), "{input} vs {want}");
        }
    }

    #[test]
    fn equality_and_order_compare_values_not_spelling() {
        assert_eq!(q("1000m"), q("1"));
        assert_eq!(q("1Gi"), q("1024Mi"));
        assert_eq!(q("1k"), q("1e3"));
        assert!(q("100m") < q("1"));
        assert!(q("1Gi") > q("1G"));
        assert!(q("-1") < q("0"));
        let mut v = [q("2"), q("500m"), q("1Ki"), q("0")];
        v.sort();
        let printed: Vec<String> = v.iter().map(|x| x.to_string()).collect();
        assert_eq!(printed, ["0", "500m", "2", "1Ki"]);
    }

    #[test]
    fn accessors_round_up_like_kubernetes() {
        let cases = [
            ("1", 1000, 1),
            ("100m", 100, 1),
            ("1.5", 1500, 2),
            ("0.1m", 1, 1),
            ("1Ki", 1_024_000, 1024),
            ("64Mi", 67_108_864_000, 67_108_864),
            ("-1.5", -1500, -2),
            ("0", 0, 0),
        ];
        for (input, milli, value) in cases {
            assert_eq!(q(input).as_milli(), milli, "{input} milli");
            assert_eq!(q(input).value(), value, "{input} value");
            assert_eq!(q(input).as_i64_bytes(), value, "{input} bytes");
        }
    }

    #[test]
    fn arithmetic_keeps_the_left_format() {
        let cases = [
            ("1", "500m", "1500m", "500m"),
            ("1Gi", "512Mi", "1536Mi", "512Mi"),
            ("100m", "100m", "200m", "0"),
            ("1", "2", "3", "-1"),
        ];
        for (a, b, sum, diff) in cases {
            assert_eq!(q(a).add(&q(b)).to_string(), sum, "{a}+{b}");
            assert_eq!(q(a).sub(&q(b)).to_string(), diff, "{a}-{b}");
        }
        let total: Quantity = ["100m", "200m", "1"].iter().map(|s| q(s)).sum();
        assert_eq!(total.to_string(), "1300m");
        assert_eq!(Quantity::from_milli(250).to_string(), "250m");
        assert_eq!(Quantity::from_bytes(1 << 30).to_string(), "1Gi");
        assert_eq!(Quantity::new(3, Format::DecimalSI).to_string(), "3");
    }

    #[test]
    fn bad_quantities_are_rejected_with_the_input_in_the_message() {
        let cases = [
            "",
            "abc",
            "1x",
            "1.2.3",
            "--1",
            "1Kii",
            "1ki",
            "e3",
            "1e",
            "1e+",
            "1ee3",
            " 1",
            "1 ",
            "Mi",
            ".",
            "1.5.Gi",
            "1e99999999999",
            "1e40",
            "99999999999999999999999999999999999E",
        ];
        for input in cases {
            let err = Quantity::parse(input).expect_err(input);
            assert!(err.to_string().contains(&format!("{input:?}")), "{err}");
        }
    }

    #[test]
    fn quantities_decode_from_strings_and_numbers_and_encode_as_strings() {
        let cases = [
            ("\"100m\"", "\"100m\""),
            ("1", "\"1\""),
            ("0.5", "\"500m\""),
            ("2048", "\"2048\""),
            ("\"1.5Gi\"", "\"1536Mi\""),
        ];
        for (json, want) in cases {
            let v: Quantity = serde_json::from_str(json).unwrap();
            assert_eq!(serde_json::to_string(&v).unwrap(), want, "{json}");
        }
        assert!(serde_json::from_str::<Quantity>("true").is_err());
        let err = serde_json::from_str::<Quantity>("\"12 apples\"").unwrap_err();
        assert!(err.to_string().contains("12 apples"), "{err}");
    }
}
