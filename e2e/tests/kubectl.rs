//! kubectl compatibility: real kubectl binaries (Debian's 1.20 and whatever `kubectl` is
//! on PATH) against a real tug-apiserver, through the generated admin kubeconfig.
//! Skipped, with a message, when no kubectl is installed.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// kubectl binaries to test: `$TUG_KUBECTL` (CI points it at Debian's 1.20) and the one
/// on PATH, deduplicated.
fn kubectls() -> Vec<PathBuf> {
    let mut found = BTreeSet::new();
    if let Some(p) = std::env::var_os("TUG_KUBECTL") {
        let p = PathBuf::from(p);
        if p.is_file() {
            found.insert(p);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(p) = std::env::split_paths(&path)
            .map(|d| d.join("kubectl"))
            .find(|p| p.is_file())
        {
            found.insert(std::fs::canonicalize(&p).unwrap_or(p));
        }
    }
    found.into_iter().collect()
}

struct Kubectl<'a> {
    bin: &'a Path,
    kubeconfig: &'a Path,
}

impl Kubectl<'_> {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(self.bin);
        c.arg("--kubeconfig").arg(self.kubeconfig).args(args);
        // Keep kubectl's discovery cache inside the test's temp dir.
        c.env("HOME", self.kubeconfig.parent().unwrap());
        c
    }

    /// Runs kubectl and returns stdout; panics with both streams when it fails.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.command(args).output().expect("run kubectl");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{} {:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
            self.bin.display(),
            args,
            out.status
        );
        stdout
    }

    /// Runs kubectl expecting failure; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.command(args).output().expect("run kubectl");
        assert!(
            !out.status.success(),
            "kubectl {args:?} unexpectedly succeeded"
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// One sample object per supported kind: (resource name for kubectl, object name, yaml).
const SAMPLES: &[(&str, &str, &str)] = &[
    ("namespaces", "kc-ns", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kc-ns\n"),
    ("configmaps", "kc-cm", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kc-cm\ndata:\n  a: b1\n"),
    ("secrets", "kc-secret", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: kc-secret\nstringData:\n  password: hunter2\n"),
    ("pods", "kc-pod", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kc-pod\n  labels:\n    app: kc\nspec:\n  containers:\n  - name: c\n    image: site:1\n"),
    ("services", "kc-svc", "apiVersion: v1\nkind: Service\nmetadata:\n  name: kc-svc\nspec:\n  selector:\n    app: kc\n  ports:\n  - port: 80\n"),
    ("endpoints", "kc-ep", "apiVersion: v1\nkind: Endpoints\nmetadata:\n  name: kc-ep\nsubsets:\n- addresses:\n  - ip: 10.244.1.5\n  ports:\n  - port: 80\n"),
    ("nodes", "kc-node", "apiVersion: v1\nkind: Node\nmetadata:\n  name: kc-node\n  labels:\n    kubernetes.io/hostname: kc-node\n"),
    ("events", "kc-event", "apiVersion: v1\nkind: Event\nmetadata:\n  name: kc-event\ninvolvedObject:\n  kind: Pod\n  name: kc-pod\n  namespace: default\nreason: Testing\nmessage: hello from kubectl\ntype: Normal\n"),
    ("deployments", "kc-deploy", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: kc-deploy\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: kc-deploy\n  template:\n    metadata:\n      labels:\n        app: kc-deploy\n    spec:\n      containers:\n      - name: c\n        image: site:1\n"),
    ("replicasets", "kc-rs", "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: kc-rs\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: kc-rs\n  template:\n    metadata:\n      labels:\n        app: kc-rs\n    spec:\n      containers:\n      - name: c\n        image: site:1\n"),
    ("jobs", "kc-job", "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: kc-job\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: c\n        image: hello:1\n"),
    ("leases", "kc-lease", "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: kc-lease\nspec:\n  holderIdentity: someone\n  leaseDurationSeconds: 15\n"),
];

fn scenario(k: &Kubectl<'_>, dir: &Path) {
    let version = k.ok(&["version"]);
    assert!(version.contains("Server Version"), "{version}");

    // create / get (table) / get -o yaml / delete for every supported kind.
    for (resource, name, yaml) in SAMPLES {
        let file = write(dir, &format!("{name}.yaml"), yaml);
        let created = k.ok(&["create", "-f", file.to_str().unwrap()]);
        assert!(created.contains("created"), "{resource}: {created}");
        let table = k.ok(&["get", resource]);
        // Events are listed by what happened, like kubectl shows them; the rest by name.
        let (header, row) = if *resource == "events" {
            ("LAST SEEN", "Testing")
        } else {
            ("NAME", *name)
        };
        assert!(
            table.contains(header),
            "{resource} table has no header:\n{table}"
        );
        assert!(
            table.contains(row),
            "{resource} table lacks {row}:\n{table}"
        );
        let yaml_out = k.ok(&["get", resource, name, "-o", "yaml"]);
        assert!(yaml_out.contains(&format!("name: {name}")), "{yaml_out}");
        assert!(yaml_out.contains("resourceVersion:"), "{yaml_out}");
        let again = k.fails(&["create", "-f", file.to_str().unwrap()]);
        assert!(
            again.contains("AlreadyExists") || again.contains("already exists"),
            "{again}"
        );
    }
    // Table columns that kubectl users read.
    let deploy = k.ok(&["get", "deployments"]);
    assert!(
        deploy.contains("READY") && deploy.contains("UP-TO-DATE"),
        "{deploy}"
    );
    let pods_wide = k.ok(&["get", "pods", "-o", "wide"]);
    assert!(pods_wide.contains("NODE"), "{pods_wide}");
    let labelled = k.ok(&["get", "pods", "-l", "app=kc", "-o", "name"]);
    assert_eq!(labelled.trim(), "pod/kc-pod");

    // Client-side apply: create, then change, then no-op.
    let applied = write(
        dir,
        "apply.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kc-applied\n  labels:\n    stage: one\ndata:\n  k: v1\n",
    );
    let out = k.ok(&["apply", "--validate=false", "-f", applied.to_str().unwrap()]);
    assert!(out.contains("created"), "{out}");
    write(
        dir,
        "apply.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kc-applied\n  labels:\n    stage: two\ndata:\n  k: v2\n",
    );
    let out = k.ok(&["apply", "--validate=false", "-f", applied.to_str().unwrap()]);
    assert!(out.contains("configured"), "{out}");
    let got = k.ok(&["get", "configmap", "kc-applied", "-o", "yaml"]);
    assert!(got.contains("stage: two") && got.contains("k: v2"), "{got}");
    assert!(got.contains("last-applied-configuration"), "{got}");
    let out = k.ok(&["apply", "--validate=false", "-f", applied.to_str().unwrap()]);
    assert!(out.contains("unchanged"), "{out}");
    // apply of a Deployment exercises strategic merge on containers.
    let dep = write(
        dir,
        "dep.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: kc-applied-deploy\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: kad\n  template:\n    metadata:\n      labels:\n        app: kad\n    spec:\n      containers:\n      - name: c\n        image: site:1\n",
    );
    k.ok(&["apply", "--validate=false", "-f", dep.to_str().unwrap()]);
    std::fs::write(
        &dep,
        std::fs::read_to_string(&dep)
            .unwrap()
            .replace("site:1", "site:2")
            .replace("replicas: 1", "replicas: 3"),
    )
    .unwrap();
    let out = k.ok(&["apply", "--validate=false", "-f", dep.to_str().unwrap()]);
    assert!(out.contains("configured"), "{out}");
    let got = k.ok(&["get", "deployment", "kc-applied-deploy", "-o", "yaml"]);
    assert!(
        got.contains("image: site:2") && got.contains("replicas: 3"),
        "{got}"
    );

    // get -w sees a change made after it started.
    let mut watch = k
        .command(&["get", "configmaps", "-w", "--request-timeout=20s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kubectl get -w");
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Wait for the initial listing before changing anything.
    let start = Instant::now();
    let mut lines = Vec::new();
    while !lines.iter().any(|l: &String| l.contains("kc-cm"))
        && start.elapsed() < Duration::from_secs(20)
    {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            lines.push(l);
        }
    }
    let watched = write(
        dir,
        "watched.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kc-watched\n",
    );
    k.ok(&["create", "-f", watched.to_str().unwrap()]);
    while !lines.iter().any(|l| l.contains("kc-watched"))
        && start.elapsed() < Duration::from_secs(20)
    {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            lines.push(l);
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(
        lines.iter().any(|l| l.contains("kc-watched")),
        "watch output: {lines:?}"
    );

    // delete everything we made; afterwards the objects are gone.
    for (resource, name, _) in SAMPLES.iter().rev() {
        if *resource == "namespaces" {
            continue;
        }
        let out = k.ok(&["delete", resource, name, "--wait=false"]);
        assert!(out.contains("deleted"), "{out}");
    }
    for (resource, name, _) in SAMPLES {
        if *resource == "pods" || *resource == "namespaces" {
            continue;
        }
        let err = k.fails(&["get", resource, name]);
        assert!(
            err.contains("NotFound") || err.contains("not found"),
            "{resource}: {err}"
        );
    }
    let out = k.ok(&["delete", "namespace", "kc-ns", "--wait=false"]);
    assert!(out.contains("deleted"), "{out}");
    let err = k.fails(&["get", "configmap", "does-not-exist"]);
    assert!(err.contains("not found"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_manages_every_supported_kind_through_the_generated_kubeconfig() {
    let bins = kubectls();
    if bins.is_empty() {
        eprintln!("SKIP: no kubectl installed (set TUG_KUBECTL or put kubectl on PATH)");
        return;
    }
    for bin in bins {
        let dir = tempfile::tempdir().unwrap();
        let server = tug_apiserver::testing::single(dir.path()).await;
        let kubeconfig = server.kubeconfig.clone();
        let work = dir.path().to_path_buf();
        let bin2 = bin.clone();
        let result = tokio::task::spawn_blocking(move || {
            let k = Kubectl {
                bin: &bin2,
                kubeconfig: &kubeconfig,
            };
            scenario(&k, &work)
        })
        .await;
        server.shutdown().await;
        if let Err(e) = result {
            std::panic::resume_unwind(e.into_panic());
        }
        eprintln!("kubectl {} passed", bin.display());
    }
}
