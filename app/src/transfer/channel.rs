//! The byte streams blob requests travel on: a libp2p stream (any path: direct, relayed, hole
//! punched), or a direct TCP connection between members who can reach each other, sealed with
//! AES-256-GCM under a fresh key handed over their libp2p stream.
//!
//! The sealed channel exists for speed: on a LAN or one machine, libp2p's QUIC spends most of a
//! transfer's CPU on packets of a few kilobytes and on ChaCha20; one TCP connection with
//! 256 KiB records and hardware AES moves the same bytes for a fraction of it. It is as private
//! and as authenticated as the libp2p stream that carried its key: the key is random per
//! connection and known only to the two members, every record is sealed with a nonce made of
//! the direction and a counter (never reused under one key; a record replayed, reordered, cut or
//! altered fails to open and ends the connection).

use std::future::Future;
use std::io;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Plaintext bytes in one sealed record at most.
pub(crate) const RECORD: usize = 256 * 1024;
const TAG: usize = 16;
/// A sealed channel's key, handed over the libp2p stream.
pub(crate) type Key = [u8; 32];

/// A reliable, ordered byte stream in both directions.
pub(crate) trait Channel: Send {
    fn read_exact<'a>(&'a mut self, buf: &'a mut [u8]) -> impl Future<Output = io::Result<()>> + Send + 'a;
    fn write_all<'a>(&'a mut self, buf: &'a [u8]) -> impl Future<Output = io::Result<()>> + Send + 'a;
    /// Sends what is buffered.
    fn flush(&mut self) -> impl Future<Output = io::Result<()>> + Send + '_;
}

impl Channel for libp2p::Stream {
    fn read_exact<'a>(&'a mut self, buf: &'a mut [u8]) -> impl Future<Output = io::Result<()>> + Send + 'a {
        futures::AsyncReadExt::read_exact(self, buf)
    }

    fn write_all<'a>(&'a mut self, buf: &'a [u8]) -> impl Future<Output = io::Result<()>> + Send + 'a {
        futures::AsyncWriteExt::write_all(self, buf)
    }

    fn flush(&mut self) -> impl Future<Output = io::Result<()>> + Send + '_ {
        futures::AsyncWriteExt::flush(self)
    }
}

/// Which end of a sealed channel: each seals with its own direction in the nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// The member asking for content (it dialed).
    Asker,
    /// The member serving it.
    Server,
}

/// A TCP connection whose bytes travel in sealed records.
pub(crate) struct Sealed {
    tcp: TcpStream,
    key: LessSafeKey,
    end: End,
    sent: u64,
    received: u64,
    /// Plaintext waiting to be sealed and sent.
    out: Vec<u8>,
    /// The last record opened, and how much of it was read.
    input: Vec<u8>,
    at: usize,
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

impl Sealed {
    pub(crate) fn new(tcp: TcpStream, key: &Key, end: End) -> Self {
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte key"));
        Self {
            tcp,
            key,
            end,
            sent: 0,
            received: 0,
            out: Vec::with_capacity(RECORD + TAG),
            input: Vec::new(),
            at: 0,
        }
    }

    /// The nonce of record `n` sent by `end`.
    fn nonce(end: End, n: u64) -> Nonce {
        let mut bytes = [0u8; 12];
        bytes[0] = u8::from(end == End::Server);
        bytes[4..].copy_from_slice(&n.to_be_bytes());
        Nonce::assume_unique_for_key(bytes)
    }

    async fn send_record(&mut self) -> io::Result<()> {
        let nonce = Self::nonce(self.end, self.sent);
        self.sent += 1;
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce, Aad::empty(), &mut self.out)
            .map_err(|_| invalid("cannot seal"))?;
        self.out.extend_from_slice(tag.as_ref());
        let len = (self.out.len() as u32).to_be_bytes();
        self.tcp.write_all(&len).await?;
        self.tcp.write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    /// The sealed length of the next record.
    async fn next_len(&mut self) -> io::Result<usize> {
        let mut len = [0u8; 4];
        self.tcp.read_exact(&mut len).await?;
        let len = u32::from_be_bytes(len) as usize;
        if !(TAG..=RECORD + TAG).contains(&len) {
            return Err(invalid("a sealed record of an impossible size"));
        }
        Ok(len)
    }

    /// Reads a record's ciphertext into `to` (exactly its plaintext's length) and its tag, and
    /// opens it there.
    async fn open_into(&mut self, to: &mut [u8]) -> io::Result<()> {
        let mut tag = [0u8; TAG];
        self.tcp.read_exact(to).await?;
        self.tcp.read_exact(&mut tag).await?;
        let peer = match self.end {
            End::Asker => End::Server,
            End::Server => End::Asker,
        };
        let nonce = Self::nonce(peer, self.received);
        self.received += 1;
        self.key
            .open_in_place_separate_tag(nonce, Aad::empty(), Tag::from(tag), to, 0..)
            .map_err(|_| invalid("a sealed record did not open (altered, replayed or another key)"))?;
        Ok(())
    }
}

impl Channel for Sealed {
    async fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let mut filled = 0;
        while filled < buf.len() {
            if self.at == self.input.len() {
                let plain = self.next_len().await? - TAG;
                if plain <= buf.len() - filled {
                    // Straight into the caller's buffer: no copy of the bulk of a transfer.
                    self.open_into(&mut buf[filled..filled + plain]).await?;
                    filled += plain;
                } else {
                    let mut input = std::mem::take(&mut self.input);
                    input.resize(plain, 0);
                    let opened = self.open_into(&mut input).await;
                    (self.input, self.at) = (input, 0);
                    opened?;
                }
                continue;
            }
            let n = (self.input.len() - self.at).min(buf.len() - filled);
            buf[filled..filled + n].copy_from_slice(&self.input[self.at..self.at + n]);
            self.at += n;
            filled += n;
        }
        Ok(())
    }

    async fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let take = (RECORD - self.out.len()).min(buf.len());
            self.out.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
            if self.out.len() == RECORD {
                self.send_record().await?;
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.send_record().await?;
        }
        self.tcp.flush().await
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    async fn pair(asker_key: &Key, server_key: &Key) -> (Sealed, Sealed) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (dialed, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (
            Sealed::new(dialed.unwrap(), asker_key, End::Asker),
            Sealed::new(accepted.unwrap().0, server_key, End::Server),
        )
    }

    #[tokio::test]
    async fn bytes_go_both_ways_in_records_of_any_size() {
        let (mut a, mut s) = pair(&[7; 32], &[7; 32]).await;
        let big: Vec<u8> = (0..3 * RECORD + 123).map(|i| (i * 7) as u8).collect();
        let sent = big.clone();
        let writer = tokio::spawn(async move {
            a.write_all(b"hello").await.unwrap();
            a.write_all(&sent).await.unwrap();
            a.flush().await.unwrap();
            let mut back = [0u8; 2];
            a.read_exact(&mut back).await.unwrap();
            back
        });
        let mut hello = [0u8; 5];
        s.read_exact(&mut hello).await.unwrap();
        assert_eq!(&hello, b"hello");
        let mut got = vec![0u8; big.len()];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(got, big);
        s.write_all(b"ok").await.unwrap();
        s.flush().await.unwrap();
        assert_eq!(&writer.await.unwrap(), b"ok");
    }

    async fn tcp_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (dialed, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (dialed.unwrap(), accepted.unwrap().0)
    }

    #[tokio::test]
    async fn another_key_another_direction_or_garbage_does_not_open() {
        let (mut a, mut s) = pair(&[1; 32], &[2; 32]).await;
        a.write_all(b"secret").await.unwrap();
        a.flush().await.unwrap();
        let mut buf = [0u8; 6];
        assert_eq!(s.read_exact(&mut buf).await.unwrap_err().kind(), io::ErrorKind::InvalidData);

        // Both ends sealing as the asker: a record played back to its own direction is refused.
        let (x, y) = tcp_pair().await;
        let (mut one, mut two) = (Sealed::new(x, &[3; 32], End::Asker), Sealed::new(y, &[3; 32], End::Asker));
        one.write_all(b"loop").await.unwrap();
        one.flush().await.unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(two.read_exact(&mut buf).await.unwrap_err().kind(), io::ErrorKind::InvalidData);

        // Raw bytes instead of a record.
        let (mut raw, y) = tcp_pair().await;
        let mut server = Sealed::new(y, &[4; 32], End::Server);
        raw.write_all(&[0, 0, 0, 40]).await.unwrap();
        raw.write_all(&[9u8; 40]).await.unwrap();
        assert!(server.read_exact(&mut buf).await.is_err());
        let (mut raw, y) = tcp_pair().await;
        let mut server = Sealed::new(y, &[4; 32], End::Server);
        raw.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        assert!(server.read_exact(&mut buf).await.is_err(), "an impossible size");
    }
}
