//! The simulator's listener. It accepts connections, performs the TLS handshake within a bounded
//! time, records what the client certificate proved (for the authenticator), and serves HTTP/1.1
//! or HTTP/2 (by ALPN, as kube-apiserver does) with the API router. Every connection lives in one
//! `JoinSet`, so stopping the server cuts them all.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::Service;

use super::authn::ConnInfo;
use super::tls::Pki;

/// A client that connects and never finishes its handshake is dropped after this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long request headers may take to arrive on HTTP/1.1 (slow clients hold no task forever).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// After a stop, open requests get this long before their connections are cut.
const DRAIN: Duration = Duration::from_millis(300);

/// Serves until `stop` resolves.
pub async fn run(listener: TcpListener, app: Router, pki: Option<Arc<Pki>>, stop: impl Future<Output = ()>) {
    let mut stop = std::pin::pin!(stop);
    let acceptor = pki.as_ref().map(|p| tokio_rustls::TlsAcceptor::from(p.server_config.clone()));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let app = app.clone();
                let acceptor = acceptor.clone();
                let pki = pki.clone();
                connections.spawn(async move {
                    match (acceptor, pki) {
                        (Some(acceptor), Some(pki)) => {
                            let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await else {
                                return;
                            };
                            let cert = tls.get_ref().1.peer_certificates().map(|chain| pki.authenticate(chain));
                            serve_connection(TokioIo::new(tls), app, ConnInfo { cert }).await;
                        }
                        _ => serve_connection(TokioIo::new(tcp), app, ConnInfo::default()).await,
                    }
                });
            }
        }
    }
    let _ = tokio::time::timeout(DRAIN, async { while connections.join_next().await.is_some() {} }).await;
}

async fn serve_connection<I>(io: TokioIo<I>, app: Router, info: ConnInfo)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let info = Arc::new(info);
    let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
        req.extensions_mut().insert(info.clone());
        let mut app = app.clone();
        async move { app.call(req.map(axum::body::Body::new)).await }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
    let _ = builder.serve_connection_with_upgrades(io, service).await;
}
