//! Relays.
