//! `routerd run` as an init system runs it: logs on stderr, clean shutdown on SIGTERM and SIGINT.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

/// Starts routerd on a loopback port chosen by the kernel, waits until it serves, sends `signal`, and returns
/// (exit status, every stderr line).
fn run_until_signal(signal: libc::c_int) -> (std::process::ExitStatus, Vec<String>) {
    let perm = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_routerd"))
        .args(["run", "--perm"])
        .arg(perm.path())
        .args(["--listen", "127.0.0.1:0"])
        .env("ROUTERD_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("routerd starts");
    let stderr = child.stderr.take().expect("stderr");
    let (lines_tx, lines_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    // Bounded wait: a routerd that never serves fails the test instead of hanging it.
    while let Ok(line) = lines_rx.recv_timeout(Duration::from_secs(30)) {
        let serving = line.contains("serving gRPC");
        lines.push(line);
        if serving {
            break;
        }
    }
    assert!(lines.iter().any(|l| l.contains("serving gRPC")), "routerd did not start serving: {lines:#?}");
    // SAFETY: sending a signal to the child we started.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
    let status = child.wait().expect("wait");
    lines.extend(lines_rx.try_iter());
    (status, lines)
}

#[test]
fn sigterm_stops_cleanly_and_logs_name_services() {
    let (status, lines) = run_until_signal(libc::SIGTERM);
    assert!(status.success(), "{status:?}: {lines:#?}");
    assert!(lines.iter().any(|l| l.contains("received SIGTERM")), "{lines:#?}");
    let api_lines: Vec<_> = lines.iter().filter(|l| l.contains("name=api")).collect();
    assert!(api_lines.iter().any(|l| l.contains("serving gRPC")), "{lines:#?}");
    assert!(api_lines.iter().any(|l| l.contains("stopped")), "{lines:#?}");
    // One line per event: no line is a continuation of another.
    assert!(lines.iter().all(|l| l.contains(" INFO ") || l.contains(" WARN ") || l.contains(" ERROR ")), "{lines:#?}");
}

#[test]
fn sigint_stops_cleanly() {
    let (status, lines) = run_until_signal(libc::SIGINT);
    assert!(status.success(), "{status:?}: {lines:#?}");
    assert!(lines.iter().any(|l| l.contains("received SIGINT")), "{lines:#?}");
}

#[test]
fn unusable_listen_address_is_a_clear_error() {
    let perm = tempfile::tempdir().expect("tempdir");
    // A port this test holds cannot be bound by routerd.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_routerd"))
        .args(["run", "--perm"])
        .arg(perm.path())
        .args(["--listen", &addr])
        .output()
        .expect("routerd runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("could not listen on any management address"), "{stderr}");
    assert!(stderr.contains(&addr) && stderr.contains("in use"), "{stderr}");
}
