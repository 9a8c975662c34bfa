//! tug-image: the node's image store — OCI / Docker images pulled from registries or
//! imported from tarballs, unpacked once into shared layers, mounted as overlayfs root
//! filesystems for containers.
//!
//! # Layout
//! - [`reference`]: Docker-style reference parsing and normalization.
//! - [`blobs`]: the content-addressed blob store (`blobs/sha256/<hex>`), digest checks.
//! - [`manifest`]: OCI / Docker v2 index, manifest and config documents.
//! - [`layer`]: unpacking a layer (tar, tar+gzip) with whiteouts as overlay expects.
//! - [`import`]: OCI-layout and `docker save` tarballs.
//! - [`registry`]: pulling from OCI / Docker v2 registries; pull-secret credentials.
//! - [`store`]: [`ImageStore`]: image records, import, pull, rootfs, GC, disk usage.
//! - [`rootfs`]: overlay mount and teardown of a container's root filesystem.
//! - [`user`]: the image's User resolved in the rootfs; command/args and env merging.
//! - [`layout`]: building images in memory and writing image tarballs.
//! - [`demo`]: the demo images of `manifests/images/` (`tug-image build-demo`).
//!
//! On disk (`ImageStore::open(root)`): `images.json` (records), `blobs/sha256/<hex>`,
//! `layers/<diff-id hex>/` (one unpacked dir per layer, used as an overlay lower dir),
//! `tmp/` (in-flight downloads).

pub mod blobs;
pub mod demo;
pub mod import;
pub mod layer;
pub mod layout;
pub mod manifest;
pub mod reference;
pub mod registry;
pub mod rootfs;
pub mod store;
pub mod user;

pub use reference::normalize;
pub use registry::{auth_from_docker_config, PullOptions, RegistryAuth};
pub use store::{Error, FsStats, Image, ImageConfig, ImageStore, Result};
pub use user::{resolve_user, Identity};
