//! Serde glue that makes encoding and decoding behave like Go's encoding/json.

use serde::{Deserialize, Deserializer};

/// Decodes `null` (or a YAML key with no value, e.g. `labels:`) as the type's empty
/// default. Go's encoding/json does the same for slices and maps, and real manifests rely
/// on it, so a plain `Vec`/`BTreeMap` field would otherwise reject valid input.
pub(crate) fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `skip_serializing_if` for Go's `omitempty` on plain numbers and bools: zero is omitted.
pub(crate) fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}
