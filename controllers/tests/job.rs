//! The Job controller against an in-process apiserver; the test plays the kubelet by
//! writing pod phases.

mod harness;

use harness::{eventually, Cluster};
use std::time::Duration;
use tug_client::{Api, Client, ListParams, PatchKind};
use tug_controllers::{job, Options};
use tug_proto::batch::v1::{Job, JobSpec};
use tug_proto::core::v1::{Container, Event, Pod, PodSpec, PodTemplateSpec};
use tug_proto::ObjectMeta;

async fn start() -> Cluster {
    let config = job::Config {
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
    };
    Cluster::start_with(Options::default(), |ctx| job::run_with(ctx, config)).await
}

fn job(name: &str, backoff_limit: Option<i32>) -> Job {
    Job {
        metadata: ObjectMeta::named(name),
        spec: Some(JobSpec {
            backoff_limit,
            template: PodTemplateSpec {
                metadata: ObjectMeta::default(),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    containers: vec![Container {
                        name: format!("{name}-container"),
                        image: Some("hello".into()),
                        image_pull_policy: Some("Never".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
    .with_type_meta()
}

async fn pods_of(api: &Api<Pod>, job: &str) -> Vec<Pod> {
    api.list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await
        .expect("list pods")
        .items
}

async fn set_phase(api: &Api<Pod>, name: &str, phase: &str) {
    let patch = serde_json::json!({"status": {"phase": phase}});
    api.patch_status(name, PatchKind::Merge, &patch)
        .await
        .expect("pod status");
}

fn condition<'a>(job: &'a Job, type_: &str) -> Option<&'a tug_proto::batch::v1::JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

async fn reasons(client: &Client, involved: &str) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(involved))
        .filter_map(|e| e.reason)
        .collect()
}

#[tokio::test]
async fn the_greeter_job_completes_when_its_pod_succeeds() {
    let env = start().await;
    let jobs: Api<Job> = Api::namespaced(env.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    let created = jobs
        .create(&job("greeter", None))
        .await
        .expect("create job");
    let uid = created.metadata.uid.clone().unwrap();

    let pod = eventually("the greeter pod", || async {
        pods_of(&pods, "greeter").await.into_iter().next()
    })
    .await;
    let owner = pod.metadata.controller_ref().expect("owned");
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Job", uid.as_str())
    );
    assert_eq!(pod.metadata.labels["controller-uid"], uid);
    assert_eq!(pod.metadata.labels["job-name"], "greeter");
    eventually("status.active = 1", || async {
        let j = jobs.get("greeter").await.ok()?;
        (j.status.as_ref()?.active == 1 && j.status.as_ref()?.start_time.is_some()).then_some(())
    })
    .await;

    set_phase(&pods, pod.metadata.name(), "Succeeded").await;
    let done = eventually("the Job to complete", || async {
        let j = jobs.get("greeter").await.ok()?;
        condition(&j, "Complete").is_some().then_some(j)
    })
    .await;
    let status = done.status.unwrap();
    assert_eq!((status.active, status.succeeded, status.failed), (0, 1, 0));
    assert!(status.completion_time.is_some());
    // Exactly one pod was ever created.
    assert_eq!(pods_of(&pods, "greeter").await.len(), 1);
    eventually("SuccessfulCreate and Completed events", || async {
        let r = reasons(&env.client, "greeter").await;
        (r.iter().any(|r| r == "SuccessfulCreate") && r.iter().any(|r| r == "Completed"))
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_job_whose_pods_keep_failing_stops_at_its_backoff_limit() {
    let env = start().await;
    let jobs: Api<Job> = Api::namespaced(env.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    jobs.create(&job("flaky", Some(2)))
        .await
        .expect("create job");

    // Fail every pod the Job starts until it gives up.
    let failed = eventually("the Job to fail", || async {
        let j = jobs.get("flaky").await.ok()?;
        if condition(&j, "Failed").is_some() {
            return Some(j);
        }
        for p in pods_of(&pods, "flaky").await {
            if !matches!(p.phase(), "Failed" | "Succeeded") {
                set_phase(&pods, p.metadata.name(), "Failed").await;
            }
        }
        None
    })
    .await;
    let c = condition(&failed, "Failed").unwrap();
    assert_eq!(c.reason.as_deref(), Some("BackoffLimitExceeded"));
    let status = failed.status.clone().unwrap();
    assert_eq!((status.failed, status.active, status.succeeded), (3, 0, 0));
    assert!(condition(&failed, "Complete").is_none());
    // backoffLimit 2: the first pod and two retries, and no more after that.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(pods_of(&pods, "flaky").await.len(), 3);
    eventually("a BackoffLimitExceeded event", || async {
        reasons(&env.client, "flaky")
            .await
            .iter()
            .any(|r| r == "BackoffLimitExceeded")
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn parallel_jobs_run_up_to_parallelism_and_finished_jobs_go_after_their_ttl() {
    let env = start().await;
    let jobs: Api<Job> = Api::namespaced(env.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    let mut j = job("batch", None);
    let spec = j.spec.as_mut().unwrap();
    spec.completions = Some(3);
    spec.parallelism = Some(2);
    spec.ttl_seconds_after_finished = Some(1);
    jobs.create(&j).await.expect("create job");

    let mut succeeded = 0;
    while succeeded < 3 {
        let running = eventually("running pods", || async {
            let running: Vec<Pod> = pods_of(&pods, "batch")
                .await
                .into_iter()
                .filter(|p| p.phase() != "Succeeded")
                .collect();
            (!running.is_empty()).then_some(running)
        })
        .await;
        assert!(running.len() <= 2, "parallelism 2, saw {}", running.len());
        set_phase(&pods, running[0].metadata.name(), "Succeeded").await;
        succeeded += 1;
        eventually("the success to be counted", || async {
            let j = jobs.get("batch").await.ok()?;
            (j.status?.succeeded >= succeeded).then_some(())
        })
        .await;
    }
    // Complete, then deleted one second later.
    eventually("the Job to be deleted after its TTL", || async {
        jobs.get_opt("batch").await.ok()?.is_none().then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_suspended_job_starts_on_resume_and_fails_past_its_active_deadline() {
    let env = start().await;
    let jobs: Api<Job> = Api::namespaced(env.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    let mut j = job("slow", None);
    let spec = j.spec.as_mut().unwrap();
    spec.suspend = Some(true);
    spec.active_deadline_seconds = Some(2);
    jobs.create(&j).await.expect("create job");

    eventually("the Suspended condition", || async {
        let j = jobs.get("slow").await.ok()?;
        condition(&j, "Suspended").map(|_| ())
    })
    .await;
    assert!(pods_of(&pods, "slow").await.is_empty());

    let resume = serde_json::json!({"spec": {"suspend": false}});
    jobs.patch("slow", PatchKind::Merge, &resume)
        .await
        .expect("resume");
    eventually("a pod after resuming", || async {
        (!pods_of(&pods, "slow").await.is_empty()).then_some(())
    })
    .await;
    // The pod never finishes: the deadline fails the Job and removes the pod.
    let failed = eventually("the Job to fail on its deadline", || async {
        let j = jobs.get("slow").await.ok()?;
        condition(&j, "Failed").is_some().then_some(j)
    })
    .await;
    let c = condition(&failed, "Failed").unwrap();
    assert_eq!(c.reason.as_deref(), Some("DeadlineExceeded"));
    assert_eq!(failed.status.unwrap().active, 0);
    eventually("the running pod to be deleted", || async {
        pods_of(&pods, "slow").await.is_empty().then_some(())
    })
    .await;
}
