//! `routerd-image build` refuses what it cannot build an image from, with the file and the reason, before it
//! writes anything, and leaves no half-written image behind.

use std::{path::Path, process::Command};

fn build(perm: &Path, out: &Path, extra: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_routerd-image"))
        .arg("build")
        .arg("--perm")
        .arg(perm)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("routerd-image runs");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

fn good_perm(dir: &Path) {
    std::fs::write(
        dir.join("interfaces.json"),
        r#"{"interfaces":[{"name":"uplink0","hardware_addr":"02:00:00:00:00:01"},{"name":"lan0","hardware_addr":"02:00:00:00:01:00","addr":"192.0.2.1/24"}]}"#,
    )
    .expect("interfaces.json");
}

/// Nothing named like the image, finished or partial, in its directory.
fn nothing_written(dir: &Path) {
    let left: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|name| name.contains("router.img"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_perm_directory_routerd_would_refuse_is_refused_with_the_file_and_the_reason() {
    let work = tempfile::tempdir().expect("temp");
    let perm = work.path().join("perm");
    std::fs::create_dir(&perm).expect("perm");
    let out = work.path().join("router.img");

    let (ok, text) = build(&perm, &out, &[]);
    assert!(!ok && text.contains("interfaces.json: missing"), "{text}");

    good_perm(&perm);
    std::fs::write(perm.join("routerd.json"), "{ \"dhcp_ranges\": 7 ").expect("routerd.json");
    let (ok, text) = build(&perm, &out, &[]);
    assert!(!ok && text.contains("routerd.json"), "{text}");

    std::fs::remove_file(perm.join("routerd.json")).expect("rm");
    std::fs::create_dir_all(perm.join("tls")).expect("tls");
    std::fs::write(perm.join("tls/ca.pem"), "not a certificate").expect("ca");
    let (ok, text) = build(&perm, &out, &[]);
    assert!(!ok && text.contains("tls/"), "{text}");
    nothing_written(work.path());
}

#[test]
fn a_small_size_a_missing_kernel_package_and_an_unwritable_out_are_refused() {
    let work = tempfile::tempdir().expect("temp");
    let perm = work.path().join("perm");
    std::fs::create_dir(&perm).expect("perm");
    good_perm(&perm);
    let out = work.path().join("router.img");

    let (ok, text) = build(&perm, &out, &["--size", "300M"]);
    assert!(!ok && text.contains("too small") && text.contains("at least 641 MiB"), "{text}");
    let (ok, text) = build(&perm, &out, &["--size", "big"]);
    assert!(!ok && text.contains("2G or 1024M"), "{text}");

    let missing = work.path().join("linux-image-none.deb");
    let (ok, text) = build(&perm, &out, &["--kernel-deb", &missing.display().to_string()]);
    assert!(!ok && text.contains("linux-image-none.deb: no such file"), "{text}");

    let (ok, text) = build(&perm, Path::new("/nonexistent-dir/router.img"), &[]);
    assert!(!ok && text.contains("/nonexistent-dir does not exist"), "{text}");
    nothing_written(work.path());
}
