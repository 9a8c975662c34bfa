//! `IntOrString`: a port number or a port name (`targetPort: 8080` or `targetPort: http`).

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Kubernetes' `intstr.IntOrString`: serialized as a bare JSON number or string.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum IntOrString {
    Int(i32),
    String(String),
}

impl Default for IntOrString {
    fn default() -> Self {
        IntOrString::Int(0)
    }
}

impl From<i32> for IntOrString {
    fn from(v: i32) -> Self {
        IntOrString::Int(v)
    }
}

impl From<&str> for IntOrString {
    fn from(v: &str) -> Self {
        IntOrString::String(v.to_string())
    }
}

impl From<String> for IntOrString {
    fn from(v: String) -> Self {
        IntOrString::String(v)
    }
}

impl fmt::Display for IntOrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntOrString::Int(i) => write!(f, "{i}"),
            IntOrString::String(s) => f.write_str(s),
        }
    }
}

impl IntOrString {
    /// Resolves a value like `maxSurge: 25%` against a total, as Kubernetes'
    /// `GetScaledValueFromIntOrPercent` does: ints are returned as is, percentages are
    /// scaled and rounded up or down. Other strings are an error.
    pub fn scaled_value(&self, total: i32, round_up: bool) -> Result<i32, String> {
        match self {
            IntOrString::Int(i) => Ok(*i),
            IntOrString::String(s) => {
                let pct: i64 = s
                    .strip_suffix('%')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| {
                        format!("invalid value {s:?}: want an integer or a percentage like \"25%\"")
                    })?;
                let product = pct * i64::from(total);
                let v = if round_up {
                    (product + 99).div_euclid(100)
                } else {
                    product.div_euclid(100)
                };
                i32::try_from(v).map_err(|_| format!("value {s:?} of {total} is out of range"))
            }
        }
    }
}

impl Serialize for IntOrString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            IntOrString::Int(i) => s.serialize_i32(*i),
            IntOrString::String(v) => s.serialize_str(v),
        }
    }
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = IntOrString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntOrString, E> {
                i32::try_from(v)
                    .map(IntOrString::Int)
                    .map_err(|_| E::custom(format!("integer {v} out of range for int32")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntOrString, E> {
                i32::try_from(v)
                    .map(IntOrString::Int)
                    .map_err(|_| E::custom(format!("integer {v} out of range for int32")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IntOrString, E> {
                Ok(IntOrString::String(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_or_string_keeps_its_json_type() {
        let cases = [
            ("8080", IntOrString::Int(8080)),
            ("\"http\"", "http".into()),
        ];
        for (json, want) in cases {
            let got: IntOrString = serde_json::from_str(json).unwrap();
            assert_eq!(got, want);
            assert_eq!(serde_json::to_string(&got).unwrap(), json);
        }
        assert!(serde_json::from_str::<IntOrString>("true").is_err());
        assert!(serde_json::from_str::<IntOrString>("3000000000").is_err());
    }

    #[test]
    fn percentages_scale_with_rounding() {
        let cases = [
            (IntOrString::from("25%"), 10, true, 3),
            (IntOrString::from("25%"), 10, false, 2),
            (IntOrString::Int(4), 10, true, 4),
            (IntOrString::from("100%"), 7, false, 7),
        ];
        for (v, total, up, want) in cases {
            assert_eq!(v.scaled_value(total, up).unwrap(), want, "{v} of {total}");
        }
        assert!(IntOrString::from("abc").scaled_value(10, true).is_err());
    }
}
