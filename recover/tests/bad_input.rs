//! routerd-recover refuses what it cannot install before it serves anything, naming the file and the reason.
//! (Run as root, as routerd-recover must be: CI is root.)

use std::{path::Path, process::Command};

fn recover(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_routerd-recover")).args(args).output().expect("routerd-recover runs");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// 4 KiB with an MBR signature and, when `routerd`, routerd's disk id: what routerd-recover's first check looks at.
fn image(path: &Path, routerd: bool) {
    let mut bytes = vec![0u8; 4096];
    bytes[510] = 0x55;
    bytes[511] = 0xaa;
    if routerd {
        bytes[440..444].copy_from_slice(&routerd_init::layout::DISK_ID.to_le_bytes());
    }
    std::fs::write(path, bytes).expect("image");
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

#[test]
fn an_image_that_is_not_a_routerd_image_is_refused_before_anything_is_served() {
    let dir = tempfile::tempdir().expect("temp dir");
    image(&dir.path().join("other.img"), false);
    let (ok, said) = recover(&["--interface", "lo", "--image", &path(dir.path(), "other.img")]);
    assert!(!ok, "{said}");
    assert!(said.contains("other.img") && said.contains("not a routerd disk image"), "{said}");
    assert!(!said.contains("serving on"), "{said}");
    let (ok, said) = recover(&["--interface", "lo", "--image", &path(dir.path(), "missing.img")]);
    assert!(!ok && said.contains("missing.img"), "{said}");
}

#[test]
fn a_backup_that_fails_the_restore_checks_is_refused_before_anything_is_served() {
    let dir = tempfile::tempdir().expect("temp dir");
    image(&dir.path().join("router.img"), true);
    // Well-formed, but without the router's CA: restored, it would lock every paired device out.
    let backup = routerd::backup::archive::build_raw(&[("routerd.json", tar::EntryType::Regular, b"{}")]);
    std::fs::write(dir.path().join("backup.tar.gz"), backup).expect("backup");
    std::fs::write(dir.path().join("junk.tar.gz"), b"not a backup").expect("junk");
    for (name, reason) in [("backup.tar.gz", "tls/"), ("junk.tar.gz", "gzip")] {
        let (ok, said) = recover(&[
            "--interface",
            "lo",
            "--image",
            &path(dir.path(), "router.img"),
            "--backup",
            &path(dir.path(), name),
        ]);
        assert!(!ok, "{said}");
        assert!(said.contains(name) && said.contains(reason) && said.contains("nothing was served"), "{said}");
        assert!(!said.contains("serving on"), "{said}");
    }
}

#[test]
fn a_bad_mac_and_an_interface_without_an_address_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    image(&dir.path().join("router.img"), true);
    let image = path(dir.path(), "router.img");
    let (ok, said) = recover(&["--interface", "lo", "--image", &image, "--mac", "02:00:zz:00:00:01"]);
    assert!(!ok && said.contains("not a MAC address"), "{said}");
    let (ok, said) = recover(&["--interface", "no-such-nic0", "--image", &image]);
    assert!(!ok && said.contains("no-such-nic0: no such interface"), "{said}");
}
