//! `tug logs POD [-c C] [-f] [--previous] [--tail N] [--since 5m] [--timestamps]`: a
//! container's log through the apiserver (`pods/{name}/log`), streamed as it comes.

use std::time::Duration;

use anyhow::Context as _;
use http_body_util::BodyExt;
use serde_json::Value;

use crate::exec::{api_error, Dialer};
use crate::{Cli, Ctx};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pod (`NAME` or `pod/NAME`).
    pub pod: String,
    /// The container (default: the only one, or the `kubectl.kubernetes.io/default-container`).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Keep streaming new lines until the container ends (or Ctrl-C).
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// The log of the previous instance of the container (before its last restart).
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Only the last N lines (-1: all).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub tail: i64,
    /// Only lines newer than this duration (`30s`, `5m`, `1h30m`).
    #[arg(long, value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// Only lines at or after this RFC 3339 time (`2024-01-02T15:04:05Z`).
    #[arg(long)]
    pub since_time: Option<String>,
    /// Prefix each line with its RFC 3339 timestamp.
    #[arg(long)]
    pub timestamps: bool,
    /// Stop after this many bytes.
    #[arg(long)]
    pub limit_bytes: Option<u64>,
}

/// A Go-style duration (`300ms`, `30s`, `5m`, `1h30m`), as kubectl's `--since` takes.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}: use a number and a unit, e.g. 30s, 5m, 1h30m");
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "ms" => n / 1000.0,
            "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            _ => return Err(bad()),
        };
        total += Duration::from_secs_f64(secs);
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// The API path of `job/NAME`, `deployment/NAME` or `replicaset/NAME` (and their short
/// and plural forms): `tug logs` and `tug exec` then use one of its pods, as kubectl.
fn controller_path(arg: &str, namespace: &str) -> Option<String> {
    let (kind, name) = arg.split_once('/')?;
    let collection = match kind {
        "job" | "jobs" | "job.batch" => "apis/batch/v1/namespaces/{ns}/jobs",
        "deployment" | "deployments" | "deploy" | "deployment.apps" => {
            "apis/apps/v1/namespaces/{ns}/deployments"
        }
        "replicaset" | "replicasets" | "rs" | "replicaset.apps" => {
            "apis/apps/v1/namespaces/{ns}/replicasets"
        }
        _ => return None,
    };
    (!name.is_empty()).then(|| format!("/{}/{name}", collection.replace("{ns}", namespace)))
}

/// A label selector string from a LabelSelector's matchLabels and matchExpressions.
fn selector_string(sel: &Value) -> String {
    let mut parts: Vec<String> = sel["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = e["values"]
            .as_array()
            .map(|v| v.iter().filter_map(|x| x.as_str()).collect())
            .unwrap_or_default();
        parts.push(match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            _ => format!("!{key}"),
        });
    }
    parts.join(",")
}

/// The first pod (by name) that `path`'s selector matches; says which, like kubectl's
/// "Found N pods, using pod/x".
async fn first_pod_of(ctx: &Ctx<'_>, arg: &str, path: &str) -> anyhow::Result<String> {
    let owner: Value = ctx
        .client
        .request(http::Method::GET, path, None)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let selector = selector_string(&owner["spec"]["selector"]);
    if selector.is_empty() {
        anyhow::bail!("{arg} has no pod selector");
    }
    let list_path = format!(
        "/api/v1/namespaces/{}/pods?{}",
        ctx.namespace,
        form_urlencoded::Serializer::new(String::new())
            .append_pair("labelSelector", &selector)
            .finish()
    );
    let list: Value = ctx
        .client
        .request(http::Method::GET, &list_path, None)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut names: Vec<String> = list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    match names.first() {
        None => anyhow::bail!("no pods of {arg} found (selector {selector})"),
        Some(first) => {
            if names.len() > 1 {
                eprintln!("Found {} pods, using pod/{first}", names.len());
            }
            Ok(first.clone())
        }
    }
}

/// `NAME` or `pod/NAME` / `pods/NAME` / `po/NAME`.
pub(crate) fn pod_name(arg: &str) -> anyhow::Result<&str> {
    match arg.split_once('/') {
        None => Ok(arg),
        Some(("pod" | "pods" | "po", name)) if !name.is_empty() => Ok(name),
        Some(_) => anyhow::bail!(
            "{arg:?} is not a pod; give a pod name, pod/NAME, or job/, deployment/ or replicaset/NAME"
        ),
    }
}

/// The container to use: `-c`, else the default-container annotation, else the only one;
/// several and none chosen is an error listing them, as kubectl's.
pub(crate) fn pick_container(
    pod: &Value,
    name: &str,
    asked: Option<&str>,
) -> anyhow::Result<String> {
    let names = |field: &str| -> Vec<String> {
        pod["spec"][field]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let containers = names("containers");
    let init = names("initContainers");
    if let Some(c) = asked {
        if containers.iter().chain(&init).any(|n| n == c) {
            return Ok(c.to_string());
        }
        anyhow::bail!(
            "container {c} is not valid for pod {name}; its containers are: {}",
            containers.join(", ")
        );
    }
    if let Some(c) = pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"]
        .as_str()
        .filter(|c| containers.iter().any(|n| n == c))
    {
        return Ok(c.to_string());
    }
    match containers.as_slice() {
        [only] => Ok(only.clone()),
        _ => {
            let mut msg = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            );
            if !init.is_empty() {
                msg.push_str(&format!(
                    " or one of the init containers: [{}]",
                    init.join(" ")
                ));
            }
            anyhow::bail!("{msg} (use -c NAME)")
        }
    }
}

/// GETs the pod, so that a missing pod or container fails with a clear message before
/// anything streams.
pub(crate) async fn resolve(
    ctx: &Ctx<'_>,
    pod_arg: &str,
    container: Option<&str>,
) -> anyhow::Result<(String, String)> {
    let owned;
    let name = match controller_path(pod_arg, &ctx.namespace) {
        Some(path) => {
            owned = first_pod_of(ctx, pod_arg, &path).await?;
            owned.as_str()
        }
        None => pod_name(pod_arg)?,
    };
    let path = format!("/api/v1/namespaces/{}/pods/{name}", ctx.namespace);
    let pod: Value = ctx
        .client
        .request(http::Method::GET, &path, None)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let container = pick_container(&pod, name, container)?;
    Ok((name.to_string(), container))
}

impl Args {
    fn query(&self, container: &str) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("container", container);
        if self.follow {
            q.append_pair("follow", "true");
        }
        if self.previous {
            q.append_pair("previous", "true");
        }
        if self.tail >= 0 {
            q.append_pair("tailLines", &self.tail.to_string());
        }
        if let Some(d) = self.since {
            // Rounded up, so `--since 500ms` still asks for something.
            let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            q.append_pair("sinceSeconds", &secs.max(1).to_string());
        }
        if let Some(t) = &self.since_time {
            q.append_pair("sinceTime", t);
        }
        if self.timestamps {
            q.append_pair("timestamps", "true");
        }
        if let Some(n) = self.limit_bytes {
            q.append_pair("limitBytes", &n.to_string());
        }
        q.finish()
    }
}

pub async fn run(ctx: &mut Ctx<'_>, cli: &Cli, args: &Args) -> anyhow::Result<bool> {
    if args.since.is_some() && args.since_time.is_some() {
        anyhow::bail!("--since and --since-time cannot both be given; use one");
    }
    let (pod, container) = resolve(ctx, &args.pod, args.container.as_deref()).await?;
    let dialer = Dialer::from_cli(cli)?;
    let path = format!(
        "/api/v1/namespaces/{}/pods/{pod}/log?{}",
        ctx.namespace,
        args.query(&container)
    );
    let resp = dialer.get(&path).await?;
    let status = resp.status();
    let mut body = resp.into_body();
    if !status.is_success() {
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        anyhow::bail!("{}", api_error(status.as_u16(), &bytes));
    }
    while let Some(frame) = body.frame().await {
        let frame = frame.context("reading the log stream")?;
        if let Ok(data) = frame.into_data() {
            ctx.out.write_all(&data)?;
            ctx.out.flush()?;
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_parse_like_go() {
        let cases = [
            ("30s", Some(30.0)),
            ("5m", Some(300.0)),
            ("1h30m", Some(5400.0)),
            ("1.5h", Some(5400.0)),
            ("250ms", Some(0.25)),
            ("", None),
            ("5", None),
            ("m", None),
            ("5d", None),
        ];
        for (s, want) in cases {
            let got = parse_duration(s).ok().map(|d| d.as_secs_f64());
            assert_eq!(got, want, "{s:?}");
        }
    }

    #[test]
    fn the_container_is_chosen_like_kubectl() {
        let one = json!({"spec": {"containers": [{"name": "app"}]}});
        let two = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}], "initContainers": [{"name": "i"}]}});
        assert_eq!(pick_container(&one, "p", None).unwrap(), "app");
        assert_eq!(pick_container(&two, "p", Some("b")).unwrap(), "b");
        assert_eq!(pick_container(&two, "p", Some("i")).unwrap(), "i");
        let err = pick_container(&two, "p", None).unwrap_err().to_string();
        assert!(err.contains("choose one of: [a b]"), "{err}");
        let err = pick_container(&one, "p", Some("x"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("container x is not valid for pod p"), "{err}");
    }

    #[test]
    fn pod_arguments_may_name_the_kind() {
        assert_eq!(pod_name("web").unwrap(), "web");
        assert_eq!(pod_name("pod/web").unwrap(), "web");
        assert_eq!(pod_name("po/web").unwrap(), "web");
        assert!(pod_name("svc/web").is_err());
        assert_eq!(
            controller_path("job/greeter", "default").as_deref(),
            Some("/apis/batch/v1/namespaces/default/jobs/greeter")
        );
        assert_eq!(
            controller_path("deploy/web", "prod").as_deref(),
            Some("/apis/apps/v1/namespaces/prod/deployments/web")
        );
        assert_eq!(controller_path("svc/web", "default"), None);
        let sel = json!({"matchLabels": {"app": "web"}, "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "canary", "operator": "DoesNotExist"}]});
        assert_eq!(selector_string(&sel), "app=web,tier in (a,b),!canary");
    }

    #[test]
    fn flags_become_the_log_query() {
        let args = Args {
            pod: "p".into(),
            container: None,
            follow: true,
            previous: false,
            tail: 5,
            since: Some(Duration::from_millis(1500)),
            since_time: None,
            timestamps: true,
            limit_bytes: None,
        };
        assert_eq!(
            args.query("c"),
            "container=c&follow=true&tailLines=5&sinceSeconds=2&timestamps=true"
        );
    }
}
