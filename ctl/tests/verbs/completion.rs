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
