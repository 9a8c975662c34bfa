//! The demo images of `manifests/images/`: std-only Rust programs compiled as static
//! binaries with rustc, plus busybox from Debian's busybox-static, packaged as OCI
//! layout tarballs tagged `docker.io/library/<name>:latest` (no image can be
//! downloaded on these hosts).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::layout::{self, LayerBuilder};
use crate::manifest::RunConfig;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("compiling {source_file} failed (is rustc on PATH?):\n{stderr}")]
    Compile {
        source_file: PathBuf,
        stderr: String,
    },
    #[error("demo image {name}: {path}: {source}")]
    Io {
        name: String,
        path: PathBuf,
        source: io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The images `build_demo` writes, as `<out>/<name>.tar`.
pub const DEMO_IMAGES: [&str; 5] = ["hello", "site", "pageview", "memconsumer", "busybox"];

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where the tarballs (and compiled binaries, under `bin/`) go.
    pub out: PathBuf,
    /// `manifests/images` (one `<program>/main.rs` per program).
    pub sources: PathBuf,
    /// The static busybox to package.
    pub busybox: PathBuf,
    /// Rebuild even when the tarballs are newer than their sources.
    pub force: bool,
}

impl DemoOptions {
    pub fn new(out: &Path) -> DemoOptions {
        DemoOptions {
            out: out.to_path_buf(),
            sources: default_sources(),
            busybox: PathBuf::from("/usr/bin/busybox"),
            force: false,
        }
    }
}

/// `manifests/images` of this repository.
pub fn default_sources() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../manifests/images")
}

const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const SITE_INDEX: &str = "<!DOCTYPE html>
<html>
<head><title>tug static site</title></head>
<body>
<h1>Hello from the static site!</h1>
<p>Served by a tug pod from the locally built <code>site</code> image.</p>
</body>
</html>
";

/// Builds every demo image whose tarball is missing or older than its inputs;
/// returns the tarball paths in `DEMO_IMAGES` order.
pub fn build_demo(opts: &DemoOptions) -> Result<Vec<PathBuf>> {
    let io_err = |name: &str, path: &Path| {
        let (name, path) = (name.to_string(), path.to_path_buf());
        move |source| Error::Io { name, path, source }
    };
    let bin = opts.out.join("bin");
    fs::create_dir_all(&bin).map_err(io_err("demo", &bin))?;
    let mut out = Vec::new();
    for name in DEMO_IMAGES {
        let tar = opts.out.join(format!("{name}.tar"));
        let (program, input) = match name {
            "busybox" => (None, opts.busybox.clone()),
            "site" => (Some("hello"), opts.sources.join("hello/main.rs")),
            p => (Some(p), opts.sources.join(format!("{p}/main.rs"))),
        };
        out.push(tar.clone());
        if !opts.force && newer(&tar, &input) {
            continue;
        }
        let payload = match program {
            Some(p) => {
                let binary = bin.join(p);
                if opts.force || !newer(&binary, &input) {
                    compile(&input, &binary)?;
                }
                fs::read(&binary).map_err(io_err(name, &binary))?
            }
            None => fs::read(&opts.busybox).map_err(io_err(name, &opts.busybox))?,
        };
        let image = assemble(name, &payload, &opts.busybox).map_err(io_err(name, &tar))?;
        let reference = format!("docker.io/library/{name}:latest");
        let tmp = tar.with_extension("tar.tmp");
        let file = fs::File::create(&tmp).map_err(io_err(name, &tmp))?;
        layout::write_oci_layout(io::BufWriter::new(file), &[(&reference, &image)])
            .map_err(io_err(name, &tmp))?;
        fs::rename(&tmp, &tar).map_err(io_err(name, &tar))?;
    }
    Ok(out)
}

fn mtime(p: &Path) -> Option<SystemTime> {
    fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Whether `target` exists and is newer than `input`.
fn newer(target: &Path, input: &Path) -> bool {
    match (mtime(target), mtime(input)) {
        (Some(t), Some(i)) => t > i,
        _ => false,
    }
}

fn compile(source_file: &Path, binary: &Path) -> Result<()> {
    let output = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args([
            "-O",
            "-C",
            "target-feature=+crt-static",
            "-C",
            "strip=symbols",
        ])
        .args(["--edition", "2021", "-o"])
        .arg(binary)
        .arg(source_file)
        .output()
        .map_err(|source| Error::Io {
            name: "rustc".into(),
            path: source_file.to_path_buf(),
            source,
        })?;
    if !output.status.success() {
        return Err(Error::Compile {
            source_file: source_file.to_path_buf(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(())
}

/// The layer every demo image starts from (shared on disk between them): the usual
/// top-level dirs, /tmp, and passwd/group so user names resolve.
fn base_layer() -> io::Result<Vec<u8>> {
    let mut l = LayerBuilder::new();
    for (dir, mode) in [
        ("bin", 0o755),
        ("dev", 0o755),
        ("etc", 0o755),
        ("home", 0o755),
        ("proc", 0o555),
        ("root", 0o700),
        ("sys", 0o555),
        ("tmp", 0o1777),
        ("usr", 0o755),
        ("usr/bin", 0o755),
        ("var", 0o755),
    ] {
        l.dir(dir, mode)?;
    }
    l.file(
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        0o644,
    )?;
    l.file("etc/group", b"root:x:0:\nnogroup:x:65534:\n", 0o644)?;
    l.finish()
}

fn run_config(entrypoint: &[&str], cmd: &[&str], env: &[&str], ports: &[&str]) -> RunConfig {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut all_env = vec![PATH_ENV.to_string()];
    all_env.extend(strings(env));
    RunConfig {
        user: None,
        exposed_ports: (!ports.is_empty()).then(|| {
            ports
                .iter()
                .map(|p| (p.to_string(), serde_json::json!({})))
                .collect::<BTreeMap<_, _>>()
        }),
        env: Some(all_env),
        entrypoint: (!entrypoint.is_empty()).then(|| strings(entrypoint)),
        cmd: (!cmd.is_empty()).then(|| strings(cmd)),
        working_dir: Some("/".into()),
    }
}

/// Two layers (base + the program) and the image config for one demo image.
fn assemble(name: &str, payload: &[u8], busybox: &Path) -> io::Result<layout::BuiltImage> {
    let mut app = LayerBuilder::new();
    let config = match name {
        "busybox" => {
            app.file("bin/busybox", payload, 0o755)?;
            for applet in busybox_applets(busybox) {
                if applet != "busybox" {
                    app.symlink(&format!("bin/{applet}"), "busybox")?;
                }
            }
            run_config(&[], &["sh"], &[], &[])
        }
        "site" => {
            app.file("hello", payload, 0o755)?;
            app.dir("srv", 0o755)?;
            app.dir("srv/www", 0o755)?;
            app.file("srv/www/index.html", SITE_INDEX.as_bytes(), 0o644)?;
            run_config(
                &["/hello"],
                &[],
                &["PORT=80", "SITE_DIR=/srv/www"],
                &["80/tcp"],
            )
        }
        "memconsumer" => {
            app.file("memconsumer", payload, 0o755)?;
            run_config(&["/memconsumer"], &[], &[], &[])
        }
        program => {
            app.file(program, payload, 0o755)?;
            run_config(&[&format!("/{program}")], &[], &[], &["8080/tcp"])
        }
    };
    layout::build_image(vec![base_layer()?, app.finish()?], config, true)
}

/// busybox's applets (`busybox --list`), or a core set if it cannot be run.
fn busybox_applets(busybox: &Path) -> Vec<String> {
    let listed = Command::new(busybox)
        .arg("--list")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.contains('/'))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    if !listed.is_empty() {
        return listed;
    }
    [
        "sh", "ls", "cat", "echo", "env", "hostname", "ps", "sleep", "true", "false", "wget", "nc",
        "id", "mkdir", "rm", "cp", "mv", "grep", "top", "kill", "date", "uname",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}
