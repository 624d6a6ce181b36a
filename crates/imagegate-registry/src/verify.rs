//! A blob stream that checks size and digest while it flows, and holds its
//! last chunk back until the whole blob has been verified, so a corrupted
//! blob never reaches the end of an upload.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::digest::{Digest, Verifier};
use crate::error::{Error, ErrorKind};
use crate::transport::limits::Progress;

/// Where the stream leaves the reason it failed, for the uploader to read
/// after the HTTP layer has reported only "body error".
pub(crate) type Outcome = Arc<Mutex<Option<Error>>>;

struct State<S> {
    inner: S,
    verifier: Verifier,
    pending: Option<Bytes>,
    done: bool,
    expected: Digest,
    size: u64,
    label: String,
    outcome: Outcome,
    progress: Arc<Progress>,
}

impl<S> State<S> {
    fn fail(&mut self, e: Error) -> std::io::Error {
        let text = e.to_string();
        *self.outcome.lock().expect("outcome lock") = Some(e);
        self.done = true;
        std::io::Error::other(text)
    }

    /// At the end of the body: the size and the digest of the whole blob.
    fn check_whole(&mut self) -> Result<(), Error> {
        let verifier = std::mem::take(&mut self.verifier);
        let len = verifier.len();
        if len != self.size {
            let e = Error::new(ErrorKind::SizeMismatch {
                what: self.label.clone(),
                expected: self.size,
                actual: len,
            });
            // A short body is a cut connection more often than a lie.
            if len < self.size {
                return Err(Error::new(ErrorKind::SourceInterrupted {
                    digest: self.expected.to_string(),
                    received: len,
                    detail: e.to_string(),
                }));
            }
            return Err(e);
        }
        let actual = verifier.finish();
        if actual != self.expected {
            return Err(Error::new(ErrorKind::DigestMismatch {
                what: self.label.clone(),
                expected: self.expected.to_string(),
                actual: actual.to_string(),
            }));
        }
        Ok(())
    }
}

/// Wraps `inner` (the source blob's body), which starts after the bytes
/// `start` has hashed (none for a whole body, `start.len()` for an upload
/// resumed there): size and digest are checked over the whole blob. `label`
/// names the blob in errors; `progress` counts the bytes that pass and
/// learns when the body is whole.
pub(crate) fn verifying_from<S, E>(
    inner: S,
    start: Verifier,
    expected: Digest,
    size: u64,
    label: String,
    progress: Arc<Progress>,
) -> (impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static, Outcome)
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let outcome: Outcome = Arc::default();
    let state = State {
        inner,
        verifier: start,
        pending: None,
        done: false,
        expected,
        size,
        label,
        outcome: outcome.clone(),
        progress,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if st.done {
                return None;
            }
            match st.inner.next().await {
                Some(Ok(chunk)) => {
                    st.progress.read(chunk.len() as u64);
                    st.verifier.update(&chunk);
                    if st.verifier.len() > st.size {
                        let e = Error::new(ErrorKind::SizeMismatch {
                            what: st.label.clone(),
                            expected: st.size,
                            actual: st.verifier.len(),
                        });
                        let io = st.fail(e);
                        return Some((Err(io), st));
                    }
                    if let Some(prev) = st.pending.replace(chunk) {
                        return Some((Ok(prev), st));
                    }
                }
                Some(Err(e)) => {
                    let e = Error::new(ErrorKind::SourceInterrupted {
                        digest: st.expected.to_string(),
                        received: st.verifier.len(),
                        detail: crate::transport::error_chain(&e),
                    });
                    let io = st.fail(e);
                    return Some((Err(io), st));
                }
                None => {
                    st.done = true;
                    st.progress.read_all();
                    if let Err(e) = st.check_whole() {
                        let io = st.fail(e);
                        return Some((Err(io), st));
                    }
                    let last = st.pending.take()?;
                    return Some((Ok(last), st));
                }
            }
        }
    });
    (stream, outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
        futures_util::stream::iter(parts.iter().map(|p| Ok(Bytes::from_static(p))).collect::<Vec<_>>())
    }

    async fn collect(s: impl Stream<Item = Result<Bytes, std::io::Error>>) -> (Vec<u8>, bool) {
        let mut s = std::pin::pin!(s);
        let mut out = Vec::new();
        while let Some(item) = s.next().await {
            match item {
                Ok(b) => out.extend_from_slice(&b),
                Err(_) => return (out, false),
            }
        }
        (out, true)
    }

    /// The blob of these tests: "hello world", 11 bytes.
    const HELLO: &[u8] = b"hello world";

    /// `parts` read through the check for [`HELLO`], from where `start` is.
    fn hello(parts: &[&'static [u8]], start: Verifier, label: &str) -> (impl Stream<Item = Result<Bytes, std::io::Error>>, Outcome) {
        verifying_from(chunks(parts), start, Digest::of(HELLO), 11, label.into(), Arc::default())
    }

    /// Reads a checked stream to its end: what it passed on, whether it
    /// ended cleanly, and the error the check left.
    async fn read(checked: (impl Stream<Item = Result<Bytes, std::io::Error>>, Outcome)) -> (Vec<u8>, bool, Option<Error>) {
        let (data, ok) = collect(checked.0).await;
        let error = checked.1.lock().unwrap().take();
        (data, ok, error)
    }

    #[tokio::test]
    async fn passes_good_data() {
        let (data, ok, error) = read(hello(&[b"hello ", b"wor", b"ld"], Verifier::default(), "blob")).await;
        assert!(ok);
        assert_eq!(data, HELLO);
        assert!(error.is_none());
    }

    #[tokio::test]
    async fn holds_back_the_last_chunk_of_a_bad_blob() {
        let (data, ok, error) = read(hello(&[b"hello ", b"wor", b"lD"], Verifier::default(), "blob X")).await;
        assert!(!ok);
        assert_eq!(data, b"hello wor", "the final chunk must not be released");
        let e = error.unwrap();
        assert!(matches!(e.kind(), ErrorKind::DigestMismatch { .. }));
        assert!(e.to_string().contains("blob X"));
        assert!(!e.is_temporary());
    }

    #[tokio::test]
    async fn a_resumed_body_is_checked_over_the_whole_blob() {
        let mut start = Verifier::default();
        start.update(b"hello ");
        let (data, ok, error) = read(hello(&[b"wor", b"ld"], start.clone(), "b")).await;
        assert_eq!((data, ok), (b"world".to_vec(), true));
        assert!(error.is_none());
        let (_, ok, error) = read(hello(&[b"wor", b"lD"], start, "b")).await;
        assert!(!ok);
        assert!(matches!(error.unwrap().kind(), ErrorKind::DigestMismatch { .. }));
    }

    #[tokio::test]
    async fn short_and_long_bodies() {
        let (_, ok, error) = read(hello(&[b"hello"], Verifier::default(), "b")).await;
        assert!(!ok);
        assert!(error.unwrap().is_temporary(), "a short body is retried");
        let (_, ok, error) = read(hello(&[b"hello world!"], Verifier::default(), "b")).await;
        assert!(!ok);
        assert!(matches!(error.unwrap().kind(), ErrorKind::SizeMismatch { .. }));
    }
}
