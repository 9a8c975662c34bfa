//! Shared test fixtures: small images built in memory, and a guard that unmounts.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use tug_image::layout::{build_image, BuiltImage, LayerBuilder};
use tug_image::manifest::RunConfig;
use tug_image::ImageStore;

pub fn run_config(cmd: &[&str]) -> RunConfig {
    RunConfig {
        env: Some(vec!["PATH=/bin".into()]),
        cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
        working_dir: Some("/".into()),
        exposed_ports: Some([("8080/tcp".to_string(), serde_json::json!({}))].into()),
        ..Default::default()
    }
}

/// Two layers: the lower one has /etc/{a,b} and /var/cache/old; the upper one
/// deletes /etc/a (whiteout), makes /var/cache opaque with a new file, adds /bin/app.
pub fn two_layer_image(gzip: bool) -> BuiltImage {
    let mut lower = LayerBuilder::new();
    lower
        .dir("etc", 0o755)
        .unwrap()
        .file("etc/a", b"a", 0o644)
        .unwrap()
        .file("etc/b", b"b", 0o644)
        .unwrap()
        .dir("var", 0o755)
        .unwrap()
        .dir("var/cache", 0o755)
        .unwrap()
        .file("var/cache/old", b"old", 0o644)
        .unwrap();
    let mut upper = LayerBuilder::new();
    upper
        .dir("etc", 0o755)
        .unwrap()
        .file("etc/.wh.a", b"", 0o644)
        .unwrap()
        .dir("var/cache", 0o755)
        .unwrap()
        .file("var/cache/.wh..wh..opq", b"", 0o644)
        .unwrap()
        .file("var/cache/new", b"new", 0o644)
        .unwrap()
        .dir("bin", 0o755)
        .unwrap()
        .file("bin/app", b"#!/bin/sh\necho hi\n", 0o755)
        .unwrap()
        .symlink("bin/link", "app")
        .unwrap();
    build_image(
        vec![lower.finish().unwrap(), upper.finish().unwrap()],
        run_config(&["/bin/app"]),
        gzip,
    )
    .unwrap()
}

pub fn one_layer_image(content: &[u8]) -> BuiltImage {
    let mut l = LayerBuilder::new();
    l.file("data", content, 0o644).unwrap();
    build_image(vec![l.finish().unwrap()], run_config(&["/data"]), true).unwrap()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// Releases a prepared rootfs when dropped, so a failing assertion never leaks a mount.
pub struct RootfsGuard(pub PathBuf);

impl RootfsGuard {
    pub fn prepare(store: &ImageStore, image: &tug_image::Image, dir: &Path) -> (Self, PathBuf) {
        let guard = RootfsGuard(dir.to_path_buf());
        let rootfs = store.prepare_rootfs(image, dir).expect("prepare_rootfs");
        (guard, rootfs)
    }
}

impl Drop for RootfsGuard {
    fn drop(&mut self) {
        if let Err(e) = ImageStore::release_rootfs(&self.0) {
            eprintln!("releasing {}: {e}", self.0.display());
        }
    }
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
