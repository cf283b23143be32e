//! BackupService and UpdateService over real mutual TLS, without a network lab: what they refuse (wrong
//! hashes, cut-off streams, malicious archives) changes nothing on disk, and a restore without a keeper applies
//! at once.

mod common;

use std::{collections::BTreeMap, fs, path::Path};

use common::TestRouter;
use routerd::backup::archive;
use routerd_proto::v1 as pb;

use routerd_proto::sha256_hex as sha256;

/// Files under `perm` except dot files (locks), with contents.
fn tree(perm: &Path) -> BTreeMap<String, Vec<u8>> {
    archive::files_under(perm)
        .expect("listing")
        .into_iter()
        .map(|p| (p.display().to_string(), fs::read(perm.join(&p)).expect("read")))
        .collect()
}

fn restore_messages(bytes: &[u8], announced_sha256: &str) -> Vec<pb::RestoreBackupRequest> {
    let header = pb::RestoreBackupRequest {
        content: Some(pb::restore_backup_request::Content::Header(pb::RestoreBackupHeader {
            size: bytes.len() as u64,
            sha256: announced_sha256.to_string(),
        })),
    };
    std::iter::once(header)
        .chain(bytes.chunks(1000).map(|c| pb::RestoreBackupRequest {
            content: Some(pb::restore_backup_request::Content::Chunk(c.to_vec())),
        }))
        .collect()
}

async fn backup(channel: tonic::transport::Channel) -> Vec<u8> {
    let mut stream = pb::backup_service_client::BackupServiceClient::new(channel)
        .create_backup(pb::CreateBackupRequest {})
        .await
        .expect("backup")
        .into_inner();
    let mut bytes = Vec::new();
    let mut summary = None;
    while let Some(message) = stream.message().await.expect("stream") {
        match message.content {
            Some(pb::create_backup_response::Content::Chunk(chunk)) => bytes.extend(chunk),
            Some(pb::create_backup_response::Content::Summary(s)) => summary = Some(s),
            None => {}
        }
    }
    let summary = summary.expect("a summary at the end");
    assert_eq!(summary.sha256, sha256(&bytes));
    assert_eq!(summary.size, bytes.len() as u64);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_that_do_not_check_out_change_nothing_and_a_good_one_applies() {
    let router = TestRouter::start().await;
    let perm = router.perm.path().to_path_buf();
    fs::write(perm.join("routerd.json"), r#"{"hostname": "before"}"#).expect("write");
    let channel = router.channel(&router.identity("laptop")).await.expect("connects");
    let good = backup(channel.clone()).await;
    fs::write(perm.join("routerd.json"), r#"{"hostname": "after"}"#).expect("write");
    let changed = tree(&perm);
    let mut client = pb::backup_service_client::BackupServiceClient::new(channel.clone());

    let wrong_hash = restore_messages(&good, &"0".repeat(64));
    let error = client.restore_backup(tokio_stream::iter(wrong_hash)).await.expect_err("wrong hash");
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert!(
        error.message().contains("SHA-256 mismatch") && error.message().contains("nothing changed"),
        "{}",
        error.message()
    );

    let mut cut = restore_messages(&good, &sha256(&good));
    cut.truncate(cut.len() - 1);
    let error = client.restore_backup(tokio_stream::iter(cut)).await.expect_err("cut off");
    assert!(error.message().contains("the header announced"), "{}", error.message());

    let traversal = archive::build_raw(&[("../outside.json", tar::EntryType::Regular, b"{}")]);
    let error = client
        .restore_backup(tokio_stream::iter(restore_messages(&traversal, &sha256(&traversal))))
        .await
        .expect_err("traversal");
    assert!(error.message().contains("outside --perm"), "{}", error.message());
    let no_header =
        vec![pb::RestoreBackupRequest { content: Some(pb::restore_backup_request::Content::Chunk(vec![1])) }];
    let error = client.restore_backup(tokio_stream::iter(no_header)).await.expect_err("no header");
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert_eq!(tree(&perm), changed, "nothing changed");
    assert!(!perm.parent().expect("parent").join("outside.json").exists());

    // Without a keeper (as here) a good restore is swapped in at once.
    let restored = client
        .restore_backup(tokio_stream::iter(restore_messages(&good, &sha256(&good))))
        .await
        .expect("restored")
        .into_inner();
    assert!(!restored.restarting);
    assert_eq!(fs::read_to_string(perm.join("routerd.json")).expect("read"), r#"{"hostname": "before"}"#);
    router.shutdown().await;
}

fn upload_messages(bytes: &[u8], sha256: &str, size: u64) -> Vec<pb::UploadUpdateRequest> {
    let header = pb::UploadUpdateRequest {
        content: Some(pb::upload_update_request::Content::Header(pb::UpdateHeader {
            kind: pb::ArtifactKind::DaemonBinary as i32,
            version: "test".into(),
            size,
            sha256: sha256.into(),
        })),
    };
    std::iter::once(header)
        .chain(
            bytes.chunks(7).map(|c| pb::UploadUpdateRequest {
                content: Some(pb::upload_update_request::Content::Chunk(c.to_vec())),
            }),
        )
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_staged_only_whole_and_with_the_right_hash() {
    let router = TestRouter::start().await;
    let perm = router.perm.path().to_path_buf();
    let channel = router.channel(&router.identity("laptop")).await.expect("connects");
    let mut client = pb::update_service_client::UpdateServiceClient::new(channel.clone());
    let binary = b"#!/bin/sh\nexec sleep 1\n".to_vec();
    let staged = |perm: &Path| fs::read_dir(perm.join("update/bin")).map(|d| d.count()).unwrap_or(0);

    let error = client
        .upload_update(tokio_stream::iter(upload_messages(&binary, &"a".repeat(64), binary.len() as u64)))
        .await
        .expect_err("hash mismatch");
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert!(
        error.message().contains("SHA-256 mismatch") && error.message().contains("nothing was staged"),
        "{}",
        error.message()
    );
    let error = client
        .upload_update(tokio_stream::iter(upload_messages(&binary[..10], &sha256(&binary), binary.len() as u64)))
        .await
        .expect_err("cut off");
    assert!(error.message().contains("received 10 bytes"), "{}", error.message());
    let text = b"just text, not a program".to_vec();
    let error = client
        .upload_update(tokio_stream::iter(upload_messages(&text, &sha256(&text), text.len() as u64)))
        .await
        .expect_err("not executable");
    assert!(error.message().contains("not an executable"), "{}", error.message());
    assert_eq!(staged(&perm), 0);
    let status = client.get_update_status(pb::GetUpdateStatusRequest {}).await.expect("status").into_inner();
    assert_eq!(status.phase, pb::UpdatePhase::Idle as i32);

    let staged_version = client
        .upload_update(tokio_stream::iter(upload_messages(&binary, &sha256(&binary), binary.len() as u64)))
        .await
        .expect("staged")
        .into_inner()
        .staged_version;
    assert_eq!(staged_version, "test");
    assert_eq!(staged(&perm), 1);
    let status = client.get_update_status(pb::GetUpdateStatusRequest {}).await.expect("status").into_inner();
    assert_eq!((status.phase, status.staged_version.as_str()), (pb::UpdatePhase::Staged as i32, "test"));
    let leftovers: Vec<_> = fs::read_dir(perm.join("update"))
        .expect("update dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A confirm window outside 10 s – 1 h is refused with the range (the same as routerd.json's and rtrctl's),
    // and the staged version stays staged.
    for seconds in [0, 5, 9, 3601] {
        let request = pb::ActivateUpdateRequest { confirm_window: Some(prost_types::Duration { seconds, nanos: 0 }) };
        let error = client.activate_update(request).await.expect_err("a window out of range");
        assert_eq!(error.code(), tonic::Code::InvalidArgument, "{seconds} s");
        assert!(error.message().contains("outside 10–3600 s"), "{}", error.message());
    }
    let status = client.get_update_status(pb::GetUpdateStatusRequest {}).await.expect("status").into_inner();
    assert_eq!(status.phase, pb::UpdatePhase::Staged as i32);
    router.shutdown().await;
}
