//! The image store end to end: import of docker-save and OCI-layout tarballs, lookups,
//! overlay root filesystems, removal, GC.

mod support;

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use support::*;
use tug_image::layout::{write_docker_save, write_oci_layout};
use tug_image::{ImageStore, Result};

fn write(path: &Path, bytes: Vec<u8>) {
    fs::write(path, bytes).unwrap();
}

#[test]
fn docker_save_and_oci_layout_tarballs_import_with_and_without_gzip() {
    let img = two_layer_image(true);
    let plain = two_layer_image(false);
    let dir = tempfile::tempdir().unwrap();
    let mut oci = Vec::new();
    write_oci_layout(&mut oci, &[("example.com/team/app:v1", &img)]).unwrap();
    let mut save = Vec::new();
    write_docker_save(&mut save, &[("busybox:1.0", &plain)]).unwrap();
    let cases = [
        ("oci.tar", oci.clone(), "example.com/team/app:v1"),
        ("oci.tar.gz", gzip(&oci), "example.com/team/app:v1"),
        ("save.tar", save.clone(), "docker.io/library/busybox:1.0"),
        ("save.tar.gz", gzip(&save), "docker.io/library/busybox:1.0"),
    ];
    for (name, bytes, reference) in cases {
        let store = ImageStore::open(&dir.path().join(format!("store-{name}"))).unwrap();
        let path = dir.path().join(name);
        write(&path, bytes);
        let images = store
            .import(&path)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(images.len(), 1, "{name}");
        let image = &images[0];
        assert_eq!(image.references, vec![reference.to_string()], "{name}");
        // gzip or not, the config (and so the id) is the same image.
        assert_eq!(image.id, img.config_digest, "{name}");
        assert_eq!(image.config.cmd, vec!["/bin/app"]);
        assert_eq!(image.config.env, vec!["PATH=/bin"]);
        assert_eq!(image.config.exposed_ports, vec!["8080/tcp"]);
        assert!(image.size > 0);
        assert_eq!(store.get(reference).as_ref(), Some(image), "{name}");
        assert_eq!(store.get(&image.id).as_ref(), Some(image), "{name}");
        assert_eq!(
            store.get(&image.id[7..19]).as_ref(),
            Some(image),
            "{name}: short id"
        );
        assert!(store.get("docker.io/library/other:1").is_none());
        let layers = store.layer_dirs(image).unwrap();
        assert_eq!(layers.len(), 2);
        assert!(layers[0].join("etc/a").is_file());
        assert!(fs::symlink_metadata(layers[1].join("etc/a"))
            .unwrap()
            .file_type()
            .is_char_device());
        // The records survive reopening the store.
        drop(store);
        let store = ImageStore::open(&dir.path().join(format!("store-{name}"))).unwrap();
        assert_eq!(store.list(), vec![image.clone()], "{name}");
    }
}

#[test]
fn short_names_and_digest_references_find_imported_images() {
    let img = one_layer_image(b"x");
    let dir = tempfile::tempdir().unwrap();
    let mut oci = Vec::new();
    write_oci_layout(&mut oci, &[("docker.io/library/busybox:latest", &img)]).unwrap();
    let path = dir.path().join("bb.tar");
    write(&path, oci);
    let store = ImageStore::open(&dir.path().join("store")).unwrap();
    let image = store.import(&path).unwrap().remove(0);
    for r in [
        "busybox",
        "busybox:latest",
        "library/busybox",
        "docker.io/library/busybox:latest",
        &format!("busybox@{}", img.manifest_digest),
    ] {
        assert_eq!(store.get(r).as_ref(), Some(&image), "{r}");
    }
    assert!(store.get("busybox:other").is_none());
    assert!(store
        .get(&format!("other@{}", img.manifest_digest))
        .is_none());
}

#[test]
fn identical_layers_are_unpacked_once_and_tags_move_to_the_newest_image() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("store")).unwrap();
    let a = one_layer_image(b"v1");
    let b = one_layer_image(b"v2");
    let mut tar = Vec::new();
    write_oci_layout(&mut tar, &[("app:v1", &a), ("app:latest", &a)]).unwrap();
    let p1 = dir.path().join("a.tar");
    write(&p1, tar);
    let imported = store.import(&p1).unwrap();
    assert_eq!(imported.len(), 1, "one image with two names");
    let first = store.get("app:v1").unwrap();
    assert_eq!(first.references.len(), 2);
    let layer = store.layer_dirs(&first).unwrap().remove(0);
    let ino = fs::metadata(&layer).unwrap().ino();
    // Importing again does not unpack again.
    store.import(&p1).unwrap();
    assert_eq!(fs::metadata(&layer).unwrap().ino(), ino);
    // A new image tagged latest takes the tag; the old one keeps v1.
    let mut tar = Vec::new();
    write_oci_layout(&mut tar, &[("app:latest", &b)]).unwrap();
    let p2 = dir.path().join("b.tar");
    write(&p2, tar);
    store.import(&p2).unwrap();
    assert_eq!(store.get("app:latest").unwrap().id, b.config_digest);
    assert_eq!(
        store.get("app:v1").unwrap().references,
        vec!["docker.io/library/app:v1".to_string()]
    );
}

#[test]
fn archives_that_are_not_images_are_rejected_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("store")).unwrap();
    let mut b = tug_image::layout::LayerBuilder::new();
    b.file("hello.txt", b"hi", 0o644).unwrap();
    let path = dir.path().join("x.tar");
    write(&path, b.finish().unwrap());
    let err = store.import(&path).unwrap_err().to_string();
    assert!(err.contains("neither index.json"), "{err}");
    let err = store
        .import(&dir.path().join("missing.tar"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.tar"), "{err}");
    // A blob whose content does not match its name.
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    let fake = format!("blobs/sha256/{}", "0".repeat(64));
    tar.append_data(&mut h, &fake, &b"evil"[..]).unwrap();
    write(&path, tar.into_inner().unwrap());
    let err = store.import(&path).unwrap_err().to_string();
    assert!(err.contains("digest"), "{err}");
}

#[test]
fn remove_by_reference_keeps_the_image_while_other_names_remain() -> Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("store"))?;
    let img = one_layer_image(b"x");
    let mut tar = Vec::new();
    write_oci_layout(&mut tar, &[("app:v1", &img), ("app:v2", &img)]).unwrap();
    let path = dir.path().join("a.tar");
    write(&path, tar);
    store.import(&path)?;
    store.remove("app:v1")?;
    assert!(store.get("app:v1").is_none());
    assert!(store.get("app:v2").is_some());
    store.remove("app:v2")?;
    assert!(store.list().is_empty());
    assert!(store.remove("app:v2").unwrap_err().is_not_found());
    Ok(())
}

#[test]
fn gc_removes_unused_images_and_orphan_layers_but_keeps_images_in_use() -> Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("store"))?;
    let used = one_layer_image(b"used");
    let unused = one_layer_image(&vec![7u8; 100_000]);
    let mut tar = Vec::new();
    write_oci_layout(&mut tar, &[("used:1", &used), ("unused:1", &unused)]).unwrap();
    let path = dir.path().join("a.tar");
    write(&path, tar);
    store.import(&path)?;
    let before = store.disk_usage()?;
    let used_id = store.get("used:1").unwrap().id;
    let unused_image = store.get("unused:1").unwrap();
    let unused_layer = store.layer_dirs(&unused_image).unwrap().remove(0);
    let in_use: HashSet<String> = [used_id.clone()].into();
    // A zero target removes no image.
    assert!(store.gc(&in_use, 0)?.is_empty());
    assert_eq!(store.list().len(), 2);
    let removed = store.gc(&in_use, u64::MAX)?;
    assert_eq!(removed, vec![unused_image.id.clone()]);
    assert!(store.get("unused:1").is_none());
    assert!(!unused_layer.exists(), "orphan layer removed");
    assert!(store.get("used:1").is_some());
    let after = store.disk_usage()?;
    assert!(after < before, "disk usage {before} -> {after}");
    // The image in use still gets a root filesystem (when we may mount).
    if is_root() {
        let image = store.get("used:1").unwrap();
        let c = tempfile::tempdir().unwrap();
        let (_guard, rootfs) = RootfsGuard::prepare(&store, &image, &c.path().join("c1"));
        assert_eq!(fs::read(rootfs.join("data")).unwrap(), b"used");
    }
    Ok(())
}

#[test]
fn overlay_rootfs_stacks_layers_applies_whiteouts_and_is_released() {
    if !is_root() {
        eprintln!("skipped: mounting overlays needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("store")).unwrap();
    let mut tar = Vec::new();
    write_oci_layout(&mut tar, &[("app:1", &two_layer_image(true))]).unwrap();
    let path = dir.path().join("a.tar");
    write(&path, tar);
    let image = store.import(&path).unwrap().remove(0);
    let c1 = dir.path().join("containers/c1");
    let c2 = dir.path().join("containers/c2");
    {
        let (_g1, r1) = RootfsGuard::prepare(&store, &image, &c1);
        let (_g2, r2) = RootfsGuard::prepare(&store, &image, &c2);
        for r in [&r1, &r2] {
            assert!(!r.join("etc/a").exists(), "whited-out file hidden");
            assert_eq!(fs::read(r.join("etc/b")).unwrap(), b"b");
            assert!(
                !r.join("var/cache/old").exists(),
                "opaque dir hides lower files"
            );
            assert_eq!(fs::read(r.join("var/cache/new")).unwrap(), b"new");
            assert_eq!(fs::read_link(r.join("bin/link")).unwrap(), Path::new("app"));
            assert_eq!(fs::metadata(r).unwrap().mode() & 0o777, 0o755);
        }
        // Writes land in the container's upper dir only.
        fs::write(r1.join("etc/b"), b"changed").unwrap();
        fs::remove_file(r1.join("bin/app")).unwrap();
        assert_eq!(fs::read(c1.join("upper/etc/b")).unwrap(), b"changed");
        assert_eq!(fs::read(r2.join("etc/b")).unwrap(), b"b");
        assert!(r2.join("bin/app").exists());
        // Preparing again (agent restart) reuses the mount.
        assert_eq!(store.prepare_rootfs(&image, &c1).unwrap(), r1);
        assert!(tug_image::rootfs::is_mountpoint(&r1).unwrap());
    }
    for c in [&c1, &c2] {
        assert!(!tug_image::rootfs::is_mountpoint(&c.join("rootfs")).unwrap());
        assert!(!c.exists(), "{} removed", c.display());
    }
    // Releasing twice is fine.
    ImageStore::release_rootfs(&c1).unwrap();
}

#[test]
fn a_single_layer_image_gets_an_overlay_rootfs() {
    if !is_root() {
        eprintln!("skipped: mounting overlays needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("store")).unwrap();
    let mut tar = Vec::new();
    write_oci_layout(&mut tar, &[("one:1", &one_layer_image(b"only"))]).unwrap();
    let path = dir.path().join("a.tar");
    write(&path, tar);
    let image = store.import(&path).unwrap().remove(0);
    let c = dir.path().join("c");
    let (_g, rootfs) = RootfsGuard::prepare(&store, &image, &c);
    assert_eq!(fs::read(rootfs.join("data")).unwrap(), b"only");
    fs::write(rootfs.join("new"), b"w").unwrap();
    assert!(c.join("upper/new").is_file());
}

#[test]
fn gc_keeps_the_layers_of_a_mounted_rootfs_even_if_its_image_is_not_in_use() {
    if !is_root() {
        eprintln!("skipped: mounting overlays needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("store")).unwrap();
    let mut tar = Vec::new();
    write_oci_layout(&mut tar, &[("app:1", &one_layer_image(b"mounted"))]).unwrap();
    let path = dir.path().join("a.tar");
    write(&path, tar);
    let image = store.import(&path).unwrap().remove(0);
    let layer = store.layer_dirs(&image).unwrap().remove(0);
    let c = dir.path().join("c");
    {
        let (_g, rootfs) = RootfsGuard::prepare(&store, &image, &c);
        assert_eq!(
            store.gc(&HashSet::new(), u64::MAX).unwrap(),
            vec![image.id.clone()]
        );
        assert!(layer.is_dir(), "a mounted lower dir survives gc");
        assert_eq!(fs::read(rootfs.join("data")).unwrap(), b"mounted");
    }
    store.gc(&HashSet::new(), 0).unwrap();
    assert!(!layer.exists(), "collected once unmounted");
}

#[test]
fn docker_25_save_tarballs_take_their_names_from_manifest_json() {
    // Docker >= 25 writes an OCI layout whose index.json names only the tag, plus a
    // manifest.json with the full RepoTags and blob paths.
    let img = one_layer_image(b"docker25");
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        tar.append_data(&mut h, path, data).unwrap();
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    let blob_path = |d: &str| format!("blobs/sha256/{}", &d[7..]);
    add(&blob_path(&img.manifest_digest), &img.manifest);
    add(&blob_path(&img.config_digest), &img.config);
    for (d, b) in &img.layers {
        add(&blob_path(d), b);
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": img.manifest_digest,
            "size": img.manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "1.0"}
        }]
    });
    add("index.json", &serde_json::to_vec(&index).unwrap());
    let manifest = serde_json::json!([{
        "Config": blob_path(&img.config_digest),
        "RepoTags": ["myapp:1.0"],
        "Layers": img.layers.iter().map(|(d, _)| blob_path(d)).collect::<Vec<_>>(),
    }]);
    add("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    let bytes = tar.into_inner().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("save.tar");
    write(&path, bytes);
    let store = ImageStore::open(&dir.path().join("store")).unwrap();
    let images = store.import(&path).unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(
        images[0].references,
        vec!["docker.io/library/myapp:1.0".to_string()]
    );
    assert_eq!(images[0].id, img.config_digest);
}
