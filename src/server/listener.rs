//! Accepting and keeping connections: the part of `keywarden serve` that
//! faces the internet before any handler runs. Every connection must send
//! a whole request head within the header-read timeout of opening (or of
//! its first byte after a response), and may sit idle between requests for
//! the idle timeout; past either it is closed, as it is when a request, or
//! a write waiting on a client that does not read, outlasts the request
//! timeout. Open connections are capped
//! below the process's descriptor limit, so the store, the mail worker and
//! real clients always find descriptors. At the cap, the oldest connection
//! that has never sent a whole request (a slow-loris client, most likely)
//! is shed for the new one, else the oldest idle one, else the new one is
//! refused; each shed is counted and logged.
//!
//! HTTP/1.1 on plain TCP; over TLS, HTTP/2 or HTTP/1.1 as ALPN chooses.
//! This module never reads a body and never decides a status code.

use super::AppState;
use super::tls::TlsSetup;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tower::ServiceExt;

/// Default time a client has to send a whole request head.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a keep-alive connection may wait for its next request.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time one request may take from its head to the last byte of
/// its answer (a client that does not read its answers holds no
/// connection longer).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Descriptors kept back from connections for everything else the
/// process opens (store, SMTP, GitHub, files, the admin listener).
const RESERVED_DESCRIPTORS: u64 = 256;
/// How long shutdown waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How often shedding is logged at most.
const SHED_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Timeouts and the connection cap of one listener.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
}

impl ConnectionLimits {
    /// The defaults, with the cap derived from the descriptor limit.
    pub fn for_this_process() -> Self {
        ConnectionLimits {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_connections: default_max_connections(),
        }
    }
}

/// Raises the process's soft descriptor limit to its hard limit and
/// returns the soft limit then in force.
pub fn raise_descriptor_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on this process with a valid pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
    }
    limit.rlim_cur
}

/// The most connections kept open by default, whatever the descriptor
/// limit: each may hold up to about 100 KiB (a head being read, HTTP/2
/// streams), so this bounds what clients can make the process hold to
/// about 400 MiB.
const DEFAULT_MAX_CONNECTIONS: u64 = 4096;

/// The default connection cap: the descriptor limit less a reserve (a
/// quarter of small limits), at least 16 and at most 4,096.
pub fn default_max_connections() -> usize {
    let limit = raise_descriptor_limit();
    let reserve = RESERVED_DESCRIPTORS.min(limit / 4);
    limit
        .saturating_sub(reserve)
        .clamp(16, DEFAULT_MAX_CONNECTIONS) as usize
}

/// Why the service closed a connection itself.
#[derive(Debug, Clone, Copy)]
enum CloseReason {
    HeaderTimeout,
    IdleTimeout,
    RequestTimeout,
    Shed,
    TlsHandshake,
}

impl CloseReason {
    fn label(self) -> &'static str {
        match self {
            CloseReason::HeaderTimeout => "header_timeout",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::RequestTimeout => "request_timeout",
            CloseReason::Shed => "shed",
            CloseReason::TlsHandshake => "tls_handshake",
        }
    }
}

const NONE: u64 = u64::MAX;

/// What one connection is doing, as the watchdog and the shedder see it.
struct Conn {
    opened: Instant,
    /// Requests whose response has not been written to the end.
    in_flight: AtomicUsize,
    /// When each of them started (ms after `opened`), by request number.
    started: Mutex<BTreeMap<u64, u64>>,
    requests: AtomicU64,
    /// Milliseconds after `opened` when it last went idle.
    idle_since: AtomicU64,
    /// Milliseconds after `opened` when bytes arrived while idle (a head
    /// being sent), or `NONE`.
    head_started: AtomicU64,
    /// Milliseconds after `opened` since when a write has been waiting for
    /// the client to read, or `NONE`.
    write_stalled: AtomicU64,
    /// HTTP/2 sends frames between requests; only HTTP/1 bytes start a head.
    multiplexed: AtomicBool,
    shed: AtomicBool,
    close: Notify,
}

impl Conn {
    fn new() -> Self {
        Conn {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            started: Mutex::new(BTreeMap::new()),
            requests: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(NONE),
            write_stalled: AtomicU64::new(NONE),
            multiplexed: AtomicBool::new(false),
            shed: AtomicBool::new(false),
            close: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    fn bytes_read(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_started.load(Ordering::Relaxed) == NONE
            && !self.multiplexed.load(Ordering::Relaxed)
        {
            self.head_started.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// Notes whether a write had to wait for the client.
    fn wrote<T>(&self, poll: &Poll<T>) {
        let stalled = self.write_stalled.load(Ordering::Relaxed);
        match (poll.is_pending(), stalled == NONE) {
            (true, true) => self.write_stalled.store(self.now_ms(), Ordering::Relaxed),
            (false, false) => self.write_stalled.store(NONE, Ordering::Relaxed),
            _ => {}
        }
    }

    fn started(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, u64>> {
        self.started.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        let number = self.requests.fetch_add(1, Ordering::Relaxed);
        self.started().insert(number, self.now_ms());
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(NONE, Ordering::Relaxed);
        InFlight {
            conn: self.clone(),
            number,
        }
    }

    /// When the watchdog must act if nothing changes, and why. While
    /// requests are in flight, the oldest must be answered (its last byte
    /// written) within the request timeout.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, CloseReason)> {
        let at = |ms: u64, after: Duration| self.opened + Duration::from_millis(ms) + after;
        let stalled = self.write_stalled.load(Ordering::Relaxed);
        let stall = (stalled != NONE).then(|| {
            (
                at(stalled, limits.request_timeout),
                CloseReason::RequestTimeout,
            )
        });
        let other = self.timing_deadline(limits, at);
        match (stall, other) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    fn timing_deadline(
        &self,
        limits: &ConnectionLimits,
        at: impl Fn(u64, Duration) -> Instant,
    ) -> Option<(Instant, CloseReason)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            let oldest = self.started().values().next().copied()?;
            return Some((
                at(oldest, limits.request_timeout),
                CloseReason::RequestTimeout,
            ));
        }
        let head = self.head_started.load(Ordering::Relaxed);
        if head != NONE {
            return Some((
                at(head, limits.header_read_timeout),
                CloseReason::HeaderTimeout,
            ));
        }
        let idle = self.idle_since.load(Ordering::Relaxed);
        if self.requests.load(Ordering::Relaxed) == 0 {
            // A new connection must send its first request head in time.
            return Some((
                at(idle, limits.header_read_timeout),
                CloseReason::HeaderTimeout,
            ));
        }
        Some((at(idle, limits.idle_timeout), CloseReason::IdleTimeout))
    }
}

/// Held while a request's response is being written.
struct InFlight {
    conn: Arc<Conn>,
    number: u64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let conn = &self.conn;
        conn.started().remove(&self.number);
        conn.idle_since.store(conn.now_ms(), Ordering::Relaxed);
        conn.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that holds its request's [`InFlight`] until written.
struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A socket that tells its [`Conn`] when bytes arrive.
struct Watched<IO> {
    io: IO,
    conn: Arc<Conn>,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.conn.bytes_read();
        }
        poll
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write(cx, buf);
        this.conn.wrote(&poll);
        poll
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_flush(cx);
        this.conn.wrote(&poll);
        poll
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.conn.wrote(&poll);
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Every open connection of one listener, oldest first.
#[derive(Default)]
struct Registry {
    conns: Mutex<BTreeMap<u64, Arc<Conn>>>,
    next: AtomicU64,
    /// Shed connections not closed yet: each still holds a descriptor.
    closing: AtomicUsize,
}

/// How far the shedder looks for a connection to shed.
const SHED_SCAN: usize = 4096;
/// Shed connections that may be closing at once; past it new connections
/// are refused, so open descriptors never run far past the cap.
const MAX_CLOSING: usize = 16;
/// How long a request must have been in flight before its connection may
/// be shed for a new one.
const STUCK: Duration = Duration::from_secs(2);

impl Registry {
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self, conn: Arc<Conn>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, conn);
        id
    }

    fn remove(&self, id: u64) {
        if let Some(conn) = self.lock().remove(&id)
            && conn.shed.load(Ordering::Relaxed)
        {
            self.closing.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Asks one connection to close to make room: the oldest that never
    /// sent a whole request, else the oldest idle one, else the one whose
    /// oldest request has been in flight longest, if that is over
    /// [`STUCK`] (an answer the client will not take, a body that does not
    /// come). False when every connection is busy with a fresh request, or
    /// when enough are already closing to make room.
    fn shed_one(&self) -> bool {
        if self.closing.load(Ordering::Acquire) >= MAX_CLOSING {
            return false;
        }
        let conns = self.lock();
        let mut idle = None;
        let mut stuck: Option<(u64, &Arc<Conn>)> = None;
        for conn in conns.values().take(SHED_SCAN) {
            if conn.shed.load(Ordering::Relaxed) {
                continue;
            }
            if conn.in_flight.load(Ordering::Acquire) > 0 {
                let since = conn.started().values().next().copied();
                if let Some(since) = since {
                    let age = conn.now_ms().saturating_sub(since);
                    if stuck.is_none_or(|(oldest, _)| age > oldest) {
                        stuck = Some((age, conn));
                    }
                }
                continue;
            }
            if conn.requests.load(Ordering::Relaxed) == 0 {
                idle = Some(conn);
                break;
            }
            idle.get_or_insert(conn);
        }
        let stuck = stuck
            .filter(|(age, _)| *age >= STUCK.as_millis() as u64)
            .map(|(_, conn)| conn);
        match idle.or(stuck) {
            Some(conn) => {
                conn.shed.store(true, Ordering::Relaxed);
                self.closing.fetch_add(1, Ordering::AcqRel);
                conn.close.notify_one();
                true
            }
            None => false,
        }
    }

    fn close_all(&self) {
        for conn in self.lock().values() {
            conn.close.notify_one();
        }
    }
}

/// Counts sheds between log lines, so a flood is one line every
/// [`SHED_LOG_INTERVAL`], not one per connection.
#[derive(Default)]
struct ShedLog {
    last: Mutex<Option<Instant>>,
    shed: AtomicU64,
    refused: AtomicU64,
}

impl ShedLog {
    fn note(&self, refused: bool, listener: &str, cap: usize) {
        let counter = if refused { &self.refused } else { &self.shed };
        counter.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|at| at.elapsed() < SHED_LOG_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
        let shed = self.shed.swap(0, Ordering::Relaxed);
        let refused = self.refused.swap(0, Ordering::Relaxed);
        tracing::warn!(
            listener,
            max_connections = cap,
            shed,
            refused,
            "connections shed at the connection cap (idle or half-sent ones closed for new \
             ones; refused when every connection was busy)"
        );
    }
}

/// One listener's accept loop and its connections.
pub(super) struct Listener {
    pub name: &'static str,
    pub tcp: TcpListener,
    pub router: Router,
    pub tls: Option<Arc<TlsSetup>>,
    pub limits: ConnectionLimits,
}

impl Listener {
    /// Accepts until `shutdown` turns true, then closes idle connections
    /// and waits up to [`SHUTDOWN_GRACE`] for requests in flight.
    pub async fn run(self, state: AppState, mut shutdown: watch::Receiver<bool>) {
        let shared = Arc::new(Shared {
            name: self.name,
            router: self.router,
            tls: self.tls,
            limits: self.limits,
            registry: Registry::default(),
            shed_log: ShedLog::default(),
            state,
            done: Notify::new(),
        });
        let mut accept_error_logged: Option<Instant> = None;
        loop {
            let accepted = tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => break,
                accepted = self.tcp.accept() => accepted,
            };
            match accepted {
                Ok((tcp, peer)) => shared.clone().admit(tcp, peer),
                Err(e) => {
                    shared.state.inner.metrics.accept_error();
                    if accept_error_logged.is_none_or(|at| at.elapsed() >= SHED_LOG_INTERVAL) {
                        accept_error_logged = Some(Instant::now());
                        tracing::error!(listener = self.name, error = %e, "cannot accept connections");
                    }
                    // Out of descriptors: give closing connections a moment.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        drop(self.tcp);
        shared.registry.close_all();
        let wait_all = async {
            while shared.registry.len() > 0 {
                shared.done.notified().await;
            }
        };
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, wait_all).await;
    }
}

struct Shared {
    name: &'static str,
    router: Router,
    tls: Option<Arc<TlsSetup>>,
    limits: ConnectionLimits,
    registry: Registry,
    shed_log: ShedLog,
    state: AppState,
    done: Notify,
}

impl Shared {
    fn admit(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr) {
        let metrics = &self.state.inner.metrics;
        if self.registry.len() >= self.limits.max_connections {
            let shed = self.registry.shed_one();
            metrics.connection_shed(if shed { "shed" } else { "refused" });
            self.shed_log
                .note(!shed, self.name, self.limits.max_connections);
            if !shed {
                return;
            }
        }
        let _ = tcp.set_nodelay(true);
        let conn = Arc::new(Conn::new());
        let id = self.registry.add(conn.clone());
        metrics.connections_open.inc();
        tokio::spawn(async move {
            // Sheds are counted when they happen; shutdown is not counted.
            match self.serve(tcp, peer, conn).await {
                None | Some(CloseReason::Shed) => {}
                Some(reason) => self.state.inner.metrics.connection_closed(reason.label()),
            }
            self.registry.remove(id);
            self.state.inner.metrics.connections_open.dec();
            self.done.notify_waiters();
        });
    }

    /// Serves one connection; returns why it was closed, if we closed it.
    async fn serve(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        conn: Arc<Conn>,
    ) -> Option<CloseReason> {
        let router = self.router.clone();
        let tracker = conn.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let in_flight = tracker.request_started();
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move {
                let response = router.oneshot(request).await?;
                Ok::<_, Infallible>(response.map(|inner| TrackedBody {
                    inner,
                    _in_flight: in_flight,
                }))
            }
        });
        let Some(tls) = &self.tls else {
            let io = TokioIo::new(Watched {
                io: tcp,
                conn: conn.clone(),
            });
            let connection = http1_builder().serve_connection(io, service);
            return self.drive(connection, &conn).await;
        };
        let deadline =
            tokio::time::Instant::from_std(conn.opened + self.limits.header_read_timeout);
        let handshake = tokio::time::timeout_at(deadline, tls.acceptor().accept(tcp));
        let stream = tokio::select! {
            done = handshake => match done {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                    return Some(CloseReason::TlsHandshake);
                }
                Err(_) => return Some(CloseReason::HeaderTimeout),
            },
            // Shed (or shutting down) before the handshake finished.
            _ = conn.close.notified() => return Some(CloseReason::Shed),
        };
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        conn.multiplexed.store(h2, Ordering::Relaxed);
        let io = TokioIo::new(Watched {
            io: stream,
            conn: conn.clone(),
        });
        if h2 {
            let connection = http2_builder().serve_connection(io, service);
            self.drive(connection, &conn).await
        } else {
            let connection = http1_builder().serve_connection(io, service);
            self.drive(connection, &conn).await
        }
    }

    /// Polls `connection` to its end, closing it when its deadline passes
    /// with nothing in flight, when it is shed, or at shutdown.
    async fn drive<C: GracefulConnection>(
        &self,
        connection: C,
        conn: &Conn,
    ) -> Option<CloseReason> {
        let mut connection = std::pin::pin!(connection);
        // The watchdog looks at least this often, so a head that starts
        // late in an idle period is still held to the header timeout.
        let tick = (self.limits.header_read_timeout / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(1));
        let reason = loop {
            let wake = match conn.deadline(&self.limits) {
                Some((at, reason)) if at <= Instant::now() => break reason,
                Some((at, _)) => at.min(Instant::now() + tick),
                None => Instant::now() + tick,
            };
            tokio::select! {
                _ = connection.as_mut() => return None,
                _ = tokio::time::sleep_until(wake.into()) => {}
                _ = conn.close.notified() => break CloseReason::Shed,
            }
        };
        // A shed connection is dropped at once: its descriptor is what the
        // new connection needs.
        if conn.shed.load(Ordering::Relaxed) {
            return Some(CloseReason::Shed);
        }
        // Idle, timed out or shutting down: let HTTP/2 say goodbye and a
        // response being written finish, briefly; then drop the socket.
        connection.as_mut().graceful();
        let grace = if matches!(reason, CloseReason::RequestTimeout) {
            Duration::from_secs(1)
        } else if conn.in_flight.load(Ordering::Acquire) > 0 {
            SHUTDOWN_GRACE
        } else {
            Duration::from_millis(200)
        };
        let _ = tokio::time::timeout(grace, connection).await;
        Some(reason)
    }
}

fn http1_builder() -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        // Our watchdog holds heads to --header-read-timeout; hyper's own
        // timer would also cut idle keep-alive connections at that time.
        .header_read_timeout(None)
        .max_buf_size(16 * 1024)
        .max_headers(64)
        .keep_alive(true);
    builder
}

fn http2_builder() -> http2::Builder<TokioExecutor> {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(32)
        .max_header_list_size(16 * 1024)
        .max_pending_accept_reset_streams(32)
        .max_local_error_reset_streams(Some(256));
    builder
}

/// A hyper server connection that can be asked to finish.
trait GracefulConnection: Future<Output = hyper::Result<()>> {
    fn graceful(self: Pin<&mut Self>);
}

impl<I, S, B> GracefulConnection for http1::Connection<I, S>
where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: http_body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn graceful(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, B, E> GracefulConnection for http2::Connection<I, S, E>
where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: http_body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn graceful(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}
