//! `Duration`: Go's duration strings (`1h2m3.5s`, `300ms`), parsed and printed like Go.

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid duration {0:?}: want a Go duration like \"1h2m3.5s\" or \"300ms\"")]
    Invalid(String),
    #[error("invalid duration {input:?}: unknown unit {unit:?} (use ns, us, ms, s, m or h)")]
    UnknownUnit { input: String, unit: String },
    #[error("invalid duration {0:?}: out of range")]
    Overflow(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A signed span of time in nanoseconds, like Go's `time.Duration`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub i64);

const NS: i64 = 1;
const US: i64 = 1_000;
const MS: i64 = 1_000_000;
const S: i64 = 1_000_000_000;
const M: i64 = 60 * S;
const H: i64 = 60 * M;

impl Duration {
    pub const fn from_nanos(n: i64) -> Self {
        Duration(n)
    }
    pub const fn from_secs(s: i64) -> Self {
        Duration(s * S)
    }
    pub const fn from_millis(ms: i64) -> Self {
        Duration(ms * MS)
    }
    pub const fn as_nanos(self) -> i64 {
        self.0
    }
    /// The std equivalent; negative durations become zero.
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.0.max(0) as u64)
    }

    /// Parses a Go duration string: an optional sign, then one or more
    /// `<decimal><unit>` pairs with units ns, us (µs, μs), ms, s, m, h; or `0`.
    pub fn parse(input: &str) -> Result<Self> {
        let invalid = || Error::Invalid(input.to_string());
        let (neg, mut rest) = match input.as_bytes().first() {
            Some(b'-') => (true, &input[1..]),
            Some(b'+') => (false, &input[1..]),
            _ => (false, input),
        };
        if rest == "0" {
            return Ok(Duration(0));
        }
        if rest.is_empty() {
            return Err(invalid());
        }
        let mut total: i128 = 0;
        while !rest.is_empty() {
            let num_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let num = &rest[..num_len];
            rest = &rest[num_len..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let scale: i64 = match unit {
                "ns" => NS,
                "us" | "µs" | "μs" => US,
                "ms" => MS,
                "s" => S,
                "m" => M,
                "h" => H,
                "" => return Err(invalid()),
                other => {
                    return Err(Error::UnknownUnit {
                        input: input.to_string(),
                        unit: other.to_string(),
                    })
                }
            };
            let (int, frac) = num.split_once('.').unwrap_or((num, ""));
            if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
                return Err(invalid());
            }
            let int: i128 = if int.is_empty() {
                0
            } else {
                int.parse()
                    .map_err(|_| Error::Overflow(input.to_string()))?
            };
            // Fractions are exact: scale the digits, truncating below one nanosecond.
            let mut frac_ns: i128 = 0;
            let mut div: i128 = 1;
            for c in frac.bytes() {
                if div > 1_000_000_000_000_000_000 {
                    break;
                }
                frac_ns = frac_ns * 10 + i128::from(c - b'0');
                div *= 10;
            }
            total += int * i128::from(scale) + frac_ns * i128::from(scale) / div;
            if total > i128::from(i64::MAX) {
                return Err(Error::Overflow(input.to_string()));
            }
        }
        let total = if neg { -total } else { total };
        Ok(Duration(total as i64))
    }
}

impl FromStr for Duration {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Duration::parse(s)
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Duration(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    }
}

/// Writes `v / unit` with the fraction's trailing zeros removed, like Go's fmtFrac.
fn write_frac(f: &mut fmt::Formatter<'_>, v: u64, unit: u64, digits: usize) -> fmt::Result {
    let int = v / unit;
    let frac = v % unit;
    if frac == 0 {
        write!(f, "{int}")
    } else {
        let s = format!("{frac:0digits$}");
        write!(f, "{int}.{}", s.trim_end_matches('0'))
    }
}

impl fmt::Display for Duration {
    /// Prints like Go's `Duration.String()`: `1h2m3.5s`, `1.5ms`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        if self.0 < 0 {
            f.write_str("-")?;
        }
        let v = self.0.unsigned_abs();
        if v < S as u64 {
            let (unit, digits, name) = if v < US as u64 {
                (1, 0, "ns")
            } else if v < MS as u64 {
                (US as u64, 3, "µs")
            } else {
                (MS as u64, 6, "ms")
            };
            write_frac(f, v, unit, digits)?;
            return f.write_str(name);
        }
        let h = v / H as u64;
        let m = (v % H as u64) / M as u64;
        let rest = v % M as u64;
        if h > 0 {
            write!(f, "{h}h{m}m")?;
        } else if m > 0 {
            write!(f, "{m}m")?;
        }
        write_frac(f, rest, S as u64, 9)?;
        f.write_str("s")
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Duration::parse(&s).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_duration_strings_parse_and_print_canonically() {
        let cases = [
            ("0", 0, "0s"),
            ("0s", 0, "0s"),
            ("1h2m3.5s", H + 2 * M + 3 * S + 500 * MS, "1h2m3.5s"),
            ("300ms", 300 * MS, "300ms"),
            ("1.5ms", 1500 * US, "1.5ms"),
            ("2us", 2 * US, "2µs"),
            ("2µs", 2 * US, "2µs"),
            ("100ns", 100, "100ns"),
            ("-1.5h", -(H + 30 * M), "-1h30m0s"),
            ("90s", 90 * S, "1m30s"),
            ("2h45m", 2 * H + 45 * M, "2h45m0s"),
            (".5s", 500 * MS, "500ms"),
            ("1m0.000000001s", M + 1, "1m0.000000001s"),
        ];
        for (input, nanos, printed) in cases {
            let d = Duration::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(d.0, nanos, "{input}");
            assert_eq!(d.to_string(), printed, "{input}");
            assert_eq!(Duration::parse(printed).unwrap(), d, "{printed}");
        }
    }

    #[test]
    fn bad_duration_strings_are_rejected() {
        for input in ["", "1", "s", "1x", "1..5s", "-", "1h2", "99999999999999h"] {
            assert!(Duration::parse(input).is_err(), "{input:?} should fail");
        }
        let err = Duration::parse("3d").unwrap_err().to_string();
        assert!(err.contains("\"d\""), "{err}");
    }
}
