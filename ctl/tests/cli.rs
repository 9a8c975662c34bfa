//! `tug apply/get/delete` against a real in-process apiserver, with the repo's manifests.

use std::path::{Path, PathBuf};
use std::time::Duration;
use tug_apiserver::testing::TestServer;

/// Runs tug-controllers beside a test apiserver for as long as it lives.
struct Controllers(tokio::task::JoinHandle<()>);

impl Drop for Controllers {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A control plane as users have it: the apiserver plus tug-controllers, whose garbage
/// collector and namespace controller finish foreground and namespace deletions that
/// `tug delete` waits for.
async fn control_plane(dir: &Path) -> (TestServer, Controllers) {
    let server = tug_apiserver::testing::single(dir).await;
    let config = tug_client::Config::from_kubeconfig_file(&server.kubeconfig).unwrap();
    let client = tug_client::Client::new(config).unwrap();
    let mut controllers = tug_controllers::Config::new(client);
    controllers.leader_elect = false;
    let handle = tokio::spawn(async move {
        if let Err(e) = tug_controllers::run(controllers).await {
            eprintln!("tug-controllers stopped: {e:#}");
        }
    });
    (server, Controllers(handle))
}

struct Output {
    code: i32,
    out: String,
    err: String,
}

async fn tug(server: &TestServer, args: &[&str]) -> Output {
    let kubeconfig = server.kubeconfig.to_string_lossy().into_owned();
    let mut full = vec!["tug", "--kubeconfig", kubeconfig.as_str()];
    full.extend_from_slice(args);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = tug_ctl::run(full, &mut out, &mut err).await;
    Output {
        code,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
    }
}

fn manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[tokio::test]
async fn the_seed_manifests_apply_get_and_delete_like_kubectl() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _controllers) = control_plane(dir.path()).await;
    let m = manifests().to_string_lossy().into_owned();

    let r = tug(&server, &["apply", "-f", &m]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(
        r.out,
        "job.batch/greeter created\n\
         namespace/prod created\n\
         service/my-service created\n\
         deployment.apps/static-site-deployment created\n\
         service/web created\n"
    );

    let r = tug(&server, &["apply", "-f", &m]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(
        r.out,
        "job.batch/greeter unchanged\n\
         namespace/prod unchanged\n\
         service/my-service unchanged\n\
         deployment.apps/static-site-deployment unchanged\n\
         service/web unchanged\n"
    );

    // A changed file is `configured`, and the change is on the server.
    let deploy = std::fs::read_to_string(manifests().join("static-site-deployment.yaml"))
        .unwrap()
        .replace("replicas: 2", "replicas: 3");
    let changed = write(dir.path(), "deploy.yaml", &deploy);
    let r = tug(&server, &["apply", "-f", &changed]).await;
    assert_eq!(
        r.out, "deployment.apps/static-site-deployment configured\n",
        "{}",
        r.err
    );
    let r = tug(
        &server,
        &["get", "deploy", "static-site-deployment", "-o", "json"],
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(v["spec"]["replicas"], 3);
    assert_eq!(v["kind"], "Deployment");
    assert!(
        v["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap()
            .contains("\"replicas\":3")
    );

    // Tables: upper-case headers, names in the first column.
    let r = tug(&server, &["get", "deployments"]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    let header = r.out.lines().next().unwrap();
    assert!(header.starts_with("NAME "), "{}", r.out);
    assert!(
        r.out
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("static-site-deployment   "),
        "{}",
        r.out
    );

    let r = tug(&server, &["get", "svc", "-A"]).await;
    assert!(r.out.starts_with("NAMESPACE "), "{}", r.out);
    assert!(
        r.out
            .lines()
            .any(|l| l.starts_with("prod ") && l.contains("my-service")),
        "{}",
        r.out
    );
    assert!(
        r.out
            .lines()
            .any(|l| l.starts_with("default ") && l.contains("web")),
        "{}",
        r.out
    );

    let r = tug(&server, &["get", "svc", "-n", "prod", "-o", "wide"]).await;
    assert!(r.out.contains("my-service"), "{}", r.out);

    let r = tug(&server, &["get", "svc", "-o", "name", "-l", "!nothing"]).await;
    assert!(r.out.lines().any(|l| l == "service/web"), "{}", r.out);

    let r = tug(&server, &["get", "jobs", "-o", "yaml"]).await;
    assert!(
        r.out.starts_with("apiVersion: v1\nkind: List\n"),
        "{}",
        r.out
    );
    assert!(r.out.contains("name: greeter"), "{}", r.out);

    let r = tug(&server, &["get", "svc", "web", "-o", "yaml"]).await;
    assert!(
        r.out.starts_with("apiVersion: v1\nkind: Service\n"),
        "{}",
        r.out
    );

    // KIND/NAME arguments, several kinds at once.
    let r = tug(
        &server,
        &[
            "get",
            "svc/web",
            "deploy/static-site-deployment",
            "-o",
            "name",
        ],
    )
    .await;
    assert_eq!(
        r.out, "service/web\ndeployment.apps/static-site-deployment\n",
        "{}",
        r.err
    );
    let r = tug(
        &server,
        &["get", "svc/web", "deploy/static-site-deployment"],
    )
    .await;
    assert_eq!(r.out.matches("NAME ").count(), 2, "{}", r.out);
    let r = tug(
        &server,
        &[
            "get",
            "svc/web",
            "svc/my-service",
            "-n",
            "prod",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(r.code, 1, "web is not in prod");
    let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(v["metadata"]["name"], "my-service");

    // (default has the Deployment's pods: the controllers are running.)
    let r = tug(&server, &["get", "pods", "-n", "prod"]).await;
    assert_eq!(r.code, 0);
    assert_eq!(r.err, "No resources found in prod namespace.\n");

    let r = tug(&server, &["get", "deploy", "nope", "-o", "yaml"]).await;
    assert_eq!((r.code, r.out.as_str()), (1, ""));
    let r = tug(&server, &["get", "deploy", "nope"]).await;
    assert_eq!(r.code, 1);
    assert!(
        r.err.contains("NotFound") && r.err.contains("nope"),
        "{}",
        r.err
    );

    let r = tug(&server, &["get", "bogus"]).await;
    assert_eq!(r.code, 1);
    assert!(
        r.err.contains("doesn't have a resource type \"bogus\""),
        "{}",
        r.err
    );

    // delete -f removes what apply created, namespaces after their contents.
    let r = tug(&server, &["delete", "-f", &m]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(
        r.out,
        "job.batch \"greeter\" deleted\n\
         service \"my-service\" deleted\n\
         deployment.apps \"static-site-deployment\" deleted\n\
         service \"web\" deleted\n\
         namespace \"prod\" deleted\n"
    );
    let r = tug(&server, &["get", "deploy", "-o", "name"]).await;
    assert_eq!(r.out, "");

    server.shutdown().await;
}

#[tokio::test]
async fn bad_documents_are_reported_and_the_good_ones_applied() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _controllers) = control_plane(dir.path()).await;
    let file = write(
        dir.path(),
        "mixed.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: good}\ndata: {a: b}\n\
         ---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: two\n\
         ---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: mismatch}\nspec:\n  selector: {matchLabels: {app: a}}\n  template:\n    metadata: {labels: {app: b}}\n    spec:\n      containers: [{name: c, image: i}]\n",
    );
    let r = tug(&server, &["apply", "-f", &file]).await;
    assert_eq!(r.code, 1);
    assert_eq!(r.out, "configmap/good created\n");
    assert!(
        r.err.contains(&format!(
            "error: {file}: document 2 (Deployment \"web\"): spec.replicas: invalid type: string \"two\", expected i32"
        )),
        "{}",
        r.err
    );
    // The server's validation (422) is shown with the document it came from.
    assert!(
        r.err.contains(&format!(
            "error: {file}: document 3 (Deployment \"mismatch\"): Error from server (Invalid)"
        )),
        "{}",
        r.err
    );
    // Nothing of the bad documents reached the cluster.
    let r = tug(&server, &["get", "deploy", "-o", "name"]).await;
    assert_eq!(r.out, "");

    // A manifest namespace that contradicts -n is refused.
    let other = write(
        dir.path(),
        "ns.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: prod}\n",
    );
    let r = tug(&server, &["apply", "-n", "default", "-f", &other]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("--namespace=prod"), "{}", r.err);

    // Missing files name the path.
    let r = tug(&server, &["apply", "-f", "/nonexistent.yaml"]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("/nonexistent.yaml"), "{}", r.err);
    server.shutdown().await;
}

#[tokio::test]
async fn delete_by_name_reports_each_object() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _controllers) = control_plane(dir.path()).await;
    let file = write(
        dir.path(),
        "cms.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: {x: y}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, labels: {x: y}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
    );
    assert_eq!(tug(&server, &["apply", "-f", &file]).await.code, 0);

    let r = tug(
        &server,
        &[
            "delete",
            "cm",
            "a",
            "missing",
            "--grace-period",
            "0",
            "--cascade=foreground",
        ],
    )
    .await;
    assert_eq!(r.code, 1);
    assert_eq!(r.out, "configmap \"a\" deleted\n");
    assert!(
        r.err.contains("NotFound") && r.err.contains("\"missing\""),
        "{}",
        r.err
    );

    let r = tug(&server, &["delete", "configmaps", "-l", "x=y"]).await;
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "configmap \"b\" deleted\n"),
        "{}",
        r.err
    );

    let r = tug(&server, &["delete", "configmap/c"]).await;
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "configmap \"c\" deleted\n"),
        "{}",
        r.err
    );

    // A pod on a node terminates gracefully: delete waits for it (here: in vain, there
    // is no node agent), unless told not to.
    let pod = write(
        dir.path(),
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  nodeName: n1\n  containers: [{name: c, image: i}]\n",
    );
    assert_eq!(tug(&server, &["apply", "-f", &pod]).await.code, 0);
    let r = tug(&server, &["delete", "pod", "p", "--timeout", "1"]).await;
    assert_eq!(r.code, 1, "{}", r.out);
    assert_eq!(r.out, "pod \"p\" deleted\n");
    assert!(
        r.err.contains("timed out waiting for pod \"p\""),
        "{}",
        r.err
    );
    let r = tug(&server, &["delete", "pod", "p", "--wait=false"]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    let r = tug(&server, &["delete", "pod", "p", "--grace-period", "0"]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(tug(&server, &["get", "pod", "p"]).await.code, 1);

    let r = tug(&server, &["delete", "cm"]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("no name was specified"), "{}", r.err);
    server.shutdown().await;
}

#[tokio::test]
async fn get_watch_prints_new_rows_as_they_happen() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _controllers) = control_plane(dir.path()).await;
    let file = write(
        dir.path(),
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: first}\n",
    );
    assert_eq!(tug(&server, &["apply", "-f", &file]).await.code, 0);
    let later = write(
        dir.path(),
        "later.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: second}\n",
    );

    let kubeconfig = server.kubeconfig.to_string_lossy().into_owned();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let watch = tokio::time::timeout(
        Duration::from_secs(3),
        tug_ctl::run(
            ["tug", "--kubeconfig", &kubeconfig, "get", "cm", "-w"],
            &mut out,
            &mut err,
        ),
    );
    let change = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        tug(&server, &["apply", "-f", &later]).await
    };
    let (watched, applied) = tokio::join!(watch, change);
    assert!(
        watched.is_err(),
        "get -w ended on its own: {}",
        String::from_utf8_lossy(&err)
    );
    assert_eq!(applied.code, 0);
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("NAME "), "{out}");
    assert!(lines.iter().any(|l| l.starts_with("first ")), "{out}");
    assert!(lines.iter().any(|l| l.starts_with("second ")), "{out}");
    server.shutdown().await;
}
