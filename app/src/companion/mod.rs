//! The companion gateway: a phone or handheld, paired by a QR code, becomes the player's remote
//! and headset. This part holds what needs no sockets: pairing (one-time tokens, the
//! verification code both screens show, the desktop's confirmation) and the paired devices
//! (credentials stored hashed, last use, revocation). The HTTPS gateway and the page build on
//! them.

pub mod cert;
pub mod devices;
pub mod gateway;
pub mod pairing;
