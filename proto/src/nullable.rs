//! Serde glue that makes decoding as forgiving as Go's: `null` means "empty".

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
