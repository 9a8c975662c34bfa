//! `tug completion bash|zsh|fish`: scripts generated from the CLI definition.

use crate::support::run;

#[tokio::test]
async fn completion_scripts_cover_the_verbs_without_a_cluster() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef tug"),
        ("fish", "complete -c tug"),
    ] {
        let r = run(&["--kubeconfig", "/nonexistent", "completion", shell]).await;
        assert_eq!(r.code, 0, "{shell}: {}", r.err);
        assert!(
            r.out.contains(marker),
            "{shell}: {}",
            &r.out[..200.min(r.out.len())]
        );
        for verb in ["rollout", "describe", "drain"] {
            assert!(r.out.contains(verb), "{shell} lacks {verb}");
        }
    }
    let r = run(&["completion", "powershell"]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("powershell"), "{}", r.err);
}

#[test]
fn the_binary_needs_no_kubeconfig_for_local_verbs_and_prints_plain_text_to_a_pipe() {
    let home = tempfile::tempdir().unwrap();
    let tug = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tug"))
            .args(args)
            .env("HOME", home.path())
            .env_remove("KUBECONFIG")
            .env_remove("NO_COLOR")
            .output()
            .unwrap()
    };
    let out = tug(&["completion", "bash"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = tug(&["version", "--client"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text,
        format!("Client Version: v{}\n", env!("CARGO_PKG_VERSION"))
    );
    assert!(!text.contains('\x1b'));
    // A verb that needs a cluster says where the kubeconfig should be.
    let out = tug(&["get", "pods"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no kubeconfig found"), "{err}");
    let out = tug(&["config", "get-contexts"]);
    assert_eq!(out.status.code(), Some(1));
}
