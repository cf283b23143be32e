//! The virtual home-network harness (network namespaces with real peers) lives here.
