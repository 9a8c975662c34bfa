//! The `Resource` trait implemented by every top-level kind, and the macro that does it.

use crate::meta::v1::ObjectMeta;

/// Implemented by every top-level kind (Pod, Deployment, ...): the facts a client or the
/// apiserver needs to build URLs, storage keys and list kinds without knowing the type.
pub trait Resource:
    serde::Serialize
    + serde::de::DeserializeOwned
    + Clone
    + Default
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// API group: `""` for core, `"apps"`, `"batch"`, `"coordination.k8s.io"`.
    const GROUP: &'static str;
    /// API version inside the group, e.g. `"v1"`.
    const VERSION: &'static str;
    /// `apiVersion` as written in objects: `"v1"`, `"apps/v1"`, ...
    const API_VERSION: &'static str;
    /// `kind` as written in objects, e.g. `"Pod"`.
    const KIND: &'static str;
    /// Lower-case plural used in URLs and storage keys, e.g. `"pods"`.
    const PLURAL: &'static str;
    /// Whether objects live inside a namespace.
    const NAMESPACED: bool;

    fn metadata(&self) -> &ObjectMeta;
    fn metadata_mut(&mut self) -> &mut ObjectMeta;

    /// The kind of a list of this resource, e.g. `"PodList"`.
    fn list_kind() -> String {
        format!("{}List", Self::KIND)
    }
}

/// Implements [`Resource`] for a kind struct that has `api_version`, `kind` and
/// `metadata` fields, plus `with_type_meta()`/`set_type_meta()` helpers that fill in
/// `apiVersion` and `kind` (the wire needs them; Rust code usually does not care).
macro_rules! impl_resource {
    ($ty:ty, group = $group:expr, version = $version:expr, api_version = $api:expr,
     kind = $kind:expr, plural = $plural:expr, namespaced = $ns:expr) => {
        impl $crate::Resource for $ty {
            const GROUP: &'static str = $group;
            const VERSION: &'static str = $version;
            const API_VERSION: &'static str = $api;
            const KIND: &'static str = $kind;
            const PLURAL: &'static str = $plural;
            const NAMESPACED: bool = $ns;
            fn metadata(&self) -> &$crate::meta::v1::ObjectMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut $crate::meta::v1::ObjectMeta {
                &mut self.metadata
            }
        }

        impl $ty {
            /// Sets `apiVersion` and `kind` to this type's values.
            pub fn set_type_meta(&mut self) {
                self.api_version = <$ty as $crate::Resource>::API_VERSION.to_string();
                self.kind = <$ty as $crate::Resource>::KIND.to_string();
            }

            /// Returns `self` with `apiVersion` and `kind` filled in.
            pub fn with_type_meta(mut self) -> Self {
                self.set_type_meta();
                self
            }
        }
    };
}
pub(crate) use impl_resource;
