//! Table-driven tests of admission through its public entry points.

use super::*;
use serde_json::json;

fn pod(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default", "uid": "u1"}, "spec": spec})
}

fn deployment(spec: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default", "uid": "u2"}, "spec": spec})
}

fn job(spec: Value) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi", "namespace": "default", "uid": "u3"}, "spec": spec})
}

fn service(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
}

fn web_template() -> Value {
    json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}})
}

/// The `field: message` lines of an admission failure, or the panic message.
fn invalid(kind: &str, obj: Value) -> Vec<String> {
    match admit_create(kind, obj) {
        Err(Error::Invalid(errs)) => errs
            .into_iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect(),
        other => panic!("want Invalid, got {other:?}"),
    }
}

#[test]
fn pod_defaults_match_kubernetes() {
    let got = admit_create(
        "Pod",
        pod(json!({"containers": [
            {"name": "a", "image": "nginx", "ports": [{"containerPort": 80}],
             "livenessProbe": {"httpGet": {"port": 80}},
             "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}},
            {"name": "b", "image": "busybox:1.36"}
        ]})),
    )
    .unwrap();
    let spec = &got["spec"];
    assert_eq!(spec["restartPolicy"], "Always");
    assert_eq!(spec["dnsPolicy"], "ClusterFirst");
    assert_eq!(spec["schedulerName"], "default-scheduler");
    assert_eq!(spec["terminationGracePeriodSeconds"], 30);
    assert_eq!(spec["securityContext"], json!({}));
    assert_eq!(spec["enableServiceLinks"], true);
    let a = &spec["containers"][0];
    assert_eq!(
        a["imagePullPolicy"], "Always",
        "untagged images are pulled always"
    );
    assert_eq!(spec["containers"][1]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(a["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(a["terminationMessagePolicy"], "File");
    assert_eq!(a["ports"][0]["protocol"], "TCP");
    assert_eq!(
        a["livenessProbe"],
        json!({"httpGet": {"path": "/", "port": 80, "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
    );
    assert_eq!(
        a["resources"]["requests"],
        json!({"cpu": "500m", "memory": "64Mi"})
    );
    assert_eq!(
        spec["tolerations"],
        json!([
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        ])
    );
    assert_eq!(got["status"]["phase"], "Pending");
    assert_eq!(got["status"]["qosClass"], "Burstable");
    assert_eq!(spec["priority"], 0);
    assert_eq!(spec["preemptionPolicy"], "PreemptLowerPriority");
}

#[test]
fn qos_classes() {
    let cases = [
        ("no resources", json!({}), "BestEffort"),
        (
            "limits only",
            json!({"limits": {"cpu": "1", "memory": "1Gi"}}),
            "Guaranteed",
        ),
        (
            "requests equal limits",
            json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1Gi"}}),
            "Guaranteed",
        ),
        (
            "requests below limits",
            json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}),
            "Burstable",
        ),
        (
            "memory only",
            json!({"requests": {"memory": "1Gi"}}),
            "Burstable",
        ),
    ];
    for (name, resources, want) in cases {
        let got = admit_create(
            "Pod",
            pod(json!({"containers": [{"name": "a", "image": "x", "resources": resources}]})),
        )
        .unwrap();
        assert_eq!(got["status"]["qosClass"], want, "{name}");
    }
}

#[test]
fn existing_tolerations_suppress_the_default_ones() {
    let got = admit_create(
        "Pod",
        pod(json!({"containers": [{"name": "a", "image": "x"}], "tolerations": [{"operator": "Exists"}]})),
    )
    .unwrap();
    assert_eq!(got["spec"]["tolerations"], json!([{"operator": "Exists"}]));
}

#[test]
fn pod_validation_cases() {
    let c = |extra: Value| {
        let mut c = json!({"name": "a", "image": "x"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        ("no containers", json!({"containers": []}), vec!["spec.containers: Required value"]),
        ("missing image", json!({"containers": [{"name": "a"}]}), vec!["spec.containers[0].image: Required value"]),
        (
            "bad container name",
            json!({"containers": [c(json!({"name": "A_b"}))]}),
            vec!["spec.containers[0].name: Invalid value: \"A_b\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"],
        ),
        (
            "duplicate names across init and regular containers",
            json!({"initContainers": [c(json!({}))], "containers": [c(json!({}))]}),
            vec!["spec.containers[0].name: Duplicate value: \"a\""],
        ),
        (
            "bad restart policy",
            json!({"containers": [c(json!({}))], "restartPolicy": "Sometimes"}),
            vec!["spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""],
        ),
        (
            "container restartPolicy on a regular container",
            json!({"containers": [c(json!({"restartPolicy": "Always"}))]}),
            vec!["spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers"],
        ),
        (
            "init container restartPolicy other than Always",
            json!({"initContainers": [c(json!({"name": "i", "restartPolicy": "Never"}))], "containers": [c(json!({}))]}),
            vec!["spec.initContainers[0].restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""],
        ),
        (
            "port out of range",
            json!({"containers": [c(json!({"ports": [{"containerPort": 70000}]}))]}),
            vec!["spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"],
        ),
        (
            "bad protocol",
            json!({"containers": [c(json!({"ports": [{"containerPort": 80, "protocol": "tcp"}]}))]}),
            vec!["spec.containers[0].ports[0].protocol: Unsupported value: \"tcp\": supported values: \"SCTP\", \"TCP\", \"UDP\""],
        ),
        (
            "request above limit",
            json!({"containers": [c(json!({"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}))]}),
            vec!["spec.containers[0].resources.requests[cpu]: Invalid value: \"2\": must be less than or equal to cpu limit of 1"],
        ),
        (
            "negative quantity",
            json!({"containers": [c(json!({"resources": {"limits": {"memory": "-1"}}}))]}),
            // Requests are defaulted from limits before validation, as in Kubernetes.
            vec![
                "spec.containers[0].resources.limits[memory]: Invalid value: \"-1\": must be greater than or equal to 0",
                "spec.containers[0].resources.requests[memory]: Invalid value: \"-1\": must be greater than or equal to 0",
            ],
        ),
        (
            "duplicate volumes and a mount of a missing one",
            json!({"volumes": [{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}],
                   "containers": [c(json!({"volumeMounts": [{"name": "w", "mountPath": "/w"}]}))]}),
            vec![
                "spec.volumes[1].name: Duplicate value: \"v\"",
                "spec.containers[0].volumeMounts[0].name: Not found: \"w\"",
            ],
        ),
        (
            "two volume sources",
            json!({"volumes": [{"name": "v", "emptyDir": {}, "hostPath": {"path": "/x"}}], "containers": [c(json!({}))]}),
            vec!["spec.volumes[0].emptyDir: Forbidden: may not specify more than 1 volume type"],
        ),
        (
            "bad env name",
            json!({"containers": [c(json!({"env": [{"name": "1A", "value": "x"}]}))]}),
            vec!["spec.containers[0].env[0].name: Invalid value: \"1A\": a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')"],
        ),
        (
            "unsupported downward API field",
            json!({"containers": [c(json!({"env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.hostname"}}}]}))]}),
            vec!["spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: \"spec.hostname\": supported values: \"metadata.name\", \"metadata.namespace\", \"metadata.uid\", \"spec.nodeName\", \"spec.serviceAccountName\", \"status.hostIP\", \"status.hostIPs\", \"status.podIP\", \"status.podIPs\""],
        ),
        (
            "downward API label subscript is fine",
            json!({"containers": [c(json!({"env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}}]}))]}),
            vec![],
        ),
        (
            "host network port mismatch",
            json!({"hostNetwork": true, "containers": [c(json!({"ports": [{"containerPort": 80, "hostPort": 8080}]}))]}),
            vec!["spec.containers[0].ports[0].hostPort: Invalid value: 8080: must match `containerPort` when `hostNetwork` is true"],
        ),
        (
            "probe without handler",
            json!({"containers": [c(json!({"readinessProbe": {"periodSeconds": 5}}))]}),
            vec!["spec.containers[0].readinessProbe: Required value: must specify a handler type"],
        ),
        (
            "probe with two handlers",
            json!({"containers": [c(json!({"livenessProbe": {"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}}}))]}),
            vec!["spec.containers[0].livenessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type"],
        ),
        (
            "bad pull policy",
            json!({"containers": [c(json!({"imagePullPolicy": "Sometimes"}))]}),
            vec!["spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\""],
        ),
        (
            "bad dns policy",
            json!({"containers": [c(json!({}))], "dnsPolicy": "Google"}),
            vec!["spec.dnsPolicy: Unsupported value: \"Google\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\""],
        ),
        (
            "toleration Exists with a value",
            json!({"containers": [c(json!({}))], "tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}),
            vec!["spec.tolerations[0].operator: Invalid value: \"v\": value must be empty when `operator` is 'Exists'"],
        ),
        (
            "toleration bad effect",
            json!({"containers": [c(json!({}))], "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoRun"}]}),
            vec!["spec.tolerations[0].effect: Unsupported value: \"NoRun\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\""],
        ),
        (
            "bad node selector key",
            json!({"containers": [c(json!({}))], "nodeSelector": {"a b": "c"}}),
            vec!["spec.nodeSelector: Invalid value: \"a b\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"],
        ),
    ];
    for (name, spec, want) in cases {
        let got = match admit_create("Pod", pod(spec)) {
            Ok(_) => vec![],
            Err(Error::Invalid(errs)) => errs
                .into_iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect(),
            Err(e) => panic!("{name}: {e}"),
        };
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn unknown_fields_are_decode_errors_with_the_path() {
    let obj = deployment(json!({"selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "x", "imagePullPolcy": "Always"}]}}}));
    match admit_create("Deployment", obj) {
        Err(Error::Decode { path, message }) => {
            assert_eq!(path, "spec.template.spec.containers[0].imagePullPolcy");
            assert_eq!(message, "strict decoding error: unknown field \"spec.template.spec.containers[0].imagePullPolcy\"");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn deployment_defaults_match_kubernetes() {
    let got = admit_create(
        "Deployment",
        deployment(
            json!({"selector": {"matchLabels": {"app": "web"}}, "template": web_template()}),
        ),
    )
    .unwrap();
    let spec = &got["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    let t = &spec["template"]["spec"];
    assert_eq!(t["restartPolicy"], "Always");
    assert_eq!(t["containers"][0]["imagePullPolicy"], "IfNotPresent");
    assert!(
        t.get("tolerations").is_none(),
        "templates get no admission tolerations"
    );
    assert!(t.get("enableServiceLinks").is_none());
}

#[test]
fn deployment_validation_cases() {
    let sel = json!({"matchLabels": {"app": "web"}});
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        ("missing selector", json!({"template": web_template()}), vec!["spec.selector: Required value"]),
        (
            "selector does not match",
            json!({"selector": {"matchLabels": {"app": "db"}}, "template": web_template()}),
            vec!["spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`"],
        ),
        (
            "negative replicas",
            json!({"selector": sel, "template": web_template(), "replicas": -1}),
            vec!["spec.replicas: Invalid value: -1: must be greater than or equal to 0"],
        ),
        (
            "template restartPolicy Never",
            json!({"selector": sel, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"restartPolicy": "Never", "containers": [{"name": "web", "image": "x"}]}}}),
            vec!["spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""],
        ),
        (
            "bad strategy",
            json!({"selector": sel, "template": web_template(), "strategy": {"type": "Blue"}}),
            vec!["spec.strategy.type: Unsupported value: \"Blue\": supported values: \"Recreate\", \"RollingUpdate\""],
        ),
        (
            "both surge and unavailable zero",
            json!({"selector": sel, "template": web_template(), "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}}),
            vec!["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"0%\": may not be 0 when `maxSurge` is 0"],
        ),
    ];
    for (name, spec, want) in cases {
        assert_eq!(invalid("Deployment", deployment(spec)), want, "{name}");
    }
}

#[test]
fn job_gets_generated_selector_labels_and_defaults() {
    let got = admit_create(
        "Job",
        job(json!({"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "perl"}]}}})),
    )
    .unwrap();
    let spec = &got["spec"];
    assert_eq!(
        spec["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u3"}})
    );
    assert_eq!(
        spec["template"]["metadata"]["labels"],
        json!({"batch.kubernetes.io/controller-uid": "u3", "batch.kubernetes.io/job-name": "pi", "controller-uid": "u3", "job-name": "pi"})
    );
    assert_eq!(spec["parallelism"], 1);
    assert_eq!(spec["completions"], 1);
    assert_eq!(spec["backoffLimit"], 6);
    assert_eq!(spec["completionMode"], "NonIndexed");
    assert_eq!(spec["suspend"], false);
    assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
}

#[test]
fn job_with_parallelism_only_keeps_completions_unset() {
    let got = admit_create(
        "Job",
        job(json!({"parallelism": 3, "template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "w", "image": "x"}]}}})),
    )
    .unwrap();
    assert!(got["spec"].get("completions").is_none());
    assert_eq!(got["spec"]["parallelism"], 3);
}

#[test]
fn job_validation_cases() {
    let c = json!([{"name": "w", "image": "x"}]);
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "missing restartPolicy",
            json!({"template": {"spec": {"containers": c}}}),
            vec!["spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""],
        ),
        (
            "restartPolicy Always",
            json!({"template": {"spec": {"restartPolicy": "Always", "containers": c}}}),
            vec!["spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""],
        ),
        (
            "negative backoffLimit",
            json!({"backoffLimit": -1, "template": {"spec": {"restartPolicy": "Never", "containers": c}}}),
            vec!["spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0"],
        ),
    ];
    for (name, spec, want) in cases {
        assert_eq!(invalid("Job", job(spec)), want, "{name}");
    }
}

#[test]
fn service_defaults_and_validation() {
    let got = admit_create(
        "Service",
        service(json!({"selector": {"app": "web"}, "ports": [{"port": 80}]})),
    )
    .unwrap();
    assert_eq!(got["spec"]["type"], "ClusterIP");
    assert_eq!(got["spec"]["sessionAffinity"], "None");
    assert_eq!(got["spec"]["internalTrafficPolicy"], "Cluster");
    assert_eq!(
        got["spec"]["ports"],
        json!([{"port": 80, "protocol": "TCP", "targetPort": 80}])
    );

    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        ("no ports", json!({"selector": {"app": "web"}}), vec!["spec.ports: Required value"]),
        ("headless needs no ports", json!({"clusterIP": "None"}), vec![]),
        ("external name needs no ports", json!({"type": "ExternalName", "externalName": "example.com"}), vec![]),
        ("external name required", json!({"type": "ExternalName"}), vec!["spec.externalName: Required value"]),
        (
            "two unnamed ports",
            json!({"ports": [{"port": 80}, {"port": 443}]}),
            vec!["spec.ports[0].name: Required value", "spec.ports[1].name: Required value"],
        ),
        (
            "duplicate port names",
            json!({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 443}]}),
            vec!["spec.ports[1].name: Duplicate value: \"a\""],
        ),
        (
            "bad type",
            json!({"type": "Magic", "ports": [{"port": 80}]}),
            vec!["spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""],
        ),
        (
            "nodePort out of range",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}),
            vec!["spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"],
        ),
    ];
    for (name, spec, want) in cases {
        let got = match admit_create("Service", service(spec)) {
            Ok(_) => vec![],
            Err(Error::Invalid(errs)) => errs
                .into_iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect(),
            Err(e) => panic!("{name}: {e}"),
        };
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn service_names_must_start_with_a_letter() {
    let mut svc = service(json!({"ports": [{"port": 80}]}));
    svc["metadata"]["name"] = json!("1web");
    let errs = invalid("Service", svc);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("metadata.name: Invalid value: \"1web\": a DNS-1035 label"),
        "{errs:?}"
    );
}

#[test]
fn secret_string_data_is_folded_into_data() {
    let got = admit_create(
        "Secret",
        json!({"metadata": {"name": "s", "namespace": "default"}, "data": {"a": "eA=="}, "stringData": {"b": "hello"}}),
    )
    .unwrap();
    assert_eq!(got["data"], json!({"a": "eA==", "b": "aGVsbG8="}));
    assert!(got.get("stringData").is_none());
    assert_eq!(got["type"], "Opaque");
}

#[test]
fn config_validation_cases() {
    let cases: Vec<(&str, &str, Value, Vec<&str>)> = vec![
        (
            "bad configmap key",
            "ConfigMap",
            json!({"metadata": {"name": "c", "namespace": "d"}, "data": {"a/b": "x"}}),
            vec!["data[a/b]: Invalid value: \"a/b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"],
        ),
        (
            "too big",
            "ConfigMap",
            json!({"metadata": {"name": "c", "namespace": "d"}, "data": {"a": "x".repeat(1024 * 1024 + 1)}}),
            vec!["data: Too long: must have at most 1048576 bytes"],
        ),
        (
            "tls secret without key",
            "Secret",
            json!({"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}}),
            vec!["data[tls.key]: Required value"],
        ),
    ];
    for (name, kind, obj, want) in cases {
        assert_eq!(invalid(kind, obj), want, "{name}");
    }
}

#[test]
fn namespace_gets_finalizer_and_phase() {
    let got = admit_create("Namespace", json!({"metadata": {"name": "team-a"}})).unwrap();
    assert_eq!(got["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(got["status"]["phase"], "Active");
    let errs = invalid("Namespace", json!({"metadata": {"name": "team.a"}}));
    assert_eq!(errs.len(), 1, "{errs:?}");
}

#[test]
fn updating_an_unchanged_object_is_a_no_op() {
    let objects = [
        (
            "Pod",
            pod(
                json!({"containers": [{"name": "a", "image": "x", "resources": {"limits": {"cpu": "1"}}}]}),
            ),
        ),
        (
            "Deployment",
            deployment(
                json!({"selector": {"matchLabels": {"app": "web"}}, "template": web_template()}),
            ),
        ),
        (
            "Job",
            job(
                json!({"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "w", "image": "x"}]}}}),
            ),
        ),
        (
            "Service",
            service(json!({"ports": [{"port": 80}], "clusterIP": "10.96.0.10"})),
        ),
        ("Namespace", json!({"metadata": {"name": "ns"}})),
        (
            "Secret",
            json!({"metadata": {"name": "s", "namespace": "d"}, "stringData": {"a": "b"}}),
        ),
    ];
    for (kind, obj) in objects {
        let created = admit_create(kind, obj).unwrap();
        let updated = admit_update(kind, created.clone(), &created).unwrap();
        assert_eq!(updated, created, "{kind}");
    }
}

#[test]
fn update_rules() {
    let old_pod = admit_create(
        "Pod",
        pod(json!({"containers": [{"name": "a", "image": "x:1"}]})),
    )
    .unwrap();
    let old_deploy = admit_create(
        "Deployment",
        deployment(
            json!({"selector": {"matchLabels": {"app": "web"}}, "template": web_template()}),
        ),
    )
    .unwrap();
    let old_job = admit_create("Job", job(json!({"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "w", "image": "x"}]}}}))).unwrap();
    let old_svc = admit_create(
        "Service",
        service(json!({"ports": [{"port": 80}], "clusterIP": "10.96.0.10"})),
    )
    .unwrap();
    let old_cm = admit_create(
        "ConfigMap",
        json!({"metadata": {"name": "c", "namespace": "d"}, "immutable": true, "data": {"a": "1"}}),
    )
    .unwrap();
    let edit = |v: &Value, pointer: &str, value: Value| {
        let mut v = v.clone();
        *v.pointer_mut(pointer).unwrap() = value;
        v
    };
    // (name, kind, new, old, Ok or the first error's prefix)
    let cases: Vec<(&str, &str, Value, &Value, Option<&str>)> = vec![
        (
            "pod image may change",
            "Pod",
            edit(&old_pod, "/spec/containers/0/image", json!("x:2")),
            &old_pod,
            None,
        ),
        (
            "pod restartPolicy may not change",
            "Pod",
            edit(&old_pod, "/spec/restartPolicy", json!("Never")),
            &old_pod,
            Some("spec: Forbidden: pod updates may not change fields other than"),
        ),
        (
            "pod tolerations may not be removed",
            "Pod",
            edit(&old_pod, "/spec/tolerations", json!([])),
            &old_pod,
            Some("spec.tolerations: Forbidden: existing toleration can not be modified"),
        ),
        (
            "pod name is immutable",
            "Pod",
            edit(&old_pod, "/metadata/name", json!("q")),
            &old_pod,
            Some("metadata.name: Invalid value: \"q\": field is immutable"),
        ),
        (
            "deployment replicas may change",
            "Deployment",
            edit(&old_deploy, "/spec/replicas", json!(5)),
            &old_deploy,
            None,
        ),
        (
            "deployment selector is immutable",
            "Deployment",
            edit(
                &edit(
                    &old_deploy,
                    "/spec/selector",
                    json!({"matchLabels": {"app": "web", "x": "y"}}),
                ),
                "/spec/template/metadata/labels",
                json!({"app": "web", "x": "y"}),
            ),
            &old_deploy,
            Some("spec.selector: Invalid value:"),
        ),
        (
            "job template is immutable",
            "Job",
            edit(
                &old_job,
                "/spec/template/spec/containers/0/image",
                json!("y"),
            ),
            &old_job,
            Some("spec.template: Invalid value:"),
        ),
        (
            "service clusterIP is immutable",
            "Service",
            edit(&old_svc, "/spec/clusterIP", json!("10.96.0.11")),
            &old_svc,
            Some("spec.clusterIP: Invalid value: \"10.96.0.11\": field is immutable"),
        ),
        (
            "immutable configmap data",
            "ConfigMap",
            edit(&old_cm, "/data/a", json!("2")),
            &old_cm,
            Some("data: Forbidden: field is immutable when `immutable` is set"),
        ),
    ];
    for (name, kind, new, old, want) in cases {
        let got = admit_update(kind, new, old);
        match (got, want) {
            (Ok(_), None) => {}
            (Err(Error::Invalid(errs)), Some(prefix)) => {
                let first = format!("{}: {}", errs[0].field, errs[0].message);
                assert!(first.starts_with(prefix), "{name}: {first}");
            }
            (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn put_without_server_set_fields_keeps_them() {
    let old_svc = admit_create("Service", service(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}], "clusterIP": "10.96.0.10"}))).unwrap();
    let put = service(json!({"type": "NodePort", "ports": [{"port": 80}]}));
    let got = admit_update("Service", put, &old_svc).unwrap();
    assert_eq!(got["spec"]["clusterIP"], "10.96.0.10");
    assert_eq!(got["spec"]["ports"][0]["nodePort"], 30080);

    let old_job = admit_create("Job", job(json!({"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "w", "image": "x"}]}}}))).unwrap();
    let put = job(
        json!({"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "w", "image": "x"}]}}}),
    );
    let got = admit_update("Job", put, &old_job).unwrap();
    assert_eq!(got["spec"]["selector"], old_job["spec"]["selector"]);
}

#[test]
fn every_seed_manifest_is_admitted() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, doc) in yaml_serde::Deserializer::from_str(&text).enumerate() {
            let mut obj: Value = serde::Deserialize::deserialize(doc).unwrap();
            if obj.is_null() {
                continue;
            }
            let kind = obj["kind"].as_str().unwrap().to_string();
            let meta = obj["metadata"].as_object_mut().unwrap();
            meta.insert("uid".into(), json!(format!("uid-{i}")));
            if !["Namespace", "Node"].contains(&kind.as_str()) {
                meta.entry("namespace").or_insert(json!("default"));
            }
            let admitted = admit_create(&kind, obj)
                .unwrap_or_else(|e| panic!("{} document {i} ({kind}): {e}", file.display()));
            let again = admit_update(&kind, admitted.clone(), &admitted)
                .unwrap_or_else(|e| panic!("{} document {i} ({kind}) update: {e}", file.display()));
            assert_eq!(again, admitted, "{} document {i}", file.display());
        }
    }
}
