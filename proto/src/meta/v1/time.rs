//! `Time` (RFC 3339, seconds) and `MicroTime` (RFC 3339, microseconds) timestamps.

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A timestamp with second precision, written like `2024-01-02T03:04:05Z`.
/// Kubernetes truncates to whole seconds on the wire, so we do too on construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(pub DateTime<Utc>);

impl Time {
    /// The current time, truncated to whole seconds.
    pub fn now() -> Self {
        Self::from(Utc::now())
    }

    /// Parses an RFC 3339 timestamp (any offset; fractions are dropped).
    pub fn parse(s: &str) -> Result<Self, chrono::ParseError> {
        DateTime::parse_from_rfc3339(s).map(|t| Self::from(t.with_timezone(&Utc)))
    }
}

impl From<DateTime<Utc>> for Time {
    fn from(t: DateTime<Utc>) -> Self {
        Time(t.trunc_subsecs(0))
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Secs, true))
    }
}

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Time::parse(&s).map_err(|e| {
            de::Error::custom(format!(
                "invalid time {s:?}: {e} (want RFC 3339, e.g. 2024-01-02T03:04:05Z)"
            ))
        })
    }
}

/// A timestamp with microsecond precision, written like `2024-01-02T03:04:05.123456Z`.
/// Used by Lease renew/acquire times and Event.eventTime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MicroTime(pub DateTime<Utc>);

impl MicroTime {
    /// The current time, truncated to microseconds.
    pub fn now() -> Self {
        Self::from(Utc::now())
    }

    /// Parses an RFC 3339 timestamp (any offset; sub-microsecond digits are dropped).
    pub fn parse(s: &str) -> Result<Self, chrono::ParseError> {
        DateTime::parse_from_rfc3339(s).map(|t| Self::from(t.with_timezone(&Utc)))
    }
}

impl From<DateTime<Utc>> for MicroTime {
    fn from(t: DateTime<Utc>) -> Self {
        MicroTime(t.trunc_subsecs(6))
    }
}

impl fmt::Display for MicroTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Micros, true))
    }
}

impl Serialize for MicroTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MicroTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        MicroTime::parse(&s).map_err(|e| {
            de::Error::custom(format!(
                "invalid time {s:?}: {e} (want RFC 3339, e.g. 2024-01-02T03:04:05.000000Z)"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_prints_whole_seconds_in_utc() {
        let cases = [
            ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05Z"),
            ("2024-01-02T03:04:05.999Z", "2024-01-02T03:04:05Z"),
            ("2024-01-02T05:04:05+02:00", "2024-01-02T03:04:05Z"),
        ];
        for (input, want) in cases {
            assert_eq!(Time::parse(input).unwrap().to_string(), want, "{input}");
        }
    }

    #[test]
    fn micro_time_prints_six_fraction_digits() {
        let cases = [
            ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05.000000Z"),
            (
                "2024-01-02T03:04:05.1234567Z",
                "2024-01-02T03:04:05.123456Z",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                MicroTime::parse(input).unwrap().to_string(),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn time_round_trips_through_json_and_rejects_garbage() {
        let t: Time = serde_json::from_str("\"2024-01-02T03:04:05Z\"").unwrap();
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2024-01-02T03:04:05Z\""
        );
        let err = serde_json::from_str::<Time>("\"yesterday\"").unwrap_err();
        assert!(err.to_string().contains("yesterday"), "{err}");
        assert!(Time::now() <= Time::now());
    }
}
