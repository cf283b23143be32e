//! What a hostile LAN host can do to the API without an identity: hold sockets (idle connections are closed,
//! handshakes are capped), guess pairing codes (the code is checked first, failures are rate-limited); and what
//! the owner does after a leak: replace the CA.

mod common;

use std::{sync::Arc, time::Duration};

use common::TestRouter;
use routerd::api::{sessions::MAX_HANDSHAKES_PER_SOURCE, tls::UNAUTHENTICATED_IDLE};
use routerd_proto::{pairing_code::PairingCode, v1 as pb};
use rtrctl::connect;
use time::OffsetDateTime;
use tokio::{io::AsyncReadExt, net::TcpStream};

/// Guards against hangs; it measures nothing.
const GUARD: Duration = Duration::from_secs(30);

async fn pair(router: &TestRouter, code: &str, name: &str) -> Result<pb::PairResponse, tonic::Status> {
    // Any code of this router's CA makes a pairing TLS configuration; the server checks the secret.
    let pin = PairingCode::new([0; 8], &router.authority.ca_fingerprint());
    let channel =
        connect::channel(&router.router_addr(), connect::pairing_tls(&pin).expect("tls")).await.expect("connects");
    let key = rcgen::KeyPair::generate().expect("key");
    let csr = rcgen::CertificateParams::default().serialize_request(&key).expect("csr").pem().expect("pem");
    let request = pb::PairRequest { code: code.to_string(), name: name.into(), csr_pem: csr };
    let mut client = pb::pki_service_client::PkiServiceClient::new(channel);
    tokio::time::timeout(GUARD, client.pair(request)).await.expect("finished").map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_checks_the_code_before_anything_else_and_slows_down_guessing() {
    let router = TestRouter::start().await;
    let _ = router.identity("taken");
    // A wrong code with a taken name and a broken request: the caller learns only that the code is wrong.
    let wrong = PairingCode::new([9; 8], &router.authority.ca_fingerprint()).to_string();
    let error = pair(&router, &wrong, "taken").await.expect_err("refused");
    assert_eq!(error.code(), tonic::Code::PermissionDenied, "{error:?}");
    let error = pair(&router, "not-a-code", "taken").await.expect_err("refused");
    assert_eq!(error.code(), tonic::Code::PermissionDenied, "{error:?}");

    // Three more failures are free, the sixth is answered too; then this address has to wait, even with a
    // valid code.
    for _ in 0..3 {
        let error = pair(&router, &wrong, "guess").await.expect_err("refused");
        assert_eq!(error.code(), tonic::Code::PermissionDenied);
    }
    let error = pair(&router, &wrong, "guess").await.expect_err("refused");
    assert_eq!(error.code(), tonic::Code::PermissionDenied, "the sixth failure is still answered");
    let (code, _) = router.authority.create_pairing_code(OffsetDateTime::now_utc()).expect("code");
    let error = pair(&router, &code.to_string(), "owner").await.expect_err("throttled");
    assert_eq!(error.code(), tonic::Code::ResourceExhausted, "{error:?}");
    assert!(error.message().contains("too many failed pairing attempts"), "{}", error.message());

    // After the wait, a valid code works, and only then is a taken name reported.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let error = pair(&router, &code.to_string(), "taken").await.expect_err("name taken");
    assert_eq!(error.code(), tonic::Code::AlreadyExists, "{error:?}");
    pair(&router, &code.to_string(), "owner").await.expect("pairs");
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_a_certificate_is_closed_when_idle() {
    let router = TestRouter::start().await;
    let pin = PairingCode::new([0; 8], &router.authority.ca_fingerprint());
    let config = Arc::new(connect::pairing_tls(&pin).expect("tls"));
    let tcp = TcpStream::connect(router.addr).await.expect("connects");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.expect("handshake");
    // Say nothing: the router closes the connection after its idle limit.
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(UNAUTHENTICATED_IDLE + GUARD, async {
        loop {
            match tls.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue, // the server's HTTP/2 preface and settings
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the idle connection was not closed");
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_host_cannot_hold_more_than_its_share_of_handshakes() {
    let router = TestRouter::start().await;
    // Connections that never send a ClientHello occupy handshake slots.
    let mut held = Vec::new();
    for _ in 0..MAX_HANDSHAKES_PER_SOURCE {
        held.push(TcpStream::connect(router.addr).await.expect("connects"));
    }
    // Let the router accept them all.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut extra = TcpStream::connect(router.addr).await.expect("the kernel accepts");
    let mut buffer = [0u8; 16];
    let closed = tokio::time::timeout(GUARD, extra.read(&mut buffer)).await.expect("answered");
    assert!(matches!(closed, Ok(0) | Err(_)), "the connection over the cap was kept: {closed:?}");
    // The held ones are still open (their handshake time has not run out): a read waits.
    let waiting = tokio::time::timeout(Duration::from_millis(200), held[0].read(&mut buffer)).await;
    assert!(waiting.is_err(), "a held connection was closed: {waiting:?}");
    drop(held);
    // Once they are gone, the same host is served again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = tokio::time::timeout(GUARD, async {
        rtrctl::commands::get_status(router.channel(&router.identity("laptop")).await?).await
    })
    .await
    .expect("finished");
    assert!(status.is_ok(), "{status:?}");
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_ca_invalidates_every_identity_and_hands_out_a_code_for_the_new_one() {
    let router = TestRouter::start().await;
    let laptop = router.identity("laptop");
    let channel = router.channel(&laptop).await.expect("connects");
    let mut client = pb::pki_service_client::PkiServiceClient::new(channel);
    let rotated =
        tokio::time::timeout(GUARD, client.rotate_certificate_authority(pb::RotateCertificateAuthorityRequest {}))
            .await
            .expect("finished")
            .expect("rotated")
            .into_inner();
    let old = router.authority.ca_fingerprint();
    assert_ne!(rotated.ca_fingerprint_sha256, data_encoding::HEXLOWER.encode(&old));
    let new = routerd::pki::Authority::load_or_create(routerd::pki::PkiPaths::new(router.perm.path()), "test")
        .expect("the new CA");
    assert_eq!(rotated.ca_fingerprint_sha256, data_encoding::HEXLOWER.encode(&new.ca_fingerprint()));
    assert!(new.clients().expect("clients").is_empty());
    let code = PairingCode::parse(&rotated.pairing_code).expect("a pairing code");
    assert!(code.pins(&new.ca_fingerprint()), "the code is for the new CA");
    new.check_pairing_code(&code, OffsetDateTime::now_utc()).expect("usable");
    // The daemon asked to be started again (with the new CA): its open connections are closed.
    let mut restart = router.restart_requested();
    tokio::time::timeout(GUARD, restart.wait_for(|asked| *asked)).await.expect("restart asked").expect("watch");
    router.shutdown().await;
}
