//! Reading and writing blob-protocol headers and bodies on a [`Channel`] (see
//! `partyline_protocol::blobs`).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use partyline_protocol::blobs::{BlobAnswer, BlobRequest, header_len};

use super::channel::Channel;

/// A peer that goes quiet this long mid-answer (or mid-request) is given up on.
pub(crate) const QUIET: Duration = Duration::from_secs(20);

async fn header(stream: &mut impl Channel) -> Result<Option<Vec<u8>>> {
    let mut prefix = [0u8; 4];
    match stream.read_exact(&mut prefix).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let mut body = vec![0u8; header_len(prefix)?];
    stream.read_exact(&mut body).await?;
    Ok(Some(body))
}

/// The next request, or `None` when the asker closed the stream.
pub(crate) async fn read_request(stream: &mut impl Channel, idle: Duration) -> Result<Option<BlobRequest>> {
    let Ok(read) = tokio::time::timeout(idle, header(stream)).await else { return Ok(None) };
    read?.map(|bytes| BlobRequest::decode(&bytes).map_err(Into::into)).transpose()
}

pub(crate) async fn read_answer(stream: &mut impl Channel) -> Result<BlobAnswer> {
    let bytes = tokio::time::timeout(QUIET, header(stream))
        .await
        .context("the peer stopped answering")??
        .context("the peer closed the stream")?;
    Ok(BlobAnswer::decode(&bytes)?)
}

pub(crate) async fn write(stream: &mut impl Channel, framed: &[u8]) -> Result<()> {
    tokio::time::timeout(QUIET, async {
        stream.write_all(framed).await?;
        stream.flush().await
    })
    .await
    .context("the peer stopped reading")??;
    Ok(())
}

/// Reads exactly `buf.len()` body bytes.
pub(crate) async fn read_body(stream: &mut impl Channel, buf: &mut [u8]) -> Result<()> {
    tokio::time::timeout(QUIET, stream.read_exact(buf)).await.context("the peer stopped sending")??;
    Ok(())
}

/// Asks for a whole body (a manifest, a piece list) of at most `max` bytes.
pub(crate) async fn fetch_body(
    stream: &mut impl Channel,
    request: &BlobRequest,
    max: usize,
) -> Result<Vec<u8>> {
    write(stream, &request.frame()).await?;
    match read_answer(stream).await? {
        BlobAnswer::Body { len } if len as usize <= max => {
            let mut body = vec![0u8; len as usize];
            read_body(stream, &mut body).await?;
            Ok(body)
        }
        BlobAnswer::Body { len } => bail!("the peer offered {len} bytes, more than {max}"),
        other => bail!("the peer answered {other:?}"),
    }
}
