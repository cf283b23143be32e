//! The API over real TCP connections with mutual TLS: who gets in, who does not, and pairing.

mod common;

use std::time::Duration;

use common::{TestRouter, identity_from, other_authority};
use routerd::pki::Validity;
use routerd_proto::{identity::Identity, pairing_code::PairingCode, v1 as pb};
use rtrctl::{commands::get_status, connect, error::CliError};
use time::OffsetDateTime;

/// Any RPC either works or fails within this bound; it guards against hangs, it measures nothing.
const GUARD: Duration = Duration::from_secs(30);

async fn status_with(router: &TestRouter, identity: &Identity) -> Result<pb::GetStatusResponse, CliError> {
    tokio::time::timeout(GUARD, async { get_status(router.channel(identity).await?).await })
        .await
        .expect("the call finished")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_identity_is_served() {
    let router = TestRouter::start().await;
    let status = status_with(&router, &router.identity("laptop")).await.expect("status");
    assert_eq!(status.version, routerd::VERSION);
    let api = status.services.iter().find(|s| s.name == "api").expect("api service listed");
    assert_eq!(api.state, pb::ServiceState::Running as i32);
    assert!(status.interfaces.iter().any(|i| i.name == "lo"), "{:?}", status.interfaces);
    // This machine has no uplink0: no lease may be reported (never a made-up one).
    let uplink = status.uplink.expect("the uplink section is always there");
    assert!(uplink.dhcp4.is_none() && uplink.dhcp6.is_none(), "{uplink:?}");
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_without_certificate_may_only_pair() {
    let router = TestRouter::start().await;
    // The pairing TLS configuration presents no client certificate.
    let (code, _) = router.authority.create_pairing_code(OffsetDateTime::now_utc()).expect("code");
    let channel =
        connect::channel(&router.router_addr(), connect::pairing_tls(&code).expect("tls")).await.expect("connects");
    let error = get_status(channel.clone()).await.expect_err("must be refused");
    assert!(matches!(&error, CliError::IdentityRejected(m) if m.contains("requires a client identity")), "{error:?}");
    let error = pb::pki_service_client::PkiServiceClient::new(channel)
        .list_client_identities(pb::ListClientIdentitiesRequest {})
        .await
        .expect_err("must be refused");
    assert_eq!(error.code(), tonic::Code::Unauthenticated);
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_from_another_routers_ca_is_rejected() {
    let router = TestRouter::start().await;
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other = other_authority(other_dir.path());
    let foreign = identity_from(&other, "intruder", Validity::default());

    // Trusting this router's CA but presenting a certificate from another CA: the router refuses it.
    let mixed = Identity {
        certificate: foreign.certificate.clone(),
        private_key: foreign.private_key.clone_key(),
        ca_certificate: router.authority.ca_der().clone(),
    };
    let error = status_with(&router, &mixed).await.expect_err("must be rejected");
    assert!(matches!(error, CliError::IdentityRejected(_)), "{error:?}");

    // The whole identity of another router: rtrctl notices the router's certificate does not match.
    let error = status_with(&router, &foreign).await.expect_err("must be rejected");
    assert!(matches!(error, CliError::RouterCertificateMismatch { .. }), "{error:?}");
    assert!(error.to_string().contains("does not match the identity's CA"), "{error}");
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_identity_is_rejected_from_then_on() {
    let router = TestRouter::start().await;
    let identity = router.identity("phone");
    let keeper = router.identity("laptop");
    let open_channel = router.channel(&identity).await.expect("connects");
    get_status(open_channel.clone()).await.expect("served before revocation");

    // What `routerd pki revoke` does, from outside the daemon.
    router.authority.revoke("phone").expect("revoke");

    // The handshake fails; whether the client still sees the alert's name before the connection closes
    // depends on timing, so only the kind of error is checked.
    let error = status_with(&router, &identity).await.expect_err("new connection rejected");
    assert!(matches!(error, CliError::IdentityRejected(_)), "{error:?}");
    // A connection made before the revocation is refused from its next request on.
    let error = get_status(open_channel).await.expect_err("open connection refused");
    assert!(matches!(&error, CliError::IdentityRejected(m) if m.contains("revoked")), "{error:?}");
    // Other identities are unaffected.
    status_with(&router, &keeper).await.expect("other identity still served");
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_identity_is_rejected() {
    let router = TestRouter::start().await;
    let expired = router.identity_with(
        "old",
        Validity {
            not_before: OffsetDateTime::UNIX_EPOCH,
            not_after: OffsetDateTime::now_utc() - time::Duration::days(1),
        },
    );
    // rtrctl itself notices and says when.
    let error = status_with(&router, &expired).await.expect_err("must be refused");
    assert!(matches!(error, CliError::IdentityExpired(_)), "{error:?}");
    // And the router rejects it too, when a client does not check.
    let result = tokio::time::timeout(GUARD, async {
        let config = connect::identity_tls_unchecked(&expired)?;
        get_status(connect::channel(&router.router_addr(), config).await?).await
    })
    .await
    .expect("finished");
    let error = result.expect_err("must be rejected by the router");
    assert!(matches!(error, CliError::IdentityRejected(_)), "{error:?}");
    router.shutdown().await;
}

async fn pair(router: &TestRouter, code: &PairingCode, name: &str) -> Result<pb::PairResponse, tonic::Status> {
    let channel =
        connect::channel(&router.router_addr(), connect::pairing_tls(code).expect("tls")).await.expect("connects");
    let key = rcgen::KeyPair::generate().expect("key");
    let csr = rcgen::CertificateParams::default().serialize_request(&key).expect("csr").pem().expect("pem");
    let response = pb::pki_service_client::PkiServiceClient::new(channel)
        .pair(pb::PairRequest { code: code.to_string(), name: name.into(), csr_pem: csr })
        .await?
        .into_inner();
    // The new identity must work.
    let pem = routerd_proto::identity::to_pem(
        name,
        &response.certificate_pem,
        &key.serialize_pem(),
        &response.ca_certificate_pem,
    );
    let identity = Identity::from_pem(pem.as_bytes()).expect("identity");
    status_with(router, &identity).await.expect("paired identity is served");
    Ok(response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_code_works_once() {
    let router = TestRouter::start().await;
    let (code, _) = router.authority.create_pairing_code(OffsetDateTime::now_utc()).expect("code");
    let response = pair(&router, &code, "workstation").await.expect("pairs");
    assert_eq!(response.ca_certificate_pem, router.authority.ca_pem());

    let error = pair(&router, &code, "second").await.expect_err("reuse refused");
    assert_eq!(error.code(), tonic::Code::FailedPrecondition);
    assert!(error.message().contains("already used"), "{}", error.message());
    assert!(error.message().contains("workstation"), "{}", error.message());
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_and_expired_pairing_codes_fail() {
    let router = TestRouter::start().await;
    // Right router (fingerprint), wrong secret.
    let wrong = PairingCode::new([9; 8], &router.authority.ca_fingerprint());
    let error = pair(&router, &wrong, "guess").await.expect_err("wrong code refused");
    assert_eq!(error.code(), tonic::Code::PermissionDenied);
    assert!(error.message().contains("not valid"), "{}", error.message());

    let long_ago = OffsetDateTime::now_utc() - time::Duration::minutes(11);
    let (stale, _) = router.authority.create_pairing_code(long_ago).expect("code");
    let error = pair(&router, &stale, "late").await.expect_err("expired code refused");
    assert_eq!(error.code(), tonic::Code::FailedPrecondition);
    assert!(error.message().contains("expired"), "{}", error.message());

    // A name that is taken is refused before the code is used up.
    let (code, _) = router.authority.create_pairing_code(OffsetDateTime::now_utc()).expect("code");
    let _ = router.identity("taken");
    let error = pair(&router, &code, "taken").await.expect_err("taken name refused");
    assert_eq!(error.code(), tonic::Code::AlreadyExists);
    pair(&router, &code, "free").await.expect("the code still works for a free name");
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_with_another_routers_code_is_refused_by_rtrctl() {
    let router = TestRouter::start().await;
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other = other_authority(other_dir.path());
    let (code, _) = other.create_pairing_code(OffsetDateTime::now_utc()).expect("code");
    let result = tokio::time::timeout(GUARD, async {
        let channel = connect::channel(&router.router_addr(), connect::pairing_tls(&code)?).await?;
        pb::pki_service_client::PkiServiceClient::new(channel)
            .pair(pb::PairRequest { code: code.to_string(), name: "x".into(), csr_pem: String::new() })
            .await
            .map_err(|status| CliError::from_status("pairing", &status))
    })
    .await
    .expect("finished");
    let error = result.expect_err("must not pair");
    assert!(matches!(error, CliError::PairingCodeMismatch { .. }), "{error:?}");
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_handshake_does_not_stall_others() {
    let router = TestRouter::start().await;
    // Connections from another host (127.0.0.2) that never speak TLS: more than that host may hold.
    let mut idle = Vec::new();
    for _ in 0..20 {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind("127.0.0.2:0".parse().expect("addr")).expect("bind");
        idle.push(socket.connect(router.addr).await.expect("tcp"));
    }
    status_with(&router, &router.identity("laptop")).await.expect("served while others stall");
    drop(idle);
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_not_built_yet_answer_unimplemented_and_health_and_reflection_are_served() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };

    let router = TestRouter::start().await;
    let channel = router.channel(&router.identity("laptop")).await.expect("connects");

    // System images are for the appliance (routerd started by routerd-init): refused here, nothing staged.
    let header = pb::UploadUpdateRequest {
        content: Some(pb::upload_update_request::Content::Header(pb::UpdateHeader {
            kind: pb::ArtifactKind::SystemImage as i32,
            version: "image".into(),
            size: 1,
            sha256: "0".repeat(64),
        })),
    };
    let error = pb::update_service_client::UpdateServiceClient::new(channel.clone())
        .upload_update(tokio_stream::iter(vec![header]))
        .await
        .expect_err("not the appliance");
    assert_eq!(error.code(), tonic::Code::FailedPrecondition);
    assert!(error.message().contains("appliance"), "{}", error.message());
    // Without its keeper routerd cannot roll an update back, so it does not start one.
    let error = pb::update_service_client::UpdateServiceClient::new(channel.clone())
        .activate_update(pb::ActivateUpdateRequest::default())
        .await
        .expect_err("no keeper");
    assert_eq!(error.code(), tonic::Code::FailedPrecondition);
    assert!(error.message().contains("keeper"), "{}", error.message());

    // Built: on a machine without uplink or LAN the tree is empty, and so healthy.
    let health = pb::diagnostics_service_client::DiagnosticsServiceClient::new(channel.clone())
        .get_health(pb::GetHealthRequest::default())
        .await
        .expect("diagnostics are served")
        .into_inner();
    assert!(health.healthy, "{health:?}");

    let health = tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest { service: "router.v1.SystemService".into() })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(health.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection")
        .into_inner();
    let response = responses.message().await.expect("message").expect("one response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer: {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in [
        "router.v1.SystemService",
        "router.v1.LeaseService",
        "router.v1.PortForwardService",
        "router.v1.DiagnosticsService",
        "router.v1.CaptureService",
        "router.v1.BackupService",
        "router.v1.UpdateService",
        "router.v1.PkiService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.iter().any(|n| n == service), "{service} missing from {names:?}");
    }
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_config_is_reported_and_the_api_keeps_serving() {
    let perm = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        perm.path().join("interfaces.json"),
        "{\"interfaces\": [\n  {\"name\": \"lan0\" \"addr\": \"192.0.2.1/24\"}\n]}",
    )
    .expect("write");
    std::fs::write(perm.path().join("routerd.json"), "").expect("write");
    let router = TestRouter::start_in(perm).await;
    let status = status_with(&router, &router.identity("laptop")).await.expect("status");
    let problems: Vec<(String, String)> = status.config_problems.into_iter().map(|p| (p.file, p.message)).collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert_eq!(problems[0].0, "interfaces.json");
    assert!(problems[0].1.contains("line 2"), "{problems:?}");
    assert_eq!(problems[1], ("routerd.json".to_string(), "the file is empty".to_string()));
    // The broken files are left as they were: the user's to fix.
    assert!(std::fs::read_to_string(router.perm.path().join("interfaces.json")).expect("read").contains("lan0"));
    router.shutdown().await;
}

/// A standard gRPC client (Python grpcio, as grpcurl would) lists the services through reflection, using the
/// identity file exactly as `routerd pki issue-client` writes it, and verifying the server's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_grpc_client_lists_services_with_an_identity_file() {
    let router = TestRouter::start().await;
    let (cert, key) = router.authority.issue_client("grpc-tool", Validity::default()).expect("issue");
    let identity_path = router.perm.path().join("grpc-tool.pem");
    std::fs::write(
        &identity_path,
        routerd_proto::identity::to_pem("grpc-tool", &cert, &key, router.authority.ca_pem()),
    )
    .expect("write identity");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/grpc_list_services.py");
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .arg(router.addr.to_string())
        .arg(&identity_path)
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Python gRPC client failed (run scripts/setup.sh to install grpcio): {stderr}"
    );
    let services: Vec<&str> = stdout.lines().collect();
    for expected in
        ["router.v1.SystemService", "router.v1.PkiService", "router.v1.LeaseService", "grpc.health.v1.Health"]
    {
        assert!(services.contains(&expected), "{expected} missing from {services:?}");
    }
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_on_a_router_without_lans_are_empty_and_changes_say_why() {
    let router = TestRouter::start().await;
    let channel = router.channel(&router.identity("laptop")).await.expect("connects");
    let mut leases = pb::lease_service_client::LeaseServiceClient::new(channel);
    let listed = leases.list_leases(pb::ListLeasesRequest::default()).await.expect("list").into_inner();
    assert!(listed.leases.is_empty() && listed.next_page_token.is_empty());

    let bad_mac = leases
        .create_static_lease(pb::CreateStaticLeaseRequest {
            hardware_addr: "02:00:00".into(),
            addr: "192.0.2.50".into(),
            hostname: String::new(),
        })
        .await
        .expect_err("a bad MAC");
    assert_eq!(bad_mac.code(), tonic::Code::InvalidArgument);
    assert!(bad_mac.message().contains("not a MAC address"), "{}", bad_mac.message());

    let no_lan = leases
        .create_static_lease(pb::CreateStaticLeaseRequest {
            hardware_addr: "02:00:00:00:00:09".into(),
            addr: "192.0.2.50".into(),
            hostname: String::new(),
        })
        .await
        .expect_err("no DHCP server");
    assert_eq!(no_lan.code(), tonic::Code::FailedPrecondition);

    let bad_token = leases
        .list_leases(pb::ListLeasesRequest { page_token: "x".into(), ..Default::default() })
        .await
        .expect_err("a made-up page token");
    assert_eq!(bad_token.code(), tonic::Code::InvalidArgument);
    let bad_mask = leases
        .update_lease(pb::UpdateLeaseRequest {
            lease: Some(pb::Lease { hardware_addr: "02:00:00:00:00:09".into(), ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["addr".into()] }),
        })
        .await
        .expect_err("addr is not writable");
    assert_eq!(bad_mask.code(), tonic::Code::InvalidArgument);
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reboot_outside_the_appliance_is_refused_and_nothing_is_signalled() {
    let router = TestRouter::start().await;
    let identity = router.identity("laptop");
    let channel = router.channel(&identity).await.expect("connects");
    let mut system = pb::system_service_client::SystemServiceClient::new(channel);
    for power_off in [false, true] {
        let refused = system.reboot(pb::RebootRequest { power_off }).await.expect_err("not the appliance");
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
        assert!(refused.message().contains("routerd-init"), "{}", refused.message());
    }
    // Still serving: no signal went anywhere.
    status_with(&router, &identity).await.expect("status after the refusals");
    router.shutdown().await;
}
