//! Deployments, ReplicaSets and Jobs: defaulting (including the Job selector the
//! apiserver generates), validation and the update rules (selectors are immutable).

use super::access::{child, default, str_at};
use super::field::Errors;
use super::{meta, pod};
use serde_json::{json, Value};

const PERCENT_MSG: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";
/// The labels Kubernetes puts on a Job's pods and selects them by.
const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
const LEGACY_CONTROLLER_UID: &str = "controller-uid";
const JOB_NAME: &str = "batch.kubernetes.io/job-name";
const LEGACY_JOB_NAME: &str = "job-name";

/// `SetDefaults_Deployment`.
pub fn default_deployment(d: &mut Value) {
    let spec = child(d, "spec");
    default(spec, "replicas", json!(1));
    let strategy = child(spec, "strategy");
    default(strategy, "type", json!("RollingUpdate"));
    if str_at(strategy, "type") == "RollingUpdate" {
        let ru = child(strategy, "rollingUpdate");
        default(ru, "maxUnavailable", json!("25%"));
        default(ru, "maxSurge", json!("25%"));
    }
    default(spec, "revisionHistoryLimit", json!(10));
    default(spec, "progressDeadlineSeconds", json!(600));
    pod::default_pod_spec(child(child(spec, "template"), "spec"), true);
}

/// `SetDefaults_ReplicaSet`.
pub fn default_replicaset(rs: &mut Value) {
    let spec = child(rs, "spec");
    default(spec, "replicas", json!(1));
    pod::default_pod_spec(child(child(spec, "template"), "spec"), true);
}

/// `SetDefaults_Job`, plus the selector and pod labels the Job strategy generates at
/// create (unless `manualSelector` is true).
pub fn default_job(job: &mut Value, generate_selector: bool) {
    let uid = job
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let name = job
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let spec = child(job, "spec");
    if spec.get("completions").is_none_or(Value::is_null)
        && spec.get("parallelism").is_none_or(Value::is_null)
    {
        spec["completions"] = json!(1);
    }
    default(spec, "parallelism", json!(1));
    // With per-index limits the global limit is effectively off (math.MaxInt32).
    let per_index = spec
        .get("backoffLimitPerIndex")
        .is_some_and(|v| !v.is_null());
    default(
        spec,
        "backoffLimit",
        json!(if per_index { i32::MAX } else { 6 }),
    );
    if spec.get("podFailurePolicy").is_none_or(Value::is_null) {
        default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    }
    default(spec, "completionMode", json!("NonIndexed"));
    default(spec, "suspend", json!(false));
    pod::default_pod_spec(child(child(spec, "template"), "spec"), false);
    let manual = spec.get("manualSelector") == Some(&Value::Bool(true));
    if generate_selector && !manual && !uid.is_empty() {
        let labels = child(child(child(spec, "template"), "metadata"), "labels");
        for (k, v) in [
            (CONTROLLER_UID, &uid),
            (LEGACY_CONTROLLER_UID, &uid),
            (JOB_NAME, &name),
            (LEGACY_JOB_NAME, &name),
        ] {
            default(labels, k, json!(v));
        }
        let selector = child(spec, "selector");
        if meta::selector_is_empty(selector) {
            *selector = json!({"matchLabels": {CONTROLLER_UID: uid}});
        }
    }
}

/// Selector required, non-empty, matching the template's labels; template labels valid.
fn validate_selector_and_template(obj: &Value, kind_word: &str, errs: &mut Errors) {
    let spec = &obj["spec"];
    let labels = spec.pointer("/template/metadata/labels");
    match spec.get("selector").filter(|s| !s.is_null()) {
        None => errs.required("spec.selector", ""),
        Some(sel) if meta::selector_is_empty(sel) => errs.invalid(
            "spec.selector",
            sel,
            &format!("empty selector is invalid for {kind_word}"),
        ),
        Some(sel) => {
            meta::validate_selector(sel, "spec.selector", errs);
            if !meta::selector_matches(sel, labels) {
                errs.invalid(
                    "spec.template.metadata.labels",
                    labels.unwrap_or(&json!({})),
                    "`selector` does not match template `labels`",
                );
            }
        }
    }
    meta::validate_labels(labels, "spec.template.metadata.labels", errs);
    meta::validate_annotations(
        spec.pointer("/template/metadata/annotations"),
        "spec.template.metadata.annotations",
        errs,
    );
}

/// Deployments and ReplicaSets run pods forever.
fn validate_always_template(spec: &Value, errs: &mut Errors) {
    let template = spec.pointer("/template/spec").unwrap_or(&Value::Null);
    pod::validate_pod_spec(template, "spec.template.spec", errs);
    if let Some(rp) = template.get("restartPolicy").filter(|v| v != &"Always") {
        if ["OnFailure", "Never"].contains(&rp.as_str().unwrap_or("")) {
            errs.not_supported("spec.template.spec.restartPolicy", rp, &["Always"]);
        }
    }
    if template.get("activeDeadlineSeconds").is_some() {
        errs.forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            "activeDeadlineSeconds in ReplicaSet is not Supported",
        );
    }
}

/// `ValidateDeployment` (spec part).
pub fn validate_deployment(d: &Value, errs: &mut Errors) {
    let spec = &d["spec"];
    validate_selector_and_template(d, "deployment", errs);
    for key in ["replicas", "minReadySeconds", "revisionHistoryLimit"] {
        errs.non_negative(&format!("spec.{key}"), spec.get(key));
    }
    if let Some(p) = spec.get("progressDeadlineSeconds").and_then(Value::as_i64) {
        errs.non_negative(
            "spec.progressDeadlineSeconds",
            spec.get("progressDeadlineSeconds"),
        );
        let min_ready = spec
            .get("minReadySeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if p <= min_ready {
            errs.invalid(
                "spec.progressDeadlineSeconds",
                &json!(p),
                "must be greater than minReadySeconds",
            );
        }
    }
    validate_always_template(spec, errs);
    let strategy = spec.get("strategy").unwrap_or(&Value::Null);
    errs.one_of(
        "spec.strategy.type",
        strategy.get("type"),
        &["Recreate", "RollingUpdate"],
    );
    if str_at(strategy, "type") == "Recreate"
        && strategy.get("rollingUpdate").is_some_and(|r| !r.is_null())
    {
        errs.forbidden(
            "spec.strategy.rollingUpdate",
            "may not be specified when strategy `type` is 'Recreate'",
        );
    }
    if let Some(ru) = strategy.get("rollingUpdate").filter(|r| r.is_object()) {
        let unavailable = int_or_percent(
            ru.get("maxUnavailable"),
            "spec.strategy.rollingUpdate.maxUnavailable",
            errs,
        );
        let surge = int_or_percent(
            ru.get("maxSurge"),
            "spec.strategy.rollingUpdate.maxSurge",
            errs,
        );
        if let Some(u) = unavailable.filter(|u| u.percent && u.value > 100) {
            errs.invalid(
                "spec.strategy.rollingUpdate.maxUnavailable",
                &json!(format!("{}%", u.value)),
                "must not be greater than 100%",
            );
        }
        if unavailable.is_some_and(|u| u.value == 0) && surge.is_some_and(|s| s.value == 0) {
            errs.invalid(
                "spec.strategy.rollingUpdate.maxUnavailable",
                ru.get("maxUnavailable").unwrap_or(&json!(0)),
                "may not be 0 when `maxSurge` is 0",
            );
        }
    }
}

#[derive(Clone, Copy)]
struct IntOrPercent {
    value: i64,
    percent: bool,
}

fn int_or_percent(v: Option<&Value>, path: &str, errs: &mut Errors) -> Option<IntOrPercent> {
    match v? {
        Value::Number(n) => {
            let value = n.as_i64()?;
            if value < 0 {
                errs.invalid(path, &json!(value), "must be greater than or equal to 0");
            }
            Some(IntOrPercent {
                value,
                percent: false,
            })
        }
        Value::String(s) => match s.strip_suffix('%').and_then(|n| n.parse::<i64>().ok()) {
            Some(value) if s.len() > 1 && s[..s.len() - 1].chars().all(|c| c.is_ascii_digit()) => {
                Some(IntOrPercent {
                    value,
                    percent: true,
                })
            }
            _ => {
                errs.invalid(path, &json!(s), PERCENT_MSG);
                None
            }
        },
        other => {
            errs.invalid(path, other, PERCENT_MSG);
            None
        }
    }
}

/// `ValidateReplicaSet` (spec part).
pub fn validate_replicaset(rs: &Value, errs: &mut Errors) {
    let spec = &rs["spec"];
    validate_selector_and_template(rs, "deployment", errs);
    for key in ["replicas", "minReadySeconds"] {
        errs.non_negative(&format!("spec.{key}"), spec.get(key));
    }
    validate_always_template(spec, errs);
}

/// `ValidateJob` (spec part).
pub fn validate_job(job: &Value, errs: &mut Errors) {
    let spec = &job["spec"];
    validate_selector_and_template(job, "job", errs);
    if spec.get("manualSelector") != Some(&Value::Bool(true)) {
        let uid = job
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("");
        let want = json!({"matchLabels": {CONTROLLER_UID: uid}});
        if let Some(sel) = spec.get("selector").filter(|s| !meta::selector_is_empty(s)) {
            if !uid.is_empty() && *sel != want && !legacy_generated(sel, uid) {
                errs.invalid("spec.selector", sel, "`selector` not auto-generated");
            }
        }
    }
    for key in [
        "parallelism",
        "completions",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        errs.non_negative(&format!("spec.{key}"), spec.get(key));
    }
    if let Some(v) = spec.get("activeDeadlineSeconds") {
        if v.as_i64().is_none_or(|n| n < 1) {
            errs.invalid(
                "spec.activeDeadlineSeconds",
                v,
                "must be greater than or equal to 1",
            );
        }
    }
    errs.one_of(
        "spec.completionMode",
        spec.get("completionMode"),
        &["NonIndexed", "Indexed"],
    );
    errs.one_of(
        "spec.podReplacementPolicy",
        spec.get("podReplacementPolicy"),
        &["TerminatingOrFailed", "Failed"],
    );
    if str_at(spec, "completionMode") == "Indexed"
        && spec.get("completions").is_none_or(Value::is_null)
    {
        errs.required("spec.completions", "when completion mode is Indexed");
    }
    let template = spec.pointer("/template/spec").unwrap_or(&Value::Null);
    pod::validate_pod_spec(template, "spec.template.spec", errs);
    match template.get("restartPolicy") {
        None | Some(Value::Null) => errs.required(
            "spec.template.spec.restartPolicy",
            "valid values: \"OnFailure\", \"Never\"",
        ),
        Some(rp) if rp == "OnFailure" || rp == "Never" => {}
        Some(rp) if rp == "Always" => errs.not_supported(
            "spec.template.spec.restartPolicy",
            rp,
            &["OnFailure", "Never"],
        ),
        // Other values were already reported by validate_pod_spec.
        Some(_) => {}
    }
}

/// Jobs created before the `batch.kubernetes.io/` prefix select by `controller-uid`.
fn legacy_generated(sel: &Value, uid: &str) -> bool {
    *sel == json!({"matchLabels": {LEGACY_CONTROLLER_UID: uid}})
}

/// A PUT body may leave out what the apiserver generated for a Job.
pub fn carry_over_job(new: &mut Value, old: &Value) {
    if let Some(sel) = old.pointer("/spec/selector") {
        let spec = child(new, "spec");
        if spec.get("selector").is_none_or(Value::is_null) {
            spec["selector"] = sel.clone();
        }
    }
    if old.pointer("/spec/manualSelector") != Some(&Value::Bool(true)) {
        if let Some(old_labels) = old
            .pointer("/spec/template/metadata/labels")
            .and_then(Value::as_object)
        {
            let labels = child(
                child(child(child(new, "spec"), "template"), "metadata"),
                "labels",
            );
            for k in [
                CONTROLLER_UID,
                LEGACY_CONTROLLER_UID,
                JOB_NAME,
                LEGACY_JOB_NAME,
            ] {
                if let Some(v) = old_labels.get(k) {
                    default(labels, k, v.clone());
                }
            }
        }
    }
}

/// Selectors never change; a Job's template and completions do not either.
pub fn validate_update(kind: &str, new: &Value, old: &Value, errs: &mut Errors) {
    let (ns, os) = (&new["spec"], &old["spec"]);
    if ns.get("selector") != os.get("selector") {
        errs.invalid(
            "spec.selector",
            ns.get("selector").unwrap_or(&Value::Null),
            "field is immutable",
        );
    }
    if kind == "Job" {
        if ns.get("template") != os.get("template") {
            errs.invalid(
                "spec.template",
                ns.get("template").unwrap_or(&Value::Null),
                "field is immutable",
            );
        }
        if ns.get("completions") != os.get("completions") {
            errs.invalid(
                "spec.completions",
                ns.get("completions").unwrap_or(&Value::Null),
                "field is immutable",
            );
        }
    }
}

/// `autoscaling/v1` Scale bodies of `deployments/scale` and `replicasets/scale`.
pub fn validate_scale(scale: &Value, errs: &mut Errors) {
    errs.non_negative("spec.replicas", scale.pointer("/spec/replicas"));
}
