//! The user's configuration files under `--perm`: parsed and checked here, owned by the services that apply them.
//!
//! A broken file never stops routerd: it is reported as a [`ConfigProblem`] (in the log and in `rtrctl status`)
//! and the service that needs it runs with defaults until the file is fixed.

mod files;
pub mod forwards;
mod settings;

use std::path::Path;

pub use files::{
    Bridge, DNS_CACHE_BYTES, DNS_QUERIES_PER_SECOND_PER_DEVICE, DNS_WAITING_PER_DEVICE, DiagnosticsConfig, ExtraRoute,
    InterfaceConfig, InterfacesFile, MAX_CAPTURE_RING_PACKETS, PortForwarding, PortForwardingsFile, RouterdFile,
    parse_cidr, parse_dns_name, parse_mac, parse_public_key, parse_range,
};
pub use settings::{Pinhole, Settings};

use crate::store;

pub const INTERFACES_JSON: &str = "interfaces.json";
pub const PORTFORWARDINGS_JSON: &str = "portforwardings.json";
pub const ROUTERD_JSON: &str = "routerd.json";

/// Something wrong with one file under `--perm`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Path relative to `--perm`.
    pub file: String,
    pub message: String,
}

/// All user configuration, with whatever could not be read replaced by defaults.
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub interfaces: InterfacesFile,
    pub port_forwardings: PortForwardingsFile,
    pub routerd: RouterdFile,
    /// routerd.json's settings, parsed once.
    pub settings: Settings,
    pub problems: Vec<ConfigProblem>,
}

impl Config {
    /// Reads every configuration file under `perm`. Missing files mean defaults; broken ones become problems.
    pub fn load(perm: &Path) -> Config {
        let mut problems = Vec::new();
        let interfaces = load_one::<InterfacesFile>(perm, INTERFACES_JSON, &mut problems);
        let port_forwardings = load_one::<PortForwardingsFile>(perm, PORTFORWARDINGS_JSON, &mut problems);
        let routerd = load_one::<RouterdFile>(perm, ROUTERD_JSON, &mut problems);
        for (file, message) in interfaces.validate().into_iter().chain(routerd.validate()) {
            problems.push(ConfigProblem { file: file.to_string(), message });
        }
        // Each broken forward is reported; the others still apply.
        for message in forwards::parse_all(&port_forwardings.forwardings).1 {
            problems.push(ConfigProblem { file: PORTFORWARDINGS_JSON.to_string(), message });
        }
        let settings = routerd.settings();
        Config { interfaces, port_forwardings, routerd, settings, problems }
    }
}

fn load_one<T: serde::de::DeserializeOwned + Default>(perm: &Path, name: &str, problems: &mut Vec<ConfigProblem>) -> T {
    match store::read_json_optional::<T>(&perm.join(name)) {
        Ok(value) => value.unwrap_or_default(),
        Err(error) => {
            let message = match error {
                store::StoreError::Json { message, .. } => message,
                store::StoreError::Io { source, .. } => source.to_string(),
            };
            problems.push(ConfigProblem { file: name.to_string(), message });
            T::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn missing_files_are_defaults_without_problems() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config::load(dir.path());
        assert!(config.problems.is_empty());
        assert!(config.interfaces.interfaces.is_empty());
    }

    #[test]
    fn a_bad_port_forward_is_a_problem_naming_the_entry_and_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(
            dir.path().join(PORTFORWARDINGS_JSON),
            r#"{"forwardings": [{"proto": "tcp", "port": "8080", "dest_addr": "192.0.2.23", "dest_port": "80"},
                                {"proto": "tcp", "port": "70000", "dest_addr": "192.0.2.23", "dest_port": "80"}]}"#,
        )
        .expect("write");
        let config = Config::load(dir.path());
        assert_eq!(config.port_forwardings.forwardings.len(), 2);
        assert_eq!(config.problems.len(), 1, "{:?}", config.problems);
        assert_eq!(config.problems[0].file, PORTFORWARDINGS_JSON);
        assert!(config.problems[0].message.contains("forwardings[1]: port \"70000\""), "{:?}", config.problems);
    }

    #[test]
    fn router7_files_are_read_as_they_are() {
        let dir = tempfile::tempdir().expect("tempdir");
        // router7's example configuration, verbatim apart from addresses.
        fs::write(
            dir.path().join(INTERFACES_JSON),
            r#"{
  "interfaces": [
    {"hardware_addr": "02:73:53:00:ca:fe", "name": "uplink0"},
    {"hardware_addr": "02:73:53:00:b0:0c", "name": "lan0", "addr": "192.0.2.1/24"}
  ]
}"#,
        )
        .expect("write");
        fs::write(
            dir.path().join(PORTFORWARDINGS_JSON),
            r#"{"forwardings":[{"proto":"tcp","port":"8080","dest_addr":"192.0.2.23","dest_port":"9100"},
               {"proto":"tcp,udp","port":"8040-8060","dest_addr":"192.0.2.42","dest_port":"8040-8060"}]}"#,
        )
        .expect("write");
        let config = Config::load(dir.path());
        assert_eq!(config.problems, vec![]);
        assert_eq!(config.interfaces.interfaces[1].addr, "192.0.2.1/24");
        assert_eq!(config.port_forwardings.forwardings[1].port, "8040-8060");
    }

    #[test]
    fn broken_file_is_a_problem_naming_file_and_position_and_others_still_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(INTERFACES_JSON), "{\"interfaces\": [\n  {\"name\": \"lan0\",}\n]}").expect("write");
        fs::write(dir.path().join(PORTFORWARDINGS_JSON), r#"{"forwardings":[]}"#).expect("write");
        fs::write(dir.path().join(ROUTERD_JSON), r#"{"hostname": "gw"}"#).expect("write");
        let config = Config::load(dir.path());
        assert_eq!(config.problems.len(), 1, "{:?}", config.problems);
        assert_eq!(config.problems[0].file, INTERFACES_JSON);
        assert!(config.problems[0].message.contains("line 2"), "{:?}", config.problems);
        assert_eq!(config.routerd.hostname.as_deref(), Some("gw"));
    }

    #[test]
    fn wrong_types_are_problems() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(ROUTERD_JSON), r#"{"hostname": 7}"#).expect("write");
        fs::write(dir.path().join(INTERFACES_JSON), r#"{"interfaces": {"name": "lan0"}}"#).expect("write");
        let config = Config::load(dir.path());
        let files: Vec<_> = config.problems.iter().map(|p| p.file.as_str()).collect();
        assert_eq!(files, vec![INTERFACES_JSON, ROUTERD_JSON]);
        assert!(config.problems[1].message.contains("invalid type"), "{:?}", config.problems);
    }

    #[test]
    fn invalid_values_are_problems() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(
            dir.path().join(INTERFACES_JSON),
            r#"{"interfaces": [{"name": "lan0", "addr": "192.0.2.300/24", "hardware_addr": "zz"},
                              {"name": "", "mtu": 70000}]}"#,
        )
        .expect("write");
        let config = Config::load(dir.path());
        let messages: Vec<_> = config.problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(messages.len(), 4, "{messages:?}");
        assert!(messages.iter().any(|m| m.contains("lan0") && m.contains("192.0.2.300/24")), "{messages:?}");
        assert!(messages.iter().any(|m| m.contains("lan0") && m.contains("\"zz\"")), "{messages:?}");
        assert!(messages.iter().any(|m| m.contains("interfaces[1]") && m.contains("70000")), "{messages:?}");
    }
}
