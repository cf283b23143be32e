//! Revocation and CA rotation take effect on what is already open: a revoked identity's running `rtrctl leases
//! watch` and `rtrctl capture` end at once, and after `routerd pki rotate-ca` no old identity works while the
//! printed code pairs a device again.

use std::{path::Path, time::Duration};

use integration::{Lab, LabOptions, wait};

const TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn a_revoke_ends_open_streams_and_a_new_ca_locks_every_old_identity_out() {
    let lab = Lab::start(LabOptions::default()).expect("the lab starts");
    let router = lab.router();
    let work = lab.work_dir();
    let identity = work.join("watcher.pem");
    let identity_arg = identity.display().to_string();
    lab.check(
        router.routerd_cli(&["pki", "issue-client", "--name", "watcher", "--out", &identity_arg]),
        "issue an identity",
    );

    // Two long-lived streams with that identity, as a person would leave them running.
    let capture_file = work.join("capture.pcapng");
    let base = ["--router", "127.0.0.1:9339", "--identity", &identity_arg].map(String::from).to_vec();
    let spawn = |name: &str, args: &[&str]| {
        let mut all = base.clone();
        all.extend(args.iter().map(|a| a.to_string()));
        lab.check(
            lab.tracker().spawn(
                name,
                router.netns(),
                router.rtrctl_binary(),
                &all,
                &[],
                &work.join(format!("{name}.log")),
            ),
            name,
        )
    };
    let watch = spawn("leases-watch", &["-o", "json", "leases", "watch"]);
    let capture = spawn("capture", &["capture", "-w", &capture_file.display().to_string()]);
    lab.check(
        wait::until("the capture stream", TIMEOUT, || {
            Ok(std::fs::metadata(&capture_file).ok().filter(|m| m.len() > 0).map(drop))
        }),
        "capture started",
    );
    // Both are connected and streaming: neither has exited.
    std::thread::sleep(Duration::from_millis(500));
    assert!(lab.tracker().exit_status(watch).is_none(), "{}", log(&work.join("leases-watch.log")));
    assert!(lab.tracker().exit_status(capture).is_none(), "{}", log(&work.join("capture.log")));

    lab.check(router.routerd_cli(&["pki", "revoke", "--name", "watcher"]), "revoke");
    for (pid, name) in [(watch, "leases-watch"), (capture, "capture")] {
        let status = lab.check(
            wait::until(&format!("{name} to end after the revoke"), Duration::from_secs(10), || {
                Ok(lab.tracker().exit_status(pid))
            }),
            name,
        );
        let said = log(&work.join(format!("{name}.log")));
        assert_ne!(status, "exit status: 0", "{name} ended as if nothing happened: {said}");
        println!("{name} ended ({status}): {said}");
    }
    let routerd_log = router.routerd_log();
    assert!(routerd_log.contains("connection(s) of revoked identities"), "{routerd_log}");
    // Others are not affected.
    let status = lab.check(router.rtrctl(&["status"]), "status with the lab's identity");
    assert!(status.success, "{}", status.combined());

    // A new CA: the printed code pairs again; no identity of the old CA gets in.
    let code = lab.check(router.routerd_cli(&["pki", "rotate-ca"]), "rotate-ca").trim().to_string();
    lab.check(
        wait::until("routerd to start again with the new CA", TIMEOUT, || {
            Ok(router.routerd_log().contains("the router's CA was replaced").then_some(()))
        }),
        "restart",
    );
    let old = lab.check(
        wait::until("the old identity refused", TIMEOUT, || {
            let output = router.rtrctl(&["status"])?;
            Ok((!output.success).then_some(output))
        }),
        "old identity",
    );
    assert!(!old.combined().is_empty());
    let fresh = work.join("fresh.pem").display().to_string();
    let paired = lab.check(
        wait::until("pairing with the new code", TIMEOUT, || {
            let mut command = router.netns().command(router.rtrctl_binary());
            command.args([
                "--router",
                "127.0.0.1:9339",
                "--identity",
                &fresh,
                "pair",
                "--code",
                &code,
                "--name",
                "owner",
            ]);
            let output = integration::command::run_unchecked(&mut command)?;
            Ok(output.success.then_some(output))
        }),
        "pair",
    );
    assert!(paired.stdout.contains("paired as"), "{}", paired.combined());
    let mut command = router.netns().command(router.rtrctl_binary());
    command.args(["--router", "127.0.0.1:9339", "--identity", &fresh, "status"]);
    let status = lab.check(integration::command::run_unchecked(&mut command), "status with the new identity");
    assert!(status.success, "{}", status.combined());
    // The identity file from before the rotation is refused by the router, not only by rtrctl.
    let mut command = router.netns().command(router.rtrctl_binary());
    command.args(["--router", "127.0.0.1:9339", "--identity", &identity_arg, "status"]);
    let refused = lab.check(integration::command::run_unchecked(&mut command), "status with a pre-rotation identity");
    assert!(!refused.success, "{}", refused.combined());
}

fn log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
