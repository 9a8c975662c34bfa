//! The demo images of `manifests/images/`, compiled with rustc and packaged as OCI layouts.
