//! Pairing a device: the desktop opens a pairing and shows `https://<LAN IP>:<port>/#<token>` as
//! a QR code; the page sends the token back with a nonce of its own and a name; both screens show
//! a verification code derived from the gateway's certificate, the token and the nonce; the user
//! confirms the code on the desktop, and the device's credential (handed to the page when it
//! claimed the token) starts to work.
//!
//! A token is used once, lives two minutes, and only one pairing is open at a time (opening one
//! closes the last). Claims are rate-limited, so guessing a token costs more than its life. A
//! page that saw another certificate (someone in the middle) computes another code, and the user
//! does not confirm it.

use std::time::{Duration, Instant};

use data_encoding::BASE64URL_NOPAD;

use crate::rate::TokenBucket;

/// How long a pairing token, and a claim waiting for the desktop's confirmation, live.
pub const LIFETIME: Duration = Duration::from_secs(120);
/// Claims (right or wrong) accepted: a burst, then one every few seconds.
const CLAIM_BURST: u32 = 5;
const CLAIMS_PER_SEC: f64 = 0.2;
/// Longest device name kept (characters).
pub const MAX_NAME: usize = 40;

/// Why a claim or a confirmation is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("too many pairing attempts: wait a little")]
    TooFast,
    #[error("no pairing is open: open one on the desktop (/pair-device)")]
    NotOpen,
    #[error("this pairing code is not the one shown, or was used already")]
    WrongToken,
    #[error("this pairing expired: open a new one on the desktop")]
    Expired,
    #[error("no device is waiting for confirmation with code {0}")]
    NoSuchCode(String),
}

/// What the page gets for a token it claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The device's name, as the desktop shows it.
    pub name: String,
    /// The verification code both screens show.
    pub code: String,
    /// The device's credential (base64url, 32 random bytes), working once the desktop confirms.
    pub credential: String,
}

/// A device the desktop confirmed: to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmed {
    pub name: String,
    /// The credential's hash, as [`crate::companion::devices::hash`] makes it.
    pub credential_hash: [u8; 32],
}

struct Open {
    token: String,
    at: Instant,
}

struct Waiting {
    name: String,
    code: String,
    credential_hash: [u8; 32],
    at: Instant,
}

/// The pairing open now, if any, and the claim waiting for confirmation.
pub struct Pairing {
    open: Option<Open>,
    waiting: Option<Waiting>,
    claims: TokenBucket,
}

impl Pairing {
    pub fn new(now: Instant) -> Self {
        Self { open: None, waiting: None, claims: TokenBucket::new(CLAIM_BURST, CLAIMS_PER_SEC, now) }
    }

    /// Opens a pairing, closing any other (and dropping a claim that waits): the token for the
    /// URL's fragment.
    pub fn open(&mut self, now: Instant) -> String {
        let token = BASE64URL_NOPAD.encode(&rand::random::<[u8; 24]>());
        self.open = Some(Open { token: token.clone(), at: now });
        self.waiting = None;
        token
    }

    /// The page presents the token with its nonce and a name for itself. The token is used up
    /// whatever comes of it after; the claim waits for the desktop.
    pub fn claim(
        &mut self,
        token: &str,
        nonce: &[u8],
        name: &str,
        certificate: &[u8; 32],
        now: Instant,
    ) -> Result<Claimed, Refused> {
        if !self.claims.take(now) {
            return Err(Refused::TooFast);
        }
        let open = self.open.as_ref().ok_or(Refused::NotOpen)?;
        if !same(open.token.as_bytes(), token.as_bytes()) {
            return Err(Refused::WrongToken);
        }
        let open = self.open.take().expect("checked");
        if now.duration_since(open.at) > LIFETIME {
            return Err(Refused::Expired);
        }
        let code = code(certificate, token, nonce);
        let credential = rand::random::<[u8; 32]>();
        let credential_hash = super::devices::hash(&BASE64URL_NOPAD.encode(&credential));
        let name = clean_name(name);
        self.waiting = Some(Waiting { name: name.clone(), code: code.clone(), credential_hash, at: now });
        Ok(Claimed { name, code, credential: BASE64URL_NOPAD.encode(&credential) })
    }

    /// The user confirms the code the device shows: that device is paired.
    pub fn confirm(&mut self, code: &str, now: Instant) -> Result<Confirmed, Refused> {
        let waiting = self.waiting.take_if(|w| w.code == code.trim());
        let waiting = waiting.ok_or_else(|| Refused::NoSuchCode(code.trim().to_owned()))?;
        if now.duration_since(waiting.at) > LIFETIME {
            return Err(Refused::Expired);
        }
        Ok(Confirmed { name: waiting.name, credential_hash: waiting.credential_hash })
    }

    /// The device waiting for confirmation: its name and code.
    pub fn waiting(&self, now: Instant) -> Option<(&str, &str)> {
        let w = self.waiting.as_ref().filter(|w| now.duration_since(w.at) <= LIFETIME)?;
        Some((&w.name, &w.code))
    }
}

/// The verification code: six digits from the certificate's fingerprint, the token and the
/// page's nonce (the page computes the same with SubtleCrypto's SHA-256).
pub fn code(certificate: &[u8; 32], token: &str, nonce: &[u8]) -> String {
    use ring::digest::{Context, SHA256};
    let mut h = Context::new(&SHA256);
    h.update(b"partyline companion pairing v1\0");
    h.update(certificate);
    h.update(token.as_bytes());
    h.update(nonce);
    let d = h.finish();
    let n = u32::from_be_bytes([d.as_ref()[0], d.as_ref()[1], d.as_ref()[2], d.as_ref()[3]]);
    format!("{:06}", n % 1_000_000)
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A name to show for the device: printable, trimmed, at most [`MAX_NAME`] characters.
fn clean_name(name: &str) -> String {
    let name: String = name.chars().filter(|c| !c.is_control()).take(MAX_NAME).collect();
    let name = name.trim();
    if name.is_empty() { "device".to_owned() } else { name.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: [u8; 32] = [7; 32];

    #[test]
    fn a_token_pairs_once_and_the_desktop_confirms_the_code() {
        let t0 = Instant::now();
        let mut p = Pairing::new(t0);
        let token = p.open(t0);
        let claimed = p.claim(&token, b"nonce", "Pixel\u{7}  ", &CERT, t0).unwrap();
        assert_eq!(claimed.code, code(&CERT, &token, b"nonce"));
        assert_eq!(claimed.code.len(), 6);
        assert_eq!(p.waiting(t0), Some(("Pixel", claimed.code.as_str())));
        // Used: the same token again is refused.
        assert_eq!(p.claim(&token, b"nonce", "again", &CERT, t0), Err(Refused::NotOpen));
        assert!(matches!(p.confirm("000000x", t0), Err(Refused::NoSuchCode(_))));
        let confirmed = p.confirm(&claimed.code, t0).unwrap();
        assert_eq!(confirmed.name, "Pixel");
        assert_eq!(confirmed.credential_hash, crate::companion::devices::hash(&claimed.credential));
        assert!(p.confirm(&claimed.code, t0).is_err(), "confirmed once");
    }

    #[test]
    fn wrong_expired_and_replaced_tokens_are_refused_and_guessing_is_slow() {
        let t0 = Instant::now();
        let mut p = Pairing::new(t0);
        assert_eq!(p.claim("x", b"n", "d", &CERT, t0), Err(Refused::NotOpen));
        let old = p.open(t0);
        let token = p.open(t0);
        assert_eq!(p.claim(&old, b"n", "d", &CERT, t0), Err(Refused::WrongToken), "one pairing at a time");
        let late = t0 + LIFETIME + Duration::from_secs(1);
        assert_eq!(p.claim(&token, b"n", "d", &CERT, late), Err(Refused::Expired));
        assert_eq!(
            p.claim(&token, b"n", "d", &CERT, late),
            Err(Refused::NotOpen),
            "an expired token is gone"
        );
        // Past the burst, claims are refused before the token is even looked at.
        let token = p.open(late);
        let refused: Vec<_> = (0..10).map(|_| p.claim("guess", b"n", "d", &CERT, late)).collect();
        assert!(refused.contains(&Err(Refused::TooFast)), "{refused:?}");
        assert_eq!(p.claim(&token, b"n", "d", &CERT, late), Err(Refused::TooFast));
        assert!(p.claim(&token, b"n", "d", &CERT, late + Duration::from_secs(6)).is_ok());
    }

    #[test]
    fn another_certificate_or_nonce_gives_another_code_and_a_late_confirmation_fails() {
        assert_ne!(
            code(&CERT, "t", b"n"),
            code(&[8; 32], "t", b"n"),
            "someone in the middle shows another code"
        );
        assert_ne!(code(&CERT, "t", b"n"), code(&CERT, "t", b"m"));
        let t0 = Instant::now();
        let mut p = Pairing::new(t0);
        let token = p.open(t0);
        let claimed = p.claim(&token, b"n", "d", &CERT, t0).unwrap();
        assert_eq!(p.confirm(&claimed.code, t0 + LIFETIME + Duration::from_secs(1)), Err(Refused::Expired));
    }
}
