//! The kernel command line as the image writes it: `routerd.root=PARTUUID`, `routerd.perm=PARTUUID`,
//! `routerd.hostname=NAME`, `routerd.slot=a|b`.

use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cmdline {
    values: BTreeMap<String, String>,
}

impl Cmdline {
    pub fn parse(text: &str) -> Cmdline {
        let values = text
            .split_whitespace()
            .filter_map(|word| word.split_once('='))
            .filter(|(key, _)| key.starts_with("routerd."))
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        Cmdline { values }
    }

    pub fn read() -> std::io::Result<Cmdline> {
        Ok(Cmdline::parse(&std::fs::read_to_string("/proc/cmdline")?))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_routerds_keys_are_kept() {
        let cmdline = Cmdline::parse("BOOT_IMAGE=/vmlinuz-a console=ttyS0,115200 routerd.root=72747264-02 quiet");
        assert_eq!(cmdline.get("routerd.root"), Some("72747264-02"));
        assert_eq!(cmdline.get("console"), None);
    }
}
