//! The demo images build from manifests/images, import, and run (chrooted) from their
//! overlay root filesystems.

mod support;

use std::fs;
use std::process::Command;

use support::*;
use tug_image::demo::{build_demo, DemoOptions, DEMO_IMAGES};
use tug_image::ImageStore;

#[test]
fn demo_images_build_import_and_run_from_their_rootfs() {
    if !std::path::Path::new("/usr/bin/busybox").exists() {
        eprintln!("skipped: /usr/bin/busybox (Debian busybox-static) is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("images");
    let tars = build_demo(&DemoOptions::new(&out)).unwrap();
    assert_eq!(tars.len(), DEMO_IMAGES.len());
    // A second build is served from the cache.
    let mtimes: Vec<_> = tars
        .iter()
        .map(|t| fs::metadata(t).unwrap().modified().unwrap())
        .collect();
    build_demo(&DemoOptions::new(&out)).unwrap();
    for (t, m) in tars.iter().zip(&mtimes) {
        assert_eq!(
            fs::metadata(t).unwrap().modified().unwrap(),
            *m,
            "{}",
            t.display()
        );
    }

    let store = ImageStore::open(&dir.path().join("store")).unwrap();
    for (name, tar) in DEMO_IMAGES.iter().zip(&tars) {
        let images = store.import(tar).unwrap();
        assert_eq!(
            images[0].references,
            vec![format!("docker.io/library/{name}:latest")]
        );
        let image = store.get(name).unwrap();
        assert!(
            image.config.env.iter().any(|e| e.starts_with("PATH=")),
            "{name}"
        );
        let expected_ports: &[&str] = match *name {
            "hello" | "pageview" => &["8080/tcp"],
            "site" => &["80/tcp"],
            _ => &[],
        };
        assert_eq!(image.config.exposed_ports, expected_ports, "{name}");
    }
    // All demo images share their base layer on disk.
    let bases: std::collections::HashSet<_> = store
        .list()
        .iter()
        .map(|i| store.layer_dirs(i).unwrap()[0].clone())
        .collect();
    assert_eq!(bases.len(), 1);

    if !is_root() {
        eprintln!("skipped running the images: needs root");
        return;
    }
    let run = |image: &str, args: &[&str]| -> String {
        let img = store.get(image).unwrap();
        let c = dir.path().join(format!("c-{image}"));
        let (_guard, rootfs) = RootfsGuard::prepare(&store, &img, &c);
        // The child's PATH is the image's, so name chroot by its host path.
        let chroot = ["/usr/sbin/chroot", "/usr/bin/chroot", "/sbin/chroot"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("chroot (coreutils) is installed");
        let out = Command::new(chroot)
            .arg(&rootfs)
            .args(args)
            .env_clear()
            .env("PATH", "/bin")
            .output()
            .unwrap();
        assert!(out.status.success(), "{image} {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(
        run(
            "busybox",
            &["/bin/sh", "-c", "echo hi; ls /tmp >/dev/null; id -un"]
        ),
        "hi\nroot\n"
    );
    assert_eq!(
        run("hello", &["/hello", "--once"]),
        "Hello Kubernetes Beginners!\n"
    );
}
