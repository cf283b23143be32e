//! Pairing codes: a one-time secret plus the fingerprint of the router's CA certificate.
//!
//! The fingerprint lets `rtrctl pair` authenticate the router before it has any identity; the secret
//! authorises one client certificate. Codes are base32 (no padding, lower case) in groups of four.

use data_encoding::BASE32_NOPAD;

/// Length of the secret part in bytes (64 bits: a one-time code valid for minutes).
pub const SECRET_LEN: usize = 8;
/// Length of the CA fingerprint prefix in bytes (96 bits of SHA-256).
pub const FINGERPRINT_LEN: usize = 12;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PairingCodeError {
    #[error("a pairing code has {expected} characters (letters a–z and digits 2–7), this one has {found}")]
    Length { expected: usize, found: usize },
    #[error("a pairing code has only letters a–z and digits 2–7; {0:?} is not one of them")]
    Character(char),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairingCode {
    pub secret: [u8; SECRET_LEN],
    pub ca_fingerprint: [u8; FINGERPRINT_LEN],
}

impl PairingCode {
    /// `ca_fingerprint` is the whole SHA-256; the code carries its first bytes.
    pub fn new(secret: [u8; SECRET_LEN], ca_fingerprint: &[u8; 32]) -> PairingCode {
        let mut prefix = [0u8; FINGERPRINT_LEN];
        prefix.copy_from_slice(&ca_fingerprint[..FINGERPRINT_LEN]);
        PairingCode { secret, ca_fingerprint: prefix }
    }

    /// Parses a code as typed: case, spaces and dashes do not matter.
    pub fn parse(text: &str) -> Result<PairingCode, PairingCodeError> {
        let cleaned: String =
            text.chars().filter(|c| !c.is_whitespace() && *c != '-').map(|c| c.to_ascii_uppercase()).collect();
        if let Some(bad) = cleaned.chars().find(|c| !matches!(c, 'A'..='Z' | '2'..='7')) {
            return Err(PairingCodeError::Character(bad));
        }
        let expected = BASE32_NOPAD.encode_len(SECRET_LEN + FINGERPRINT_LEN);
        if cleaned.len() != expected {
            return Err(PairingCodeError::Length { expected, found: cleaned.len() });
        }
        let bytes = BASE32_NOPAD
            .decode(cleaned.as_bytes())
            .map_err(|_| PairingCodeError::Length { expected, found: cleaned.len() })?;
        let mut secret = [0u8; SECRET_LEN];
        let mut ca_fingerprint = [0u8; FINGERPRINT_LEN];
        secret.copy_from_slice(&bytes[..SECRET_LEN]);
        ca_fingerprint.copy_from_slice(&bytes[SECRET_LEN..]);
        Ok(PairingCode { secret, ca_fingerprint })
    }

    /// True when `fingerprint` (a whole SHA-256) is the one this code pins.
    pub fn pins(&self, fingerprint: &[u8; 32]) -> bool {
        fingerprint[..FINGERPRINT_LEN] == self.ca_fingerprint
    }

    /// Identifies the code on the router without storing the secret itself.
    pub fn secret_digest_hex(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.secret);
        data_encoding::HEXLOWER.encode(digest.as_ref())
    }
}

impl std::fmt::Display for PairingCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut bytes = self.secret.to_vec();
        bytes.extend_from_slice(&self.ca_fingerprint);
        let text = BASE32_NOPAD.encode(&bytes).to_ascii_lowercase();
        let groups: Vec<&str> = text.as_bytes().chunks(4).filter_map(|c| std::str::from_utf8(c).ok()).collect();
        f.write_str(&groups.join("-"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_lenient_typing() {
        let code = PairingCode::new([1, 2, 3, 4, 5, 6, 7, 8], &[0xab; 32]);
        let text = code.to_string();
        assert_eq!(text.len(), 32 + 7, "{text}");
        assert_eq!(PairingCode::parse(&text), Ok(code.clone()));
        assert_eq!(PairingCode::parse(&text.to_uppercase().replace('-', " ")), Ok(code.clone()));
        assert!(code.pins(&[0xab; 32]));
        assert!(!code.pins(&[0xac; 32]));
    }

    #[test]
    fn malformed_codes() {
        assert_eq!(PairingCode::parse("abcd"), Err(PairingCodeError::Length { expected: 32, found: 4 }));
        assert_eq!(PairingCode::parse("abc1"), Err(PairingCodeError::Character('1')));
        assert_eq!(PairingCode::parse(""), Err(PairingCodeError::Length { expected: 32, found: 0 }));
    }
}
