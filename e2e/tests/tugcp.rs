//! `tugcp::ControlPlane` against the real `bench` binary: replicas start as separate
//! processes, serve writes from any replica, and are all gone after stop or drop.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tug_client::Api;
use tug_e2e::tugcp::ControlPlane;
use tug_proto::core::v1::ConfigMap;
use tug_proto::meta::v1::ObjectMeta;

fn bench_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bench"))
}

fn config_map(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        data: [("k".to_string(), "v".to_string())].into(),
        ..Default::default()
    }
}

/// Whether `pid` is still a live process (zombies of our own children count as gone).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|s| {
            !s.lines()
                .any(|l| l.starts_with("State:") && l.contains('Z'))
        })
        .unwrap_or(false)
}

async fn wait_gone(pids: &[u32], dir: &Path) {
    for _ in 0..100 {
        if pids.iter().all(|p| !alive(*p)) && !dir.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "after stopping: live pids {:?}, dir {} exists: {}",
        pids.iter().filter(|p| alive(**p)).collect::<Vec<_>>(),
        dir.display(),
        dir.exists()
    );
}

#[tokio::test]
async fn three_replicas_serve_writes_from_any_replica_and_stop_leaves_nothing_behind() {
    let cp = ControlPlane::start(&bench_exe(), 3).await.unwrap();
    let pids = cp.pids();
    let dir = cp.dir().to_path_buf();
    assert_eq!(pids.len(), 3);
    assert_eq!(cp.urls().len(), 3);
    assert!(cp.kubeconfig().exists());
    assert!(pids.iter().all(|p| alive(*p)));

    for i in 0..3 {
        let api: Api<ConfigMap> = Api::namespaced(cp.client(i).unwrap(), "default");
        api.create(&config_map(&format!("via-{i}"))).await.unwrap();
    }
    // Every replica sees every write (creates return once applied on their replica;
    // linearizable reads on the others).
    for i in 0..3 {
        let api: Api<ConfigMap> = Api::namespaced(cp.client(i).unwrap(), "default");
        for j in 0..3 {
            api.get(&format!("via-{j}")).await.unwrap();
        }
    }
    assert!(tug_e2e::tugcp::rss_kib(pids[0]).unwrap() > 0);

    cp.stop().await;
    wait_gone(&pids, &dir).await;
}

#[tokio::test]
async fn dropping_the_control_plane_kills_its_replicas() {
    let cp = ControlPlane::start(&bench_exe(), 1).await.unwrap();
    let pids = cp.pids();
    let dir = cp.dir().to_path_buf();
    drop(cp);
    wait_gone(&pids, &dir).await;
}
