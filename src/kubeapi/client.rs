//! From a kubeconfig to a working [`kube::Client`], as kubectl reads it: `--kubeconfig`, or the
//! files of `KUBECONFIG` merged, or `~/.kube/config`; `--context`; the cluster's CA (file or
//! data), `insecure-skip-tls-verify`, `tls-server-name` and `proxy-url`; client certificates and
//! keys (file or data), bearer `token` and `tokenFile` (kube-rs re-reads the file every minute);
//! and `exec` credential plugins, which we run ourselves (bounded in time and output, stderr
//! scrubbed, see [`super::exec`]) and run again before the token they gave expires or after the
//! server answers 401. [`connect`] asks the server for `/version` before handing the client over,
//! so every way of not reaching it fails here, in one line that names the server and the cause.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use futures::future::BoxFuture;
use http::{HeaderValue, Request, Response, header::AUTHORIZATION};
use kube::Client;
use kube::client::{Body, ClientBuilder};
use kube::config::{ExecConfig, KubeConfigOptions, Kubeconfig};
use tower::{BoxError, Layer, Service};

use super::errors::{Cause, describe};
use super::exec::{self, ExecCredential, ExecError, ExecOptions};
use super::redact::redact_url;

/// Default bound on one run of a credential plugin when it cannot prompt anyone.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(60);
/// Default bound when the plugin may prompt on a terminal (a device-code login takes a person).
pub const DEFAULT_INTERACTIVE_EXEC_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the first request (`/version`) may take by default, connection and TLS included.
pub const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one request (other than a watch) may take by default, its whole body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a watch may stay silent. We ask for bookmarks, which an apiserver sends about once a
/// minute on an idle watch (its watch cache's `defaultBookmarkFrequency`); two and a half
/// minutes without a byte is a server, or something between, that stopped talking.
pub const WATCH_SILENCE: Duration = Duration::from_secs(150);

/// Where the kubeconfig comes from.
#[derive(Debug, Clone)]
pub enum KubeconfigSource {
    /// `KUBECONFIG` (merged, as kubectl merges it) or `~/.kube/config`.
    Default,
    /// One file, as `--kubeconfig FILE`.
    File(PathBuf),
    /// Already in memory (the built-in simulator hands its kubeconfig over this way, so no
    /// credential is ever written to a temporary file).
    Inline(Box<Kubeconfig>),
    /// The pod's ServiceAccount (see [`super::incluster`]).
    InCluster(super::incluster::InCluster),
}

impl KubeconfigSource {
    pub fn from_flag(path: Option<&Path>) -> KubeconfigSource {
        path.map_or(KubeconfigSource::Default, |p| KubeconfigSource::File(p.to_path_buf()))
    }

    fn describe(&self) -> String {
        match self {
            KubeconfigSource::Default => match std::env::var_os("KUBECONFIG") {
                Some(v) if !v.is_empty() => format!("KUBECONFIG={}", v.to_string_lossy()),
                _ => "~/.kube/config".into(),
            },
            KubeconfigSource::File(p) => p.display().to_string(),
            KubeconfigSource::Inline(_) => "the simulator's kubeconfig".into(),
            KubeconfigSource::InCluster(ic) => ic.describe(),
        }
    }
}

/// How to connect.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    pub context: Option<String>,
    /// Bound on a credential plugin run; defaults depend on whether it may prompt.
    pub exec_timeout: Option<Duration>,
    /// Bound on reaching the server: connection, TLS and the first answer (default 20 s).
    pub connect_timeout: Option<Duration>,
    /// Bound on each later request but watches, from sending it to the end of its body
    /// (`--request-timeout`; `None`: unbounded, as kubectl's `0`).
    pub request_timeout: Option<Duration>,
    /// Longest silence on a watch before it is cut (default [`WATCH_SILENCE`]).
    pub watch_silence: Option<Duration>,
}

/// A client that has reached its server once.
#[derive(Clone)]
pub struct Connection {
    pub client: Client,
    /// The server URL without credentials, for messages, the journal and events.
    pub server: String,
}

/// Why no connection was made. Each Display is one line naming what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot load the kubeconfig from {source_name}: {message}; check --kubeconfig / KUBECONFIG")]
    Kubeconfig { source_name: String, message: String },
    #[error(
        "context '{name}' is not in the kubeconfig from {source_name} (contexts: {known}); pass one of them to --context"
    )]
    UnknownContext { name: String, source_name: String, known: String },
    #[error("cannot get a credential for {server}: {error}")]
    Credential { server: String, error: ExecError },
    #[error("{0}")]
    Server(String),
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().chars().filter(|c| !c.is_control()).take(400).collect()
}

fn load(source: &KubeconfigSource) -> Result<Kubeconfig, ConnectError> {
    let err = |e: kube::config::KubeconfigError| ConnectError::Kubeconfig {
        source_name: source.describe(),
        message: first_line(&e.to_string()),
    };
    match source {
        KubeconfigSource::Default => Kubeconfig::read().map_err(err),
        KubeconfigSource::File(p) => Kubeconfig::read_from(p).map_err(err),
        KubeconfigSource::Inline(kc) => Ok((**kc).clone()),
        KubeconfigSource::InCluster(ic) => {
            ic.kubeconfig().map_err(|message| ConnectError::Kubeconfig { source_name: source.describe(), message })
        }
    }
}

/// Builds the client and checks it against `/version`.
pub async fn connect(source: KubeconfigSource, opts: &ConnectOptions) -> Result<Connection, ConnectError> {
    let kc = load(&source)?;
    if let Some(ctx) = &opts.context
        && !kc.contexts.iter().any(|c| &c.name == ctx)
    {
        let known: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
        return Err(ConnectError::UnknownContext {
            name: ctx.clone(),
            source_name: source.describe(),
            known: if known.is_empty() { "none".into() } else { known.join(", ") },
        });
    }
    let options = KubeConfigOptions { context: opts.context.clone(), ..Default::default() };
    let mut config = kube::Config::from_custom_kubeconfig(kc, &options).await.map_err(|e| {
        ConnectError::Kubeconfig { source_name: source.describe(), message: first_line(&e.to_string()) }
    })?;
    let server = redact_url(&config.cluster_url.to_string());
    let first = opts.connect_timeout.unwrap_or(FIRST_REQUEST_TIMEOUT);
    config.connect_timeout = Some(first);
    // Retries are ours to decide: a 429 from the Eviction API is a budget's answer to report and
    // back off from with the budget named, not a transient error to retry blindly for minutes.
    config.default_retry = false;

    // The legacy auth providers run their commands inside kube-rs, unbounded and with their raw
    // output in errors; kubectl dropped gcp and azure in 1.26 for exec plugins.
    if let Some(provider) = &config.auth_info.auth_provider
        && provider.name != "oidc"
    {
        return Err(ConnectError::Kubeconfig {
            source_name: source.describe(),
            message: format!(
                "the user's auth-provider '{}' is no longer supported (kubectl 1.26 removed it); regenerate the kubeconfig so it uses an exec plugin (GKE: gke-gcloud-auth-plugin, AKS: kubelogin)",
                first_line(&provider.name)
            ),
        });
    }
    let exec_auth = match config.auth_info.exec.take() {
        None => None,
        Some(exec_config) => {
            let stdin_is_terminal = std::io::IsTerminal::is_terminal(&std::io::stdin());
            let timeout = opts.exec_timeout.unwrap_or(if stdin_is_terminal && interactive_possible(&exec_config) {
                DEFAULT_INTERACTIVE_EXEC_TIMEOUT
            } else {
                DEFAULT_EXEC_TIMEOUT
            });
            let exec_opts = ExecOptions { timeout, stdin_is_terminal };
            let cred = exec::run(&exec_config, &exec_opts)
                .await
                .map_err(|error| ConnectError::Credential { server: server.clone(), error })?;
            match (&cred.client_certificate_data, &cred.client_key_data, &cred.token) {
                (Some(cert), Some(key), _) => {
                    // kubeconfig `-data` fields are base64 of PEM; the plugin gives PEM.
                    let b64 = base64::engine::general_purpose::STANDARD;
                    config.auth_info.client_certificate_data = Some(b64.encode(cert));
                    config.auth_info.client_key_data = Some(b64.encode(key).into());
                    None
                }
                _ => Some(ExecAuthLayer::new(exec_config, exec_opts, cred)),
            }
        }
    };

    let builder = ClientBuilder::try_from(config).map_err(|e| {
        ConnectError::Server(format!("cannot set up a client for {server}: {}", first_line(&e.to_string())))
    })?;
    let log = RequestLogLayer {
        request_timeout: opts.request_timeout,
        watch_silence: opts.watch_silence.unwrap_or(WATCH_SILENCE),
    };
    let client = match exec_auth {
        Some(layer) => builder.with_layer(&layer).with_layer(&log).build(),
        None => builder.with_layer(&log).build(),
    };
    match tokio::time::timeout(first, client.apiserver_version()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(ConnectError::Server(describe(&e, &server))),
        Err(_) => {
            return Err(ConnectError::Server(format!(
                "{} (no answer within {}s)",
                Cause::Timeout.describe(&server),
                first.as_secs_f64()
            )));
        }
    }
    tracing::info!(server = %server, "connected");
    Ok(Connection { client, server })
}

/// Logs every request at `debug` (`-vv`) as `kubectl -v=6` does: method, path and query, status
/// and time to the response headers. Never a header: they carry the credentials. It also bounds
/// every response ([`Bounded`]) in size and time: a server that streams without end cannot fill
/// memory, one that stalls or trickles cannot hold a request past `--request-timeout`, and a
/// watch that falls silent is cut, so the watcher lists again (or fails, naming the server).
#[derive(Clone, Copy)]
struct RequestLogLayer {
    request_timeout: Option<Duration>,
    watch_silence: Duration,
}

impl<S> Layer<S> for RequestLogLayer {
    type Service = RequestLog<S>;

    fn layer(&self, inner: S) -> RequestLog<S> {
        RequestLog { inner, bounds: *self }
    }
}

struct RequestLog<S> {
    inner: S,
    bounds: RequestLogLayer,
}

/// A request the server did not finish in time: the text names the request and the bound.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Stalled(pub String);

fn stalled(request: &str, bound: Duration, watch: bool) -> BoxError {
    let secs = bound.as_secs_f64();
    Box::new(Stalled(if watch {
        format!("the watch {request} was silent for {secs}s (not even a bookmark); it is cut and listed again")
    } else {
        format!("{request} got no complete answer within {secs}s; raise --request-timeout if the server is only slow")
    }))
}

/// Largest response body read for one request (a page of a list, a document, `/metrics`).
pub const MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;
/// Largest single event of a watch stream (one line).
pub const MAX_WATCH_EVENT_BYTES: u64 = 16 * 1024 * 1024;

impl<S, B> Service<Request<Body>> for RequestLog<S>
where
    S: Service<Request<Body>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = bytes::Bytes> + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Bounded<B>>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Response<Bounded<B>>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let method = req.method().clone();
        let path: String =
            req.uri().path_and_query().map_or_else(|| "/".into(), |p| p.as_str().chars().take(2048).collect());
        let watch = req.uri().query().is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
        let described = format!("{method} {}", path.split('?').next().unwrap_or_default());
        let started = std::time::Instant::now();
        // A watch's answer starts with its headers at once; what may take long is the stream.
        let bound = if watch { Some(self.bounds.watch_silence) } else { self.bounds.request_timeout };
        let deadline = bound.map(|b| tokio::time::Instant::now() + b);
        let fut = self.inner.call(req);
        Box::pin(async move {
            let result = match deadline {
                Some(at) => match tokio::time::timeout_at(at, fut).await {
                    Ok(r) => r.map_err(Into::into),
                    Err(_) => Err(stalled(&described, bound.unwrap_or_default(), watch)),
                },
                None => fut.await.map_err(Into::into),
            };
            let ms = started.elapsed().as_millis() as u64;
            match &result {
                Ok(response) => {
                    tracing::debug!(%method, %path, status = response.status().as_u16(), ms, "request");
                }
                Err(e) => tracing::debug!(%method, %path, error = %first_line(&e.to_string()), ms, "request failed"),
            }
            let timer = match (watch, bound, deadline) {
                (true, Some(silence), _) => Some(Box::pin(tokio::time::sleep(silence))),
                (false, _, Some(at)) => Some(Box::pin(tokio::time::sleep_until(at))),
                _ => None,
            };
            result.map(|r| {
                r.map(|inner| Bounded {
                    inner,
                    read: 0,
                    watch,
                    request: described,
                    timer,
                    bound: bound.unwrap_or_default(),
                })
            })
        })
    }
}

/// A response body that fails once it passes its bound: [`MAX_RESPONSE_BYTES`] in all, or for a
/// watch [`MAX_WATCH_EVENT_BYTES`] without a newline (a watch streams for as long as it lives,
/// one event per line); and in time: the request's deadline, or for a watch a silence longer
/// than its bound (the timer starts again with every byte).
pub struct Bounded<B> {
    inner: B,
    read: u64,
    watch: bool,
    request: String,
    timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    bound: Duration,
}

impl<B> http_body::Body for Bounded<B>
where
    B: http_body::Body<Data = bytes::Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, BoxError>>> {
        let this = &mut *self;
        // A deadline passes even while bytes trickle in; a watch's silence only while none do.
        if !this.watch
            && let Some(timer) = this.timer.as_mut()
            && timer.as_mut().poll(cx).is_ready()
        {
            this.timer = None;
            return std::task::Poll::Ready(Some(Err(stalled(&this.request, this.bound, false))));
        }
        match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            std::task::Poll::Ready(Some(Ok(frame))) => {
                if this.watch
                    && let Some(timer) = this.timer.as_mut()
                {
                    timer.as_mut().reset(tokio::time::Instant::now() + this.bound);
                }
                if let Some(data) = frame.data_ref() {
                    let limit = if this.watch {
                        match data.iter().rposition(|b| *b == b'\n') {
                            Some(p) => this.read = (data.len() - p - 1) as u64,
                            None => this.read += data.len() as u64,
                        }
                        MAX_WATCH_EVENT_BYTES
                    } else {
                        this.read += data.len() as u64;
                        MAX_RESPONSE_BYTES
                    };
                    if this.read > limit {
                        let what = if this.watch { "one watch event of" } else { "the answer to" };
                        return std::task::Poll::Ready(Some(Err(format!(
                            "{what} {} is larger than {limit} bytes; the server (or something between) is not answering as an apiserver does",
                            this.request
                        )
                        .into())));
                    }
                }
                std::task::Poll::Ready(Some(Ok(frame)))
            }
            std::task::Poll::Ready(Some(Err(e))) => std::task::Poll::Ready(Some(Err(e.into()))),
            std::task::Poll::Ready(None) => std::task::Poll::Ready(None),
            std::task::Poll::Pending => {
                if this.watch
                    && let Some(timer) = this.timer.as_mut()
                    && timer.as_mut().poll(cx).is_ready()
                {
                    this.timer = None;
                    return std::task::Poll::Ready(Some(Err(stalled(&this.request, this.bound, true))));
                }
                std::task::Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

fn interactive_possible(exec: &ExecConfig) -> bool {
    !matches!(exec.interactive_mode, Some(kube::config::ExecInteractiveMode::Never))
}

/// Bearer tokens from an exec plugin, run again shortly before they expire or after a 401.
#[derive(Clone)]
struct ExecAuthLayer {
    state: Arc<tokio::sync::Mutex<ExecState>>,
}

struct ExecState {
    config: ExecConfig,
    opts: ExecOptions,
    token: HeaderValue,
    expires: Option<SystemTime>,
    /// Set after a 401, as client-go does: the cached token is dropped for the next request.
    stale: bool,
}

/// Refresh this long before the plugin's expiry, so a request never leaves with a dying token;
/// short, so a plugin that hands out its cached token until it expires is not run per request.
const REFRESH_MARGIN: Duration = Duration::from_secs(10);

fn bearer(config: &ExecConfig, cred: &ExecCredential) -> Result<HeaderValue, ExecError> {
    let token = cred.token.as_deref().unwrap_or_default();
    let mut v = HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| ExecError::Output {
        command: config.command.clone().unwrap_or_default(),
        problem: "the token holds characters an HTTP header cannot carry".into(),
    })?;
    v.set_sensitive(true);
    Ok(v)
}

impl ExecAuthLayer {
    fn new(config: ExecConfig, opts: ExecOptions, cred: ExecCredential) -> ExecAuthLayer {
        let (token, stale) = match bearer(&config, &cred) {
            Ok(t) => (t, false),
            Err(_) => (HeaderValue::from_static(""), true),
        };
        ExecAuthLayer {
            state: Arc::new(tokio::sync::Mutex::new(ExecState { config, opts, token, expires: cred.expires, stale })),
        }
    }
}

impl ExecState {
    fn needs_refresh(&self) -> bool {
        self.stale || self.expires.is_some_and(|t| SystemTime::now() + REFRESH_MARGIN >= t)
    }

    async fn header(&mut self) -> Result<HeaderValue, ExecError> {
        if self.needs_refresh() {
            let cred = exec::run(&self.config, &self.opts).await?;
            self.token = bearer(&self.config, &cred)?;
            self.expires = cred.expires;
            self.stale = false;
        }
        Ok(self.token.clone())
    }
}

impl<S> Layer<S> for ExecAuthLayer {
    type Service = ExecAuth<S>;

    fn layer(&self, inner: S) -> ExecAuth<S> {
        ExecAuth { state: self.state.clone(), inner: Arc::new(tokio::sync::Mutex::new(inner)) }
    }
}

/// The service [`ExecAuthLayer`] wraps around the client stack. The stack below is not `Clone`
/// (kube boxes it), so calls reach it through a lock held only while a request is handed over.
pub struct ExecAuth<S> {
    state: Arc<tokio::sync::Mutex<ExecState>>,
    inner: Arc<tokio::sync::Mutex<S>>,
}

impl<S, B> Service<Request<Body>> for ExecAuth<S>
where
    S: Service<Request<Body>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Send + 'static,
{
    type Response = Response<B>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Response<B>, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let state = self.state.clone();
        let inner = self.inner.clone();
        Box::pin(async move {
            let header = state.lock().await.header().await.map_err(|e| Box::new(e) as BoxError)?;
            req.headers_mut().insert(AUTHORIZATION, header);
            let response = {
                let mut svc = inner.lock().await;
                std::future::poll_fn(|cx| svc.poll_ready(cx)).await.map_err(Into::into)?;
                svc.call(req)
            }
            .await
            .map_err(Into::into)?;
            if response.status() == http::StatusCode::UNAUTHORIZED {
                state.lock().await.stale = true;
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::Node;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A plain-HTTP "apiserver" on loopback: `/version` is answered; a watch gets its headers and
    /// then silence; any other request gets its headers and then one byte every 200 ms.
    async fn stalling_server() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    // Keep-alive: requests come one after another on the connection.
                    loop {
                        let mut head = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            match conn.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => head.extend_from_slice(&buf[..n]),
                            }
                        }
                        let line = String::from_utf8_lossy(&head).lines().next().unwrap_or_default().to_string();
                        if line.starts_with("GET /version") {
                            let body = r#"{"major":"1","minor":"31","gitVersion":"v1.31.4"}"#;
                            let answer = format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if conn.write_all(answer.as_bytes()).await.is_err() {
                                return;
                            }
                            continue;
                        }
                        let _ = conn
                            .write_all(
                                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
                            )
                            .await;
                        if line.contains("watch=true") {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            return;
                        }
                        let _ = conn.write_all(b"1\r\n{\r\n").await;
                        loop {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            if conn.write_all(b"1\r\n \r\n").await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        format!("http://{addr}")
    }

    async fn client_for(server: &str) -> Connection {
        let kc = Kubeconfig::from_yaml(&format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: '{server}'}}}}]\nusers: [{{name: u, user: {{token: t}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\ncurrent-context: x\n"
        ))
        .unwrap();
        let opts = ConnectOptions {
            request_timeout: Some(Duration::from_secs(1)),
            watch_silence: Some(Duration::from_secs(1)),
            connect_timeout: Some(Duration::from_millis(500)),
            ..Default::default()
        };
        connect(KubeconfigSource::Inline(Box::new(kc)), &opts).await.unwrap()
    }

    #[tokio::test]
    async fn an_answer_that_trickles_fails_at_the_request_deadline_naming_the_request() {
        let server = stalling_server().await;
        let conn = client_for(&server).await;
        let nodes: kube::Api<Node> = kube::Api::all(conn.client.clone());
        let started = std::time::Instant::now();
        let err = nodes.list(&Default::default()).await.unwrap_err();
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(3), "{took:?}");
        let line = super::super::errors::describe(&err, &conn.server);
        assert!(
            line.contains(&server) && line.contains("GET /api/v1/nodes got no complete answer within 1s"),
            "{line}"
        );
    }

    #[tokio::test]
    async fn a_silent_watch_is_cut_naming_it() {
        let server = stalling_server().await;
        let conn = client_for(&server).await;
        let nodes: kube::Api<Node> = kube::Api::all(conn.client.clone());
        let started = std::time::Instant::now();
        let mut events = nodes.watch(&Default::default(), "0").await.unwrap().boxed();
        let first = tokio::time::timeout(Duration::from_secs(5), events.next()).await.expect("the watch was not cut");
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(3), "{took:?}");
        let err = first.expect("an error, not the end").unwrap_err();
        let line = super::super::errors::describe(&err, &conn.server);
        assert!(line.contains("the watch GET /api/v1/nodes was silent for 1s"), "{line}");
    }
}
