//! A kubelet socket that answers badly: garbage, oversized or malformed gRPC frames, no status,
//! not HTTP/2 at all, or nothing. The client must fail with a clear error, within the timeout,
//! without reading more than its message limit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::HeaderMap;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use multinet_podresources::{DeviceMap, MAX_MESSAGE, QueryError, pod_devices};
use tokio::io::AsyncWriteExt;

const TIMEOUT: Duration = Duration::from_secs(2);

type Body = BoxBody<Bytes, Infallible>;

/// What the raw server answers to every call.
#[derive(Clone)]
enum Answer {
    /// This body (gRPC frames as bytes), then trailers with grpc-status 0, or none.
    Body(Vec<u8>, bool),
    /// A frame header announcing `len` bytes, then zeros without end.
    Endless(u32),
    /// This HTTP status, no gRPC status, no body.
    Http(u16),
}

fn ok_trailers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("grpc-status", "0".parse().unwrap());
    h
}

fn respond(answer: Answer) -> Response<Body> {
    let body = match answer {
        Answer::Body(bytes, trailers) => {
            let body = Full::new(Bytes::from(bytes));
            if trailers {
                body.with_trailers(async { Some(Ok(ok_trailers())) })
                    .boxed()
            } else {
                body.boxed()
            }
        }
        Answer::Http(code) => {
            return Response::builder()
                .status(code)
                .body(Full::new(Bytes::new()).boxed())
                .unwrap();
        }
        Answer::Endless(len) => {
            let mut head = vec![0];
            head.extend(len.to_be_bytes());
            endless_body(head).boxed()
        }
    };
    Response::builder()
        .header("content-type", "application/grpc")
        .body(body)
        .unwrap()
}

/// The frame header, then 64 KiB chunks of zeros for ever.
fn endless_body(
    head: Vec<u8>,
) -> impl hyper::body::Body<Data = Bytes, Error = Infallible> + Send + Sync + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
    tokio::spawn(async move {
        if tx.send(Ok(Frame::data(Bytes::from(head)))).await.is_err() {
            return;
        }
        let zeros = Bytes::from(vec![0u8; 64 << 10]);
        while tx.send(Ok(Frame::data(zeros.clone()))).await.is_ok() {}
    });
    StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx))
}

struct Server {
    _dir: tempfile::TempDir,
    socket: PathBuf,
}

/// An HTTP/2 server on a unix socket in a temp dir that answers every request with `answer`.
fn grpc_server(answer: Answer) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("kubelet.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let answer = answer.clone();
                    async move {
                        // Read the request out before answering, as a server would.
                        let _ = req.into_body().collect().await;
                        Ok::<_, Infallible>(respond(answer))
                    }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Server { _dir: dir, socket }
}

/// A unix socket that accepts and then does `with` on each connection.
fn raw_server<F, Fut>(with: F) -> Server
where
    F: Fn(tokio::net::UnixStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("kubelet.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(with(stream));
        }
    });
    Server { _dir: dir, socket }
}

/// Asks `server`; returns the answer and checks it came within the timeout (and some slack).
async fn ask(server: &Server) -> Result<DeviceMap, QueryError> {
    let started = Instant::now();
    let answer = pod_devices(&server.socket, "team", "web", TIMEOUT)
        .await
        .map(|d| d.plugins);
    assert!(
        started.elapsed() < TIMEOUT + Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    answer
}

async fn failure(server: &Server) -> String {
    match ask(server).await {
        Err(e @ QueryError::Failed(_)) => e.to_string(),
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend((message.len() as u32).to_be_bytes());
    out.extend(message);
    out
}

#[tokio::test]
async fn garbage_is_an_error_not_a_panic() {
    // A field 3 (containers) whose length runs past the end.
    let s = grpc_server(Answer::Body(frame(&[0x0a, 0x03, 0x1a, 0x7f, 0x00]), true));
    let err = failure(&s).await;
    assert!(err.contains("protobuf"), "{err}");
}

#[tokio::test]
async fn a_message_over_the_limit_is_refused_unread() {
    // The frame announces 4 GiB and the bytes keep coming: refused from the header.
    let s = grpc_server(Answer::Endless(u32::MAX));
    let err = failure(&s).await;
    assert!(err.contains("limit"), "{err}");
    // Just over the limit.
    let s = grpc_server(Answer::Endless(MAX_MESSAGE as u32 + 1));
    let err = failure(&s).await;
    assert!(err.contains("limit"), "{err}");
}

#[tokio::test]
async fn malformed_frames_are_errors() {
    // Shorter than a frame header, then the end of the answer.
    let s = grpc_server(Answer::Body(vec![0, 0], true));
    failure(&s).await;
    // Compressed, which was not asked for.
    let s = grpc_server(Answer::Body(vec![1, 0, 0, 0, 0], true));
    let err = failure(&s).await;
    assert!(err.contains("compressed"), "{err}");
    // Says 3 bytes but 1 follows.
    let s = grpc_server(Answer::Body(vec![0, 0, 0, 0, 3, 1], true));
    failure(&s).await;
    // A well-formed empty message is an answer: no devices.
    let s = grpc_server(Answer::Body(frame(&[]), true));
    assert_eq!(ask(&s).await.unwrap(), DeviceMap::new());
}

#[tokio::test]
async fn an_answer_without_a_status_is_an_error() {
    let s = grpc_server(Answer::Body(frame(&[]), false));
    let err = failure(&s).await;
    assert!(err.contains("grpc-status"), "{err}");
}

#[tokio::test]
async fn an_http_error_without_grpc_status_is_an_error() {
    // gRPC maps HTTP 404 to Unimplemented, so List is tried too, and both are named.
    let s = grpc_server(Answer::Http(404));
    let err = failure(&s).await;
    assert!(err.contains("Get:") && err.contains("List:"), "{err}");
    assert!(err.contains("HTTP status code 404"), "{err}");
    let s = grpc_server(Answer::Http(500));
    let err = failure(&s).await;
    assert!(err.contains("HTTP status code 500"), "{err}");
}

#[tokio::test]
async fn a_socket_that_is_not_http2_fails_fast() {
    let s = raw_server(|mut stream| async move {
        let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
    });
    let started = Instant::now();
    failure(&s).await;
    assert!(started.elapsed() < TIMEOUT, "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_socket_that_never_speaks_times_out() {
    let s = raw_server(|stream| async move {
        std::future::pending::<()>().await;
        drop(stream);
    });
    let err = failure(&s).await;
    assert!(err.contains("no answer within"), "{err}");
}

#[tokio::test]
async fn a_connection_closed_at_once_is_an_error() {
    let s = raw_server(|stream| async move { drop(stream) });
    failure(&s).await;
}
