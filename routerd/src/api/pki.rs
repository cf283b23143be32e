//! PkiService: pairing, and listing and revoking client identities.

use std::{
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Instant,
};

use routerd_proto::{
    pairing_code::PairingCode,
    v1::{self as pb, pki_service_server::PkiService},
};
use time::OffsetDateTime;
use tonic::{Request, Response, Status};

use super::tls::ConnectionInfo;
use crate::pki::{Authority, PairingError, PkiError, throttle::PairingThrottle, validate_identity_name};

pub(super) struct PkiApi {
    authority: Arc<Authority>,
    throttle: Arc<Mutex<PairingThrottle>>,
}

impl PkiApi {
    pub(super) fn new(authority: Arc<Authority>) -> Self {
        PkiApi { authority, throttle: Arc::default() }
    }

    fn throttle(&self) -> std::sync::MutexGuard<'_, PairingThrottle> {
        self.throttle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn to_status(error: PkiError) -> Status {
    match error {
        PkiError::InvalidName(_) => Status::invalid_argument(error.to_string()),
        PkiError::NameTaken(_) => Status::already_exists(error.to_string()),
        PkiError::UnknownName(_) => Status::not_found(error.to_string()),
        PkiError::AlreadyRevoked(_) => Status::failed_precondition(error.to_string()),
        PkiError::Pairing(PairingError::Unknown | PairingError::OtherRouter) => {
            Status::permission_denied(error.to_string())
        }
        PkiError::Pairing(PairingError::Used { .. } | PairingError::Expired(_)) => {
            Status::failed_precondition(error.to_string())
        }
        PkiError::Certificate { .. } | PkiError::Store(_) | PkiError::Corrupt { .. } => {
            tracing::error!("{error}");
            Status::internal(error.to_string())
        }
    }
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, PkiError> + Send + 'static) -> Result<T, Status> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Status::internal(format!("PKI task failed: {e}")))?
        .map_err(to_status)
}

#[tonic::async_trait]
impl PkiService for PkiApi {
    async fn pair(&self, request: Request<pb::PairRequest>) -> Result<Response<pb::PairResponse>, Status> {
        let remote = request.extensions().get::<ConnectionInfo>().map(|info| info.remote_addr);
        let source = remote.map(|r| r.ip()).unwrap_or(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED));
        let remote = remote.map(|r| r.to_string()).unwrap_or_default();
        let pb::PairRequest { code, name, csr_pem } = request.into_inner();
        if let Err(wait) = self.throttle().check(source, Instant::now()) {
            tracing::info!("pairing from {remote} refused: too many failed attempts");
            return Err(Status::resource_exhausted(format!(
                "too many failed pairing attempts from {source}; try again in {} s",
                wait.as_secs().max(1)
            )));
        }
        // The code first: a caller without a valid one learns nothing about names or requests.
        let authority = self.authority.clone();
        let checked = match PairingCode::parse(&code) {
            Ok(code) => {
                blocking(move || authority.check_pairing_code(&code, OffsetDateTime::now_utc()).map(|()| code)).await
            }
            Err(error) => Err(Status::permission_denied(format!("{error}"))),
        };
        let code = match checked {
            Ok(code) => code,
            Err(status) => {
                self.throttle().failed(source, Instant::now());
                tracing::info!("pairing from {remote} refused: {}", status.message());
                return Err(status);
            }
        };
        validate_identity_name(&name).map_err(to_status)?;
        // Reject a bad request before the code is used up, so a client bug does not burn it.
        rcgen::CertificateSigningRequestParams::from_pem(&csr_pem)
            .map_err(|e| Status::invalid_argument(format!("the certificate request is not valid: {e}")))?;
        let authority = self.authority.clone();
        let paired_from = remote.clone();
        let certificate_pem = blocking(move || {
            if authority.client(&name)?.is_some_and(|record| !record.revoked) {
                return Err(PkiError::NameTaken(name));
            }
            authority.redeem_pairing_code(&code, &name, OffsetDateTime::now_utc())?;
            let pem = authority.sign_client_request(&name, &csr_pem)?;
            tracing::info!("paired client identity {name:?} from {paired_from}");
            Ok(pem)
        })
        .await
        .inspect_err(|status| tracing::info!("pairing from {remote} refused: {}", status.message()))?;
        self.throttle().succeeded(source);
        Ok(Response::new(pb::PairResponse { certificate_pem, ca_certificate_pem: self.authority.ca_pem().to_string() }))
    }

    async fn list_client_identities(
        &self,
        _request: Request<pb::ListClientIdentitiesRequest>,
    ) -> Result<Response<pb::ListClientIdentitiesResponse>, Status> {
        let authority = self.authority.clone();
        let records = blocking(move || authority.clients()).await?;
        Ok(Response::new(pb::ListClientIdentitiesResponse {
            identities: records
                .into_iter()
                .map(|record| pb::ClientIdentity {
                    name: record.name,
                    serial: record.serial,
                    not_after: Some(super::timestamp_from_offset(record.not_after)),
                    revoked: record.revoked,
                })
                .collect(),
        }))
    }

    async fn rotate_certificate_authority(
        &self,
        request: Request<pb::RotateCertificateAuthorityRequest>,
    ) -> Result<Response<pb::RotateCertificateAuthorityResponse>, Status> {
        let caller = request
            .extensions()
            .get::<ConnectionInfo>()
            .and_then(|info| info.client.as_ref().map(|c| c.name.clone()))
            .unwrap_or_default();
        let perm = self.authority.paths().dir.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
        let router_name = crate::system::hostname();
        let rotated =
            blocking(move || crate::pki::rotation::rotate_ca(&perm, &router_name, OffsetDateTime::now_utc())).await?;
        tracing::warn!("{caller:?} replaced the router's CA through the API; starting again with it");
        Ok(Response::new(pb::RotateCertificateAuthorityResponse {
            pairing_code: rotated.pairing_code.to_string(),
            pairing_code_expires: Some(super::timestamp_from_offset(rotated.pairing_code_expires)),
            ca_fingerprint_sha256: data_encoding::HEXLOWER.encode(&rotated.authority.ca_fingerprint()),
        }))
    }

    async fn revoke_client_identity(
        &self,
        request: Request<pb::RevokeClientIdentityRequest>,
    ) -> Result<Response<pb::RevokeClientIdentityResponse>, Status> {
        let name = request.into_inner().name;
        let authority = self.authority.clone();
        blocking(move || authority.revoke(&name)).await?;
        Ok(Response::new(pb::RevokeClientIdentityResponse {}))
    }
}
