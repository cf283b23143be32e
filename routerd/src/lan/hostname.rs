//! Hostnames from DHCP clients, made into valid DNS labels (router7's dnsd crashed on names with spaces).

/// A DNS label (RFC 1035 §2.3.1, lower-cased): letters, digits and inner hyphens, at most 63 bytes. Spaces and
/// underscores become hyphens, other characters (non-ASCII, punctuation) are dropped; `None` if nothing is left.
pub(crate) fn sanitize(raw: &str) -> Option<String> {
    // A client may send a fully qualified name: the first label is its host name.
    let first = raw.split('.').next().unwrap_or_default();
    let mut label = String::with_capacity(first.len());
    for c in first.chars() {
        match c {
            'a'..='z' | '0'..='9' => label.push(c),
            'A'..='Z' => label.push(c.to_ascii_lowercase()),
            ' ' | '_' | '-' if !label.ends_with('-') => label.push('-'),
            _ => {}
        }
    }
    let label = label.trim_matches('-');
    let label = &label[..label.len().min(63)];
    let label = label.trim_end_matches('-');
    (!label.is_empty()).then(|| label.to_string())
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn client_names_become_labels() {
        assert_eq!(sanitize("Kitchen Tablet").as_deref(), Some("kitchen-tablet"));
        assert_eq!(sanitize("study-laptop.fritz.box").as_deref(), Some("study-laptop"));
        assert_eq!(sanitize("Zoë’s iPhone").as_deref(), Some("zos-iphone"));
        assert_eq!(sanitize("__printer__").as_deref(), Some("printer"));
        assert_eq!(sanitize("---").as_deref(), None);
        assert_eq!(sanitize("日本").as_deref(), None);
        assert_eq!(sanitize("").as_deref(), None);
        let long = "a".repeat(100);
        assert_eq!(sanitize(&long).map(|l| l.len()), Some(63));
        assert_eq!(sanitize(&format!("{}-b", "a".repeat(62))).as_deref(), Some("a".repeat(62).as_str()));
    }
}
