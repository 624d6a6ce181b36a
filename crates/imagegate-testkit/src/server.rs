//! A small HTTP server on 127.0.0.1 in its own thread, for the kit's
//! stand-ins (the web API fakes, the hostile registry), plain or with TLS.
//! Stopped when dropped.

use std::convert::Infallible;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response};
use tempfile::TempDir;
use tokio_rustls::rustls;

pub type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// The value of a request's header `name` as text; empty when it is
/// missing or not text.
pub fn header_text(req: &Request<Incoming>, name: &str) -> String {
    req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
}

pub struct Server {
    /// `127.0.0.1:<port>`
    pub addr: String,
    _background: Background,
}

/// A tokio runtime (two workers) on a thread of its own, running what
/// `spawn` was given until the handle is dropped: then the future's
/// receiver fires and the thread is joined. The kit's servers, the fault
/// proxy and the relay all run this way.
pub struct Background {
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    /// Runs `serve(stop)` on the thread; `serve` should end once `stop`
    /// fires.
    pub fn spawn<F, Fut>(serve: F) -> Self
    where
        F: FnOnce(tokio::sync::oneshot::Receiver<()>) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(serve(rx));
        });
        Self {
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Background {
    /// Accepts connections on each of `listeners` (bound, non-blocking)
    /// until dropped, handing
    /// each one to `on_connection` with the index of its listener (from a
    /// task on the runtime: it may spawn more).
    pub fn accept<F>(listeners: Vec<std::net::TcpListener>, on_connection: F) -> Self
    where
        F: Fn(usize, tokio::net::TcpStream) + Send + Sync + 'static,
    {
        let on_connection = Arc::new(on_connection);
        Self::spawn(move |stop| async move {
            let mut accepting = Vec::new();
            for (index, listener) in listeners.into_iter().enumerate() {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let on_connection = on_connection.clone();
                accepting.push(tokio::spawn(async move {
                    loop {
                        if let Ok((stream, _)) = listener.accept().await {
                            on_connection(index, stream);
                        }
                    }
                }));
            }
            let _ = stop.await;
            for task in accepting {
                task.abort();
            }
        })
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Server {
    /// Serves every request with `handler` until dropped.
    pub fn start<F, Fut>(handler: F) -> Self
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        Self::serve(handler, None)
    }

    /// Serves HTTPS with the PEM certificate chain and key given.
    pub fn start_tls<F, Fut>(handler: F, cert: &Path, key: &Path) -> Self
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .expect("read certificate")
            .collect::<Result<_, _>>()
            .expect("parse certificate");
        let key = PrivateKeyDer::from_pem_file(key).expect("read key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server certificate");
        Self::serve(handler, Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
    }

    /// [`Self::start`], or with `tls` [`Self::start_tls`] with a certificate
    /// of a CA made for it in a temporary directory named with `prefix`.
    /// Gives back the server, that directory (kept while the server runs)
    /// and the CA's certificate (to trust it).
    pub fn start_maybe_tls<F, Fut>(handler: F, tls: bool, prefix: &str) -> (Self, Option<TempDir>, Option<PathBuf>)
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        if !tls {
            return (Self::start(handler), None, None);
        }
        let dir = tempfile::Builder::new().prefix(prefix).tempdir().expect("tempdir");
        let (ca, _, cert, key) = crate::registry::make_certs(dir.path());
        (Self::start_tls(handler, &cert, &key), Some(dir), Some(ca))
    }

    fn serve<F, Fut>(handler: F, tls: Option<tokio_rustls::TlsAcceptor>) -> Self
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr").to_string();
        let handler = Arc::new(handler);
        let background = Background::accept(vec![listener], move |_, stream| {
            let handler = handler.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let answer = handler(req);
                    async move { Ok::<_, Infallible>(answer.await) }
                });
                let http = hyper::server::conn::http1::Builder::new();
                match tls {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            let _ = http.serve_connection(hyper_util::rt::TokioIo::new(stream), svc).await;
                        }
                    }
                    None => {
                        let _ = http.serve_connection(hyper_util::rt::TokioIo::new(stream), svc).await;
                    }
                }
            });
        });
        Self {
            addr,
            _background: background,
        }
    }
}
