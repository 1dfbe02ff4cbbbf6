//! The management ports' HTTP server (hyper on a small runtime of its own): the metrics
//! endpoint today, Kea 3's HTTP control socket next. Whatever a client does, it cannot grow the
//! daemon's memory past a bound or keep others out: request heads and bodies have a size limit,
//! connections a number limit (the ones past it are closed at once), and each connection a
//! deadline for reading its request head and one for the whole exchange (a client that reads
//! its answer slowly is cut off too). It must never run on a worker's thread.

use std::{net::TcpListener, sync::Arc, time::Duration};

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{
    Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header::{CONTENT_TYPE, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};

/// What a management port accepts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of request line and headers.
    pub head: usize,
    /// Bytes of request body.
    pub body: usize,
    /// Connections served at once; more are closed as they arrive.
    pub connections: usize,
    /// From accept to the end of the request head.
    pub head_deadline: Duration,
    /// From accept to the last byte of the answer.
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            head: 16 << 10,
            body: 1 << 20,
            connections: 64,
            head_deadline: Duration::from_secs(5),
            deadline: Duration::from_secs(15),
        }
    }
}

/// A request as a handler sees it: method, path (with query), body.
pub struct Req {
    /// `GET`, `POST`, …
    pub method: hyper::Method,
    /// The request target.
    pub path: String,
    /// Headers.
    pub headers: hyper::HeaderMap,
    /// The body (at most [`Limits::body`] bytes).
    pub body: Bytes,
}

/// An answer: status, content type, body.
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Body.
    pub body: Vec<u8>,
}

impl Answer {
    /// A plain-text answer.
    pub fn text(status: StatusCode, body: impl Into<String>) -> Self {
        Self { status, content_type: "text/plain; charset=utf-8", body: body.into().into_bytes() }
    }
}

/// The handler of one port: runs on the port's thread, between connections' I/O.
pub type Handler = Arc<dyn Fn(Req) -> Answer + Send + Sync>;

/// Serves `listener` with `handler` on a thread named `name`, within `limits`.
pub fn serve(
    name: &str,
    listener: TcpListener,
    limits: Limits,
    handler: Handler,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    serve_tls(name, listener, limits, handler, None)
}

/// [`serve`], over TLS when `tls` is given (the handshake within the head deadline).
pub fn serve_tls(
    name: &str,
    listener: TcpListener,
    limits: Limits,
    handler: Handler,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build()?;
    let thread_name = name.to_owned();
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    std::thread::Builder::new().name(name.into()).spawn(move || {
        rt.block_on(accept_loop(&thread_name, listener, limits, handler, tls));
    })
}

/// One connection's exchange (plain or TLS), within the limits.
async fn serve_connection<S>(io: S, peer: std::net::SocketAddr, limits: Limits, handler: Handler)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: Request<Incoming>| {
        let handler = handler.clone();
        async move { Ok::<_, std::convert::Infallible>(respond(req, limits, &handler).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head_deadline)
        .max_buf_size(limits.head.max(8192))
        .keep_alive(false)
        .serve_connection(TokioIo::new(io), service);
    match tokio::time::timeout(limits.deadline, conn).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!("management connection from {peer}: {e}"),
        Err(_) => {
            tracing::debug!("management connection from {peer}: cut at the {:?} deadline", limits.deadline);
        }
    }
}

async fn accept_loop(
    name: &str,
    listener: TcpListener,
    limits: Limits,
    handler: Handler,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("{name}: cannot serve: {e}");
            return;
        }
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.connections));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::debug!("{name}: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!("{name}: {} connections being served, {peer} closed", limits.connections);
            drop(stream);
            continue;
        };
        let handler = handler.clone();
        let tls = tls.clone();
        tokio::task::spawn(async move {
            let _permit = permit;
            match tls {
                None => serve_connection(stream, peer, limits, handler).await,
                Some(acceptor) => match tokio::time::timeout(limits.head_deadline, acceptor.accept(stream)).await {
                    Ok(Ok(tls_stream)) => serve_connection(tls_stream, peer, limits, handler).await,
                    Ok(Err(e)) => tracing::debug!("management connection from {peer}: TLS: {e}"),
                    Err(_) => tracing::debug!("management connection from {peer}: no TLS handshake in time"),
                },
            }
        });
    }
}

async fn respond(req: Request<Incoming>, limits: Limits, handler: &Handler) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, limits.body).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let too_large = format!("request body over {} bytes\n", limits.body);
            return build(Answer::text(StatusCode::PAYLOAD_TOO_LARGE, too_large));
        }
    };
    let path = parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
    build(handler(Req { method: parts.method, path, headers: parts.headers, body }))
}

fn build(a: Answer) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(a.body)));
    *r.status_mut() = a.status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(a.content_type));
    r
}
