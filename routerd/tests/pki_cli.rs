//! The `routerd pki` commands as a user runs them: through the real binary.

use std::process::{Command, Output};

fn routerd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_routerd")).args(args).output().expect("routerd runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn issue_list_revoke_round_trip() {
    let perm = tempfile::tempdir().expect("tempdir");
    let perm_arg = perm.path().to_str().expect("utf-8 path");
    let out = perm.path().join("laptop.pem");
    let out_arg = out.to_str().expect("utf-8 path");

    // The pki commands create the CA when there is none yet.
    let issued = routerd(&["pki", "issue-client", "--perm", perm_arg, "--name", "laptop", "--out", out_arg]);
    assert!(issued.status.success(), "{}", text(&issued.stderr));
    let identity = std::fs::read(&out).expect("identity written");
    routerd_proto::identity::Identity::from_pem(&identity).expect("identity parses");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&out).expect("metadata").permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(perm.path().join("tls/ca.key")).expect("ca.key").permissions().mode() & 0o777, 0o600);

    // An existing identity file is not overwritten by accident.
    let again = routerd(&["pki", "issue-client", "--perm", perm_arg, "--name", "other", "--out", out_arg]);
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("--force"), "{}", text(&again.stderr));
    assert_eq!(std::fs::read(&out).expect("still there"), identity);

    // The same name twice is refused.
    let other_out = perm.path().join("dup.pem");
    let duplicate = routerd(&[
        "pki",
        "issue-client",
        "--perm",
        perm_arg,
        "--name",
        "laptop",
        "--out",
        other_out.to_str().expect("utf-8"),
    ]);
    assert!(!duplicate.status.success());
    assert!(text(&duplicate.stderr).contains("already exists"), "{}", text(&duplicate.stderr));

    let list = routerd(&["pki", "list", "--perm", perm_arg]);
    assert!(text(&list.stdout).contains("laptop") && text(&list.stdout).contains("active"), "{}", text(&list.stdout));

    let revoked = routerd(&["pki", "revoke", "--perm", perm_arg, "--name", "laptop"]);
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    let list = routerd(&["pki", "list", "--perm", perm_arg]);
    assert!(text(&list.stdout).contains("revoked"), "{}", text(&list.stdout));
    let twice = routerd(&["pki", "revoke", "--perm", perm_arg, "--name", "laptop"]);
    assert!(!twice.status.success());
    assert!(text(&twice.stderr).contains("already revoked"), "{}", text(&twice.stderr));
}

#[test]
fn bad_names_and_unknown_identities_are_explained() {
    let perm = tempfile::tempdir().expect("tempdir");
    let perm_arg = perm.path().to_str().expect("utf-8 path");
    let out = perm.path().join("x.pem");
    for bad in ["../escape", "", "with space", ".hidden"] {
        let result =
            routerd(&["pki", "issue-client", "--perm", perm_arg, "--name", bad, "--out", out.to_str().expect("utf-8")]);
        assert!(!result.status.success(), "{bad:?} accepted");
        assert!(text(&result.stderr).contains("not allowed"), "{bad:?}: {}", text(&result.stderr));
    }
    assert!(!out.exists());
    let unknown = routerd(&["pki", "revoke", "--perm", perm_arg, "--name", "nobody"]);
    assert!(!unknown.status.success());
    assert!(text(&unknown.stderr).contains("no identity named \"nobody\""), "{}", text(&unknown.stderr));
}

#[test]
fn pairing_code_is_printed_and_parses() {
    let perm = tempfile::tempdir().expect("tempdir");
    let result = routerd(&["pki", "pairing-code", "--perm", perm.path().to_str().expect("utf-8")]);
    assert!(result.status.success(), "{}", text(&result.stderr));
    let code = text(&result.stdout);
    routerd_proto::pairing_code::PairingCode::parse(code.trim()).expect("the printed code parses");
    assert!(text(&result.stderr).contains("rtrctl pair"), "{}", text(&result.stderr));
}

#[test]
fn corrupt_ca_is_an_error_not_a_new_ca() {
    let perm = tempfile::tempdir().expect("tempdir");
    let tls = perm.path().join("tls");
    std::fs::create_dir_all(&tls).expect("mkdir");
    std::fs::write(tls.join("ca.pem"), "not a certificate").expect("write");
    std::fs::write(tls.join("ca.key"), "not a key").expect("write");
    let result = routerd(&["pki", "list", "--perm", perm.path().to_str().expect("utf-8")]);
    assert!(!result.status.success());
    assert!(text(&result.stderr).contains("ca.key"), "{}", text(&result.stderr));
    // Nothing was replaced: a damaged CA must be restored from a backup, not silently re-created.
    assert_eq!(std::fs::read_to_string(tls.join("ca.pem")).expect("read"), "not a certificate");
}
