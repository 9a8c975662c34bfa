//! `ByteString`: raw bytes carried as base64 text (Secret.data, ConfigMap.binaryData).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// Bytes that serialize as a standard base64 string, like Go's `[]byte` in JSON.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteString(pub Vec<u8>);

impl std::fmt::Debug for ByteString {
    // Never print the bytes: they are usually secret material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ByteString(<{} bytes>)", self.0.len())
    }
}

impl From<Vec<u8>> for ByteString {
    fn from(v: Vec<u8>) -> Self {
        ByteString(v)
    }
}

impl From<&[u8]> for ByteString {
    fn from(v: &[u8]) -> Self {
        ByteString(v.to_vec())
    }
}

impl From<&str> for ByteString {
    fn from(v: &str) -> Self {
        ByteString(v.as_bytes().to_vec())
    }
}

impl Serialize for ByteString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for ByteString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        // Tolerate line-wrapped base64 as produced by `base64` without `-w0`.
        let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        STANDARD
            .decode(compact.as_bytes())
            .map(ByteString)
            .map_err(|e| de::Error::custom(format!("invalid base64 data: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_as_base64_and_debug_hides_them() {
        let b = ByteString::from("hunter2");
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(json, "\"aHVudGVyMg==\"");
        assert_eq!(serde_json::from_str::<ByteString>(&json).unwrap(), b);
        assert!(!format!("{b:?}").contains("hunter2"));
        let err = serde_json::from_str::<ByteString>("\"not base64!\"").unwrap_err();
        assert!(err.to_string().contains("base64"), "{err}");
    }
}
