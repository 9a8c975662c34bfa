//! `tug create -f FILE|DIR|- [-R]`, `tug create deployment NAME --image=I`, `tug create
//! namespace NAME`: create only; an object that exists is an AlreadyExists error.

use crate::apply::{self, expand_recursive, namespace_for, server_error};
use crate::kinds::{self, KindInfo};
use crate::manifest::{self, Mode};
use crate::Ctx;
use serde_json::{json, Value};
use tug_client::DynamicApi;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A manifest file, a directory of them, or `-` for stdin (repeatable).
    #[arg(short = 'f', long = "filename")]
    pub filenames: Vec<String>,
    /// Also read the manifests in subdirectories of `-f` directories.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Record the object as the last applied configuration, so a later `apply` merges.
    #[arg(long)]
    pub save_config: bool,
    /// `client`: only print what would be created (with -o, the object itself).
    #[arg(long, value_enum, default_value = "none", global = true)]
    pub dry_run: DryRun,
    /// Print the created object instead of `kind/name created`.
    #[arg(short = 'o', long, value_enum, global = true)]
    pub output: Option<Output>,
    #[command(subcommand)]
    pub what: Option<What>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DryRun {
    None,
    Client,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Yaml,
    Json,
    Name,
}

const NOTHING_TO_CREATE: &str = "must specify one of -f or a kind to create (`tug create deployment NAME --image=IMAGE`, `tug create namespace NAME`)";

/// How to report each object.
#[derive(Clone, Copy, Debug)]
struct Report {
    dry_run: bool,
    output: Option<Output>,
}

#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// A Deployment running IMAGE, labelled `app=NAME`.
    #[command(visible_alias = "deploy")]
    Deployment {
        name: String,
        /// The container image (repeat for several containers).
        #[arg(long, required = true)]
        image: Vec<String>,
        /// Number of pods.
        #[arg(short = 'r', long, default_value_t = 1)]
        replicas: i32,
        /// A container port to expose.
        #[arg(long)]
        port: Option<u16>,
    },
    /// A Namespace.
    #[command(visible_alias = "ns")]
    Namespace { name: String },
}

pub async fn run(ctx: &mut Ctx<'_>, args: &Args) -> anyhow::Result<bool> {
    let report = Report {
        dry_run: args.dry_run == DryRun::Client,
        output: args.output,
    };
    if args.what.is_some() && !args.filenames.is_empty() {
        anyhow::bail!("-f cannot be combined with a kind to create; use one or the other");
    }
    match &args.what {
        Some(What::Deployment {
            name,
            image,
            replicas,
            port,
        }) => {
            if *replicas < 0 {
                anyhow::bail!("--replicas={replicas}: must be 0 or more");
            }
            let obj = deployment(name, &ctx.namespace, image, *replicas, *port);
            let deployments = kinds::resolve("deployments")?;
            let ns = ctx.namespace.clone();
            create_one(ctx, deployments, Some(&ns), name, obj, report).await
        }
        Some(What::Namespace { name }) => {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            create_one(ctx, kinds::resolve("namespaces")?, None, name, obj, report).await
        }
        None if args.filenames.is_empty() => anyhow::bail!(NOTHING_TO_CREATE),
        None => from_files(ctx, args, report).await,
    }
}

async fn from_files(ctx: &mut Ctx<'_>, args: &Args, report: Report) -> anyhow::Result<bool> {
    let sources = manifest::read_sources(&expand_recursive(&args.filenames, args.recursive))?;
    let mut ok = true;
    let mut any = false;
    for (source, text) in &sources {
        for result in manifest::parse(source, text, Mode::Strict) {
            any = true;
            let m = match result {
                Ok(m) => m,
                Err(e) => {
                    ctx.error(e);
                    ok = false;
                    continue;
                }
            };
            let namespace = match namespace_for(&ctx.namespace, ctx.namespace_explicit, &m) {
                Ok(ns) => ns,
                Err(message) => {
                    ctx.error(format_args!("{}: {message}", m.origin));
                    ok = false;
                    continue;
                }
            };
            let obj = if args.save_config {
                apply::desired_object(&m.value, namespace.as_deref())
            } else {
                plain_object(&m.value, namespace.as_deref())
            };
            let obj = match obj {
                Ok(o) => o,
                Err(message) => {
                    ctx.error(format_args!("{}: {message}", m.origin));
                    ok = false;
                    continue;
                }
            };
            ok &= create_one(ctx, m.kind, namespace.as_deref(), &m.name, obj, report).await?;
        }
    }
    if !any {
        ctx.error("no objects passed to create");
        ok = false;
    }
    Ok(ok)
}

/// Sends one create; prints `kind/name created` or the server's error (AlreadyExists
/// reads `Error from server (AlreadyExists): deployments.apps "x" already exists`).
async fn create_one(
    ctx: &mut Ctx<'_>,
    kind: &KindInfo,
    namespace: Option<&str>,
    name: &str,
    obj: Value,
    report: Report,
) -> anyhow::Result<bool> {
    let created = if report.dry_run {
        Ok(obj)
    } else {
        let api = DynamicApi::dynamic(ctx.client.clone(), kind.api_resource(), namespace);
        api.create(&obj).await
    };
    match created {
        Ok(o) => {
            let o = crate::printer::with_type_meta(o, &kind.api_version(), kind.kind);
            match report.output {
                Some(Output::Yaml) => write!(ctx.out, "{}", crate::printer::yaml(&o))?,
                Some(Output::Json) => write!(ctx.out, "{}", crate::printer::json(&o))?,
                Some(Output::Name) => writeln!(ctx.out, "{}/{name}", kind.display())?,
                None if report.dry_run => {
                    writeln!(ctx.out, "{}/{name} created (dry run)", kind.display())?
                }
                None => writeln!(ctx.out, "{}/{name} created", kind.display())?,
            }
            Ok(true)
        }
        Err(e) => {
            writeln!(ctx.err, "{}", server_error(&e))?;
            Ok(false)
        }
    }
}

/// The file's object as sent by `create`: namespace filled in, status and server-owned
/// metadata dropped, no last-applied annotation.
fn plain_object(value: &Value, namespace: Option<&str>) -> Result<Value, String> {
    let mut obj = apply::desired_object(value, namespace)?;
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if let Some(Value::Object(ann)) = meta.get_mut("annotations") {
            ann.remove(apply::LAST_APPLIED);
            if ann.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    Ok(obj)
}

/// kubectl's `create deployment`: label `app=NAME`, one container per image, named after
/// the image (`registry/web:1` -> `web`).
pub fn deployment(
    name: &str,
    namespace: &str,
    images: &[String],
    replicas: i32,
    port: Option<u16>,
) -> Value {
    let containers: Vec<Value> = images
        .iter()
        .map(|image| {
            let mut c = json!({"name": container_name(image), "image": image});
            if let Some(port) = port {
                c["ports"] = json!([{"containerPort": port}]);
            }
            c
        })
        .collect();
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": containers}
            }
        }
    })
}

fn container_name(image: &str) -> String {
    let base = image.rsplit('/').next().unwrap_or(image);
    let base = base.split(['@', ':']).next().unwrap_or(base);
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let cleaned = cleaned.trim_matches('-');
    if cleaned.is_empty() {
        "app".into()
    } else {
        cleaned.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_are_named_after_their_image() {
        let cases = [
            ("nginx", "nginx"),
            ("nginx:1.25", "nginx"),
            ("registry.local:5000/team/web:v2", "web"),
            ("busybox@sha256:abc", "busybox"),
            ("My_Image", "my-image"),
        ];
        for (image, want) in cases {
            assert_eq!(container_name(image), want, "{image}");
        }
    }

    #[test]
    fn a_created_deployment_decodes_as_a_deployment() {
        let d = deployment("web", "default", &["hello:1".into()], 2, Some(8080));
        crate::kinds::strict::<tug_proto::apps::v1::Deployment>(&d).unwrap();
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["name"],
            "hello"
        );
        assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web");
    }
}
