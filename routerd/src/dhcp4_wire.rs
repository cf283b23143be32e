//! DHCPv4 messages on their bytes, before dhcproto decodes them. A truncated message can still decode (options
//! simply missing), and dhcproto panics on some malformed input (a hardware address length over 16, a classless
//! route with a prefix over 32, option lengths its debug assertions reject): the decoder only ever sees a copy
//! with the known options, each with a valid length and only its first occurrence.

/// An option a reader understands: (code, exact length or 0, and then "a non-empty multiple of" this).
pub type KnownOption = (u8, usize, usize);

/// Options dhcproto decodes as UTF-8 text (hostname, merit dump, domain name, root and extensions path, NIS
/// domain, NetBIOS scope, message, NetWare/IP and NIS+ domains, time zones, captive portal).
const TEXT_OPTIONS: &[u8] = &[12, 14, 15, 17, 18, 40, 47, 56, 62, 64, 100, 101, 114];

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

/// The DHCP message type (option 53) of a well-formed message, for counting.
pub fn message_type(payload: &[u8]) -> Option<u8> {
    let clean = sanitize(payload, &[(53, 1, 0)]).ok()?;
    (clean.get(240) == Some(&53)).then(|| clean.get(242).copied()).flatten()
}

/// Checks the fixed header, the magic cookie and every option's length; returns a copy that keeps only
/// `known` options.
pub fn sanitize(payload: &[u8], known: &[KnownOption]) -> Result<Vec<u8>, Malformed> {
    const OPTIONS_START: usize = 240;
    if payload.len() < OPTIONS_START {
        return Err(Malformed(format!("{} bytes, shorter than the fixed header", payload.len())));
    }
    if payload[2] > 16 {
        return Err(Malformed(format!("hardware address length {} exceeds 16", payload[2])));
    }
    if payload[236..240] != [99, 130, 83, 99] {
        return Err(Malformed("no DHCP magic cookie".into()));
    }
    let mut clean = payload[..OPTIONS_START].to_vec();
    let mut seen = [false; 256];
    let mut at = OPTIONS_START;
    loop {
        match payload.get(at) {
            None => return Err(Malformed("options end without the End option (truncated?)".into())),
            Some(255) => break,
            Some(0) => at += 1,
            Some(&code) => {
                let Some(&len) = payload.get(at + 1) else {
                    return Err(Malformed(format!("option {code} has no length")));
                };
                let len = usize::from(len);
                let Some(value) = payload.get(at + 2..at + 2 + len) else {
                    return Err(Malformed(format!("option {code} claims {len} bytes past the end")));
                };
                at += 2 + len;
                let Some(&(_, exact, multiple)) = known.iter().find(|(known, _, _)| *known == code) else {
                    continue;
                };
                let fits = if exact > 0 { len == exact } else { len > 0 && len % multiple == 0 };
                if !fits {
                    return Err(Malformed(format!("option {code} has an impossible length {len}")));
                }
                // The decoder refuses a whole message for one text option that is not UTF-8; such an option is
                // left out instead (a reader treats it as absent), so a bad domain name or hostname costs only
                // itself.
                if TEXT_OPTIONS.contains(&code) && std::str::from_utf8(value).is_err() {
                    continue;
                }
                if !std::mem::replace(&mut seen[usize::from(code)], true) {
                    clean.push(code);
                    clean.push(len as u8);
                    clean.extend_from_slice(value);
                }
            }
        }
    }
    clean.push(255);
    Ok(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(options: &[u8]) -> Vec<u8> {
        let mut payload = vec![0u8; 236];
        payload[0] = 1;
        payload.extend_from_slice(&[99, 130, 83, 99]);
        payload.extend_from_slice(options);
        payload
    }

    #[test]
    fn a_text_option_that_is_not_utf8_is_left_out_and_the_message_kept() {
        let known = [(15, 0, 1), (53, 1, 1)];
        let clean = sanitize(&message(&[15, 2, 0xff, 0xfe, 53, 1, 5, 255]), &known).expect("kept");
        assert_eq!(&clean[240..], &[53, 1, 5, 255]);
        let clean = sanitize(&message(&[15, 3, b'l', b'a', b'n', 53, 1, 5, 255]), &known).expect("kept");
        assert_eq!(&clean[240..], &[15, 3, b'l', b'a', b'n', 53, 1, 5, 255]);
    }

    #[test]
    fn the_message_type_is_read_only_from_well_formed_messages() {
        assert_eq!(message_type(&message(&[12, 2, b'h', b'i', 53, 1, 3, 255])), Some(3));
        assert_eq!(message_type(&message(&[255])), None, "no option 53");
        assert_eq!(message_type(&message(&[53, 2, 3, 3, 255])), None, "wrong length");
        assert_eq!(message_type(&message(&[53, 1, 3])), None, "no End option");
        assert_eq!(message_type(&[0u8; 100]), None);
    }
}
