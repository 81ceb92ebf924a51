//! The server thread: its own tokio runtime, the HTTP and HTTPS listeners, and the
//! commands that stop and restart them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::error::FixtureError;
use crate::handler::{self, Shared};

type Ack = oneshot::Sender<Result<(), FixtureError>>;

enum Command {
    Stop(Ack),
    Start(Ack),
    Shutdown,
}

/// Sends commands to the server thread; cheap to clone.
#[derive(Clone)]
pub(crate) struct ServerControl {
    commands: mpsc::UnboundedSender<Command>,
}

impl ServerControl {
    /// Runs a command and waits for it. Blocking is safe from any thread, async or not:
    /// the work happens on the server's own runtime.
    fn run(&self, command: impl FnOnce(Ack) -> Command) -> Result<(), FixtureError> {
        let (ack, done) = oneshot::channel();
        self.commands
            .send(command(ack))
            .map_err(|_| FixtureError::ServerGone)?;
        futures::executor::block_on(done).map_err(|_| FixtureError::ServerGone)?
    }

    /// Closes both listeners and every open connection: clients get connection refused.
    pub fn stop(&self) -> Result<(), FixtureError> {
        self.run(Command::Stop)
    }

    /// Listens again on the same ports.
    pub fn start(&self) -> Result<(), FixtureError> {
        self.run(Command::Start)
    }

    fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown);
    }
}

/// The running server thread.
pub(crate) struct Server {
    pub control: ServerControl,
    pub http_addr: SocketAddr,
    pub https_addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.control.shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Listeners {
    shared: Arc<Shared>,
    tls: TlsAcceptor,
    http_addr: SocketAddr,
    https_addr: SocketAddr,
    running: Vec<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
}

/// SO_REUSEADDR so a restart can bind the same port while old connections linger.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

impl Listeners {
    fn start(&mut self) -> Result<(), FixtureError> {
        if !self.running.is_empty() {
            return Ok(());
        }
        let http = bind(self.http_addr)
            .map_err(|e| FixtureError::io(format!("binding {}", self.http_addr), e))?;
        let https = bind(self.https_addr)
            .map_err(|e| FixtureError::io(format!("binding {}", self.https_addr), e))?;
        // Port 0 on first start: remember what the kernel chose so restarts reuse it.
        self.http_addr = http
            .local_addr()
            .map_err(|e| FixtureError::io("local address", e))?;
        self.https_addr = https
            .local_addr()
            .map_err(|e| FixtureError::io("local address", e))?;
        for (listener, tls) in [(http, None), (https, Some(self.tls.clone()))] {
            let (stop, stopped) = oneshot::channel();
            let task = tokio::spawn(accept_loop(listener, tls, self.shared.clone(), stopped));
            self.running.push((stop, task));
        }
        Ok(())
    }

    async fn stop(&mut self) {
        for (stop, task) in self.running.drain(..) {
            let _ = stop.send(());
            let _ = task.await;
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let id = shared.next_connection();
                    connections.spawn(serve_connection(stream, tls.clone(), shared.clone(), id));
                }
                // Out of descriptors or similar: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

async fn serve_connection(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    connection: u64,
) {
    let _ = stream.set_nodelay(true);
    let is_tls = tls.is_some();
    let service =
        service_fn(move |request| handler::handle(shared.clone(), request, is_tls, connection));
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new());
    match tls {
        Some(acceptor) => {
            let Ok(stream) = acceptor.accept(stream).await else {
                return;
            };
            // HTTP/2 when the client asks for it (ALPN), as kube-apiserver serves it.
            if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                let _ = http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            } else {
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
        }
        None => {
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    }
}

async fn serve_commands(mut listeners: Listeners, mut commands: mpsc::UnboundedReceiver<Command>) {
    while let Some(command) = commands.recv().await {
        match command {
            Command::Stop(ack) => {
                listeners.stop().await;
                let _ = ack.send(Ok(()));
            }
            Command::Start(ack) => {
                let _ = ack.send(listeners.start());
            }
            Command::Shutdown => break,
        }
    }
    listeners.stop().await;
}

type Ready = Result<(SocketAddr, SocketAddr), FixtureError>;

/// Starts the server thread and waits until both listeners are bound to ephemeral
/// loopback ports.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    tls: Arc<rustls::ServerConfig>,
) -> Result<Server, FixtureError> {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let (command_tx, command_rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = oneshot::channel::<Ready>();
    let thread = std::thread::Builder::new()
        .name("api-fixture".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = ready_tx.send(Err(FixtureError::io("starting the fixture runtime", e)));
                    return;
                }
            };
            runtime.block_on(async move {
                let mut listeners = Listeners {
                    shared,
                    tls: TlsAcceptor::from(tls),
                    http_addr: loopback,
                    https_addr: loopback,
                    running: Vec::new(),
                };
                match listeners.start() {
                    Ok(()) => {
                        let _ = ready_tx.send(Ok((listeners.http_addr, listeners.https_addr)));
                        serve_commands(listeners, command_rx).await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
        })
        .map_err(|e| FixtureError::io("spawning the fixture thread", e))?;
    let (http_addr, https_addr) =
        futures::executor::block_on(ready_rx).unwrap_or(Err(FixtureError::ServerGone))?;
    Ok(Server {
        control: ServerControl {
            commands: command_tx,
        },
        http_addr,
        https_addr,
        thread: Some(thread),
    })
}
