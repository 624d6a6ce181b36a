//! A blob download that survives a broken connection. When the body of a
//! blob stops with an error after some bytes, the download continues with a
//! `Range` request for the rest (RFC 9110, section 14; distribution honours
//! it), so the bytes already read are neither read again nor sent again to
//! the destination: the upload the bytes feed never sees the break. A
//! source that answers the range request with the whole blob (200) is read
//! from its first byte again and the bytes already passed on are dropped.
//! The digest is still checked over the whole blob by the stream the bytes
//! flow into (`verify`), so a source that sends other bytes after a break
//! is caught there. A download can also start part way (an upload resumed
//! at the destination's offset needs the bytes from there on).

use std::pin::Pin;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::CONTENT_RANGE;

use crate::client::RegistryClient;
use crate::error::{untrusted_text, Error, ErrorKind};
use crate::log;

/// Breaks one download survives. Each needs bytes to have come since the
/// one before, so this bounds only a source that breaks again and again.
const MAX_RESUMES: u32 = 16;

type Body = Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>>;

/// The blob a download reads, and where it stands.
struct Download {
    client: RegistryClient,
    repo: String,
    digest: String,
    size: u64,
    body: Body,
    /// Bytes passed on so far.
    offset: u64,
    /// Bytes of the current answer to drop (a source that ignored `Range`).
    skip: u64,
    /// Bytes that came on the current connection.
    since_open: u64,
    resumes: u32,
    failed: bool,
}

impl Download {
    fn name(&self) -> String {
        format!("blob {} from {}/{}", self.digest, self.client.registry(), self.repo)
    }

    /// Continues after a break from where the bytes stopped.
    async fn reopen(&mut self, cause: &reqwest::Error) -> Result<(), Error> {
        self.resumes += 1;
        log::info(&format!(
            "{}: the download broke after {} of {} bytes ({}); resuming from there ({}/{MAX_RESUMES})",
            self.name(),
            self.offset,
            self.size,
            crate::transport::error_chain(cause),
            self.resumes
        ));
        self.open().await
    }

    /// Opens the blob at `offset`: the whole blob from the start, else a
    /// range request for the rest, checked against what was asked, or
    /// (from a source without range support) the whole blob again, to be
    /// skipped into.
    async fn open(&mut self) -> Result<(), Error> {
        let resp = self.client.open_blob_from(&self.repo, &self.digest, self.offset).await?;
        self.since_open = 0;
        if self.offset > 0 && resp.status().as_u16() == 206 {
            let range = resp.headers().get(CONTENT_RANGE).and_then(|v| v.to_str().ok()).unwrap_or("");
            if content_range_start(range, self.size) != Some(self.offset) {
                return Err(Error::new(ErrorKind::Protocol(format!(
                    "{} answered a request for the bytes from {} with the range \"{}\"",
                    self.name(),
                    self.offset,
                    untrusted_text(range, 100)
                ))));
            }
        } else if self.offset > 0 {
            log::info(&format!(
                "{}: the registry sent the whole blob again (no range support); skipping the first {} bytes",
                self.name(),
                self.offset
            ));
            self.skip = self.offset;
            self.client.stats().resent(self.offset);
        }
        self.body = Box::pin(resp.bytes_stream());
        Ok(())
    }

    /// The next bytes to pass on, resuming after breaks.
    async fn next(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        loop {
            if self.failed {
                return None;
            }
            match self.body.next().await {
                None => return None,
                Some(Ok(mut chunk)) => {
                    self.since_open += chunk.len() as u64;
                    if self.skip > 0 {
                        let drop = self.skip.min(chunk.len() as u64);
                        self.skip -= drop;
                        chunk = chunk.slice(drop as usize..);
                    }
                    if chunk.is_empty() {
                        continue;
                    }
                    self.offset += chunk.len() as u64;
                    return Some(Ok(chunk));
                }
                Some(Err(e)) => {
                    let resumable = self.since_open > 0 && self.offset < self.size && self.resumes < MAX_RESUMES;
                    if !resumable {
                        self.failed = true;
                        return Some(Err(std::io::Error::other(crate::transport::error_chain(&e))));
                    }
                    if let Err(reopen) = self.reopen(&e).await {
                        self.failed = true;
                        return Some(Err(std::io::Error::other(reopen.to_string())));
                    }
                }
            }
        }
    }
}

/// The bytes of the blob `digest` (`size` bytes) in `repo` from byte
/// `offset` on, continued with range requests when the body breaks.
pub(crate) async fn download(
    client: RegistryClient,
    repo: &str,
    digest: &str,
    size: u64,
    offset: u64,
) -> Result<impl Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin + 'static, Error> {
    let mut download = Download {
        client,
        repo: repo.to_string(),
        digest: digest.to_string(),
        size,
        body: Box::pin(futures_util::stream::empty()),
        offset,
        skip: 0,
        since_open: 0,
        resumes: 0,
        failed: false,
    };
    // An upload resumed after its last byte needs none.
    if offset < size {
        download.open().await?;
    }
    Ok(Box::pin(futures_util::stream::unfold(download, |mut d| async move {
        let item = d.next().await?;
        Some((item, d))
    })))
}

/// The first byte of `bytes <first>-<last>/<size>` when the range ends at
/// the blob's end and names its size (or `*`), else `None`.
fn content_range_start(value: &str, size: u64) -> Option<u64> {
    let (range, total) = value.strip_prefix("bytes ")?.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let (first, last): (u64, u64) = (first.trim().parse().ok()?, last.trim().parse().ok()?);
    let total_ok = total.trim() == "*" || total.trim().parse::<u64>().ok() == Some(size);
    (total_ok && first <= last && last + 1 == size).then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_must_run_to_the_blobs_end() {
        assert_eq!(content_range_start("bytes 100-999/1000", 1000), Some(100));
        assert_eq!(content_range_start("bytes 100-999/*", 1000), Some(100));
        assert_eq!(content_range_start("bytes 100-998/1000", 1000), None, "short of the end");
        assert_eq!(content_range_start("bytes 100-999/2000", 1000), None, "another size");
        assert_eq!(content_range_start("bytes 999-100/1000", 1000), None);
        assert_eq!(content_range_start("items 100-999/1000", 1000), None);
        assert_eq!(content_range_start("bytes -999/1000", 1000), None);
        assert_eq!(content_range_start("", 1000), None);
    }
}
