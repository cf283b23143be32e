//! Services whose behaviour later work builds. Every method answers UNIMPLEMENTED (the generated default),
//! never made-up data.

use routerd_proto::v1::{backup_service_server::BackupService, update_service_server::UpdateService};

#[derive(Clone, Copy, Debug, Default)]
pub struct NotBuilt;

#[tonic::async_trait]
impl BackupService for NotBuilt {}
#[tonic::async_trait]
impl UpdateService for NotBuilt {}
