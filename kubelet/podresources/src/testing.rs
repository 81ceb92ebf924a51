//! A fake kubelet for tests: the generated pod-resources server on a unix socket in a temp dir,
//! answering as told and recording what it was asked.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Code, Request, Response, Status};

use crate::proto::pod_resources_lister_server::{PodResourcesLister, PodResourcesListerServer};
use crate::proto::{
    GetPodResourcesRequest, GetPodResourcesResponse, ListPodResourcesRequest,
    ListPodResourcesResponse, PodResources,
};
use crate::{GET_PATH, LIST_PATH};

/// How the fake answers.
#[derive(Debug, Clone)]
pub enum Behavior {
    /// Get and List answer from these pods; Get of another pod fails with "pod not found".
    Pods(Vec<PodResources>),
    /// Get fails with this gRPC status code and message; List answers from the pods.
    GetFails(i32, &'static str, Vec<PodResources>),
    /// Every call fails with this gRPC status code and message.
    Status(i32, &'static str),
    /// Never answers.
    Hang,
}

/// A call the fake received: its path and (for Get) the pod asked for as (name, namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub path: String,
    pub pod: Option<(String, String)>,
}

/// The running fake; dropping it stops the server.
pub struct FakeKubelet {
    _dir: tempfile::TempDir,
    pub socket: PathBuf,
    calls: Arc<Mutex<Vec<Call>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeKubelet {
    /// Listens on `kubelet.sock` in a new temp dir, serving from the current tokio runtime.
    ///
    /// # Panics
    /// When the temp dir or the socket cannot be made (a test's setup).
    #[allow(clippy::expect_used)]
    pub async fn start(behavior: Behavior) -> FakeKubelet {
        let dir = tempfile::tempdir().expect("temp dir for the fake kubelet");
        let socket = dir.path().join("kubelet.sock");
        let listener =
            tokio::net::UnixListener::bind(&socket).expect("bind the fake kubelet's socket");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let service = PodResourcesListerServer::new(Fake {
            behavior,
            calls: calls.clone(),
        });
        let task = tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .serve_with_incoming(service, UnixListenerStream::new(listener))
                .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, "fake kubelet stopped");
            }
        });
        FakeKubelet {
            _dir: dir,
            socket,
            calls,
            task,
        }
    }

    /// The calls received so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

struct Fake {
    behavior: Behavior,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Fake {
    fn record(&self, path: &str, pod: Option<(String, String)>) {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Call {
                path: path.into(),
                pod,
            });
    }
}

fn status(code: i32, message: &str) -> Status {
    Status::new(Code::from_i32(code), message)
}

#[tonic::async_trait]
impl PodResourcesLister for Fake {
    async fn list(
        &self,
        _request: Request<ListPodResourcesRequest>,
    ) -> Result<Response<ListPodResourcesResponse>, Status> {
        self.record(LIST_PATH, None);
        match &self.behavior {
            Behavior::Hang => std::future::pending().await,
            Behavior::Status(code, text) => Err(status(*code, text)),
            Behavior::Pods(pods) | Behavior::GetFails(_, _, pods) => {
                Ok(Response::new(ListPodResourcesResponse {
                    pod_resources: pods.clone(),
                }))
            }
        }
    }

    async fn get(
        &self,
        request: Request<GetPodResourcesRequest>,
    ) -> Result<Response<GetPodResourcesResponse>, Status> {
        let asked = request.into_inner();
        let (name, namespace) = (asked.pod_name, asked.pod_namespace);
        self.record(GET_PATH, Some((name.clone(), namespace.clone())));
        match &self.behavior {
            Behavior::Hang => std::future::pending().await,
            Behavior::Status(code, text) | Behavior::GetFails(code, text, _) => {
                Err(status(*code, text))
            }
            Behavior::Pods(pods) => pods
                .iter()
                .find(|p| p.name == name && p.namespace == namespace)
                .map(|p| {
                    Response::new(GetPodResourcesResponse {
                        pod_resources: Some(p.clone()),
                    })
                })
                .ok_or_else(|| Status::unknown("pod not found")),
        }
    }
}
