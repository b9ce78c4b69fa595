//! The gateway's certificate: self-signed, made once per install and kept in the data directory,
//! for the machine's current LAN addresses (and 127.0.0.1), and made again when those change. A
//! phone cannot check it against an authority; the pairing code covers its fingerprint instead
//! (a certificate put in the middle shows another code).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

/// The certificate and its key, as the gateway serves them.
#[derive(Clone)]
pub struct Certificate {
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
    /// The addresses it names.
    pub ips: Vec<IpAddr>,
}

impl Certificate {
    /// SHA-256 of the certificate: what the pairing code covers (the page reads it from the
    /// gateway over the same connection: what its browser accepted).
    pub fn fingerprint(&self) -> [u8; 32] {
        sha256(&self.cert_der)
    }

    /// Base64 SHA-256 of its public key (SubjectPublicKeyInfo): what Chromium's
    /// `--ignore-certificate-errors-spki-list` pins.
    pub fn spki_pin(&self) -> Result<String> {
        let key = KeyPair::try_from(self.key_der.as_slice()).context("the gateway's key")?;
        Ok(data_encoding::BASE64.encode(&sha256(&key.public_key_der())))
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().try_into().expect("32 bytes")
}

/// The machine's addresses a device on the LAN may reach: private, link-local-free IPv4 (and
/// IPv6 unique local) addresses, and loopback.
pub fn lan_ips() -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| match ip {
            IpAddr::V4(v4) => v4.is_private(),
            IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
        })
        .collect();
    ips.push(IpAddr::from([127, 0, 0, 1]));
    ips.sort();
    ips.dedup();
    ips
}

/// The certificate kept in `dir` if it names exactly `ips`; else a new one, kept there.
pub fn load_or_make(dir: &Path, ips: &[IpAddr]) -> Result<Certificate> {
    let files = |name: &str| -> PathBuf { dir.join(name) };
    if let (Ok(cert_der), Ok(key_der), Ok(named)) = (
        std::fs::read(files("cert.der")),
        std::fs::read(files("key.der")),
        std::fs::read_to_string(files("ips")),
    ) && named == ips_text(ips)
    {
        return Ok(Certificate { cert_der, key_der, ips: ips.to_vec() });
    }
    let made = make(ips)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    crate::paths::private_file(&files("key.der"))?;
    std::fs::write(files("key.der"), &made.key_der)?;
    std::fs::write(files("cert.der"), &made.cert_der)?;
    std::fs::write(files("ips"), ips_text(ips))?;
    Ok(made)
}

fn ips_text(ips: &[IpAddr]) -> String {
    ips.iter().map(|ip| format!("{ip}\n")).collect()
}

fn make(ips: &[IpAddr]) -> Result<Certificate> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "Partyline companion");
    params.distinguished_name = name;
    params.subject_alt_names = ips.iter().map(|ip| SanType::IpAddress(*ip)).collect();
    let cert = params.self_signed(&key)?;
    Ok(Certificate { cert_der: cert.der().to_vec(), key_der: key.serialize_der(), ips: ips.to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_is_kept_and_made_again_when_the_addresses_change() {
        let dir = tempfile::tempdir().unwrap();
        let home: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "192.168.1.20".parse().unwrap()];
        let first = load_or_make(dir.path(), &home).unwrap();
        let again = load_or_make(dir.path(), &home).unwrap();
        assert_eq!(first.fingerprint(), again.fingerprint(), "kept across restarts");
        assert_eq!(first.spki_pin().unwrap().len(), 44);
        let moved: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "10.0.0.7".parse().unwrap()];
        let other = load_or_make(dir.path(), &moved).unwrap();
        assert_ne!(first.fingerprint(), other.fingerprint(), "new addresses, new certificate");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("key.der")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key is private");
        assert!(lan_ips().contains(&"127.0.0.1".parse().unwrap()));
    }
}
