//! The gRPC side: the registration service on `<registry>/<driver>-reg.sock` and the DRA
//! services (v1 and v1beta1, one [`Driver`] behind both) on the endpoint socket; [`serve`] runs
//! them with the slice publisher until told to stop.

use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Context, Poll, Service, http};
use tonic::{Request, Response, Status};

use crate::claims::ClaimRef;
use crate::driver::Driver;
use crate::proto::registration::registration_server::{Registration, RegistrationServer};
use crate::proto::registration::{
    InfoRequest, PluginInfo, RegistrationStatus, RegistrationStatusResponse,
};
use crate::publish;
use crate::slice::Publisher;

/// The plugin type the kubelet's plugin watcher routes to its DRA manager.
pub const PLUGIN_TYPE: &str = "DRAPlugin";
/// The services the DRA socket serves, as registration names them, preferred first.
pub const SUPPORTED_VERSIONS: [&str; 2] = ["v1.DRAPlugin", "v1beta1.DRAPlugin"];

/// What the kubelet's plugin watcher is told.
#[derive(Debug, Clone)]
pub struct RegistrationService {
    pub driver: String,
    /// Absolute path of the DRA socket.
    pub endpoint: PathBuf,
}

#[tonic::async_trait]
impl Registration for RegistrationService {
    async fn get_info(&self, _: Request<InfoRequest>) -> Result<Response<PluginInfo>, Status> {
        Ok(Response::new(PluginInfo {
            r#type: PLUGIN_TYPE.into(),
            name: self.driver.clone(),
            endpoint: self.endpoint.to_string_lossy().into_owned(),
            supported_versions: SUPPORTED_VERSIONS.map(String::from).to_vec(),
        }))
    }

    async fn notify_registration_status(
        &self,
        request: Request<RegistrationStatus>,
    ) -> Result<Response<RegistrationStatusResponse>, Status> {
        let status = request.into_inner();
        if status.plugin_registered {
            tracing::info!(driver = %self.driver, "registered with the kubelet");
            Ok(Response::new(RegistrationStatusResponse {}))
        } else {
            tracing::error!(driver = %self.driver, error = %status.error,
                "the kubelet refused the DRA driver's registration");
            Err(Status::unknown(format!(
                "registration of DRA driver {} failed: {}",
                self.driver, status.error
            )))
        }
    }
}

/// The DRA service of one API version over the shared driver.
#[derive(Clone)]
pub struct DraService(pub Arc<Driver>);

/// Implements one version's `DRAPlugin` (the versions' messages differ only in `share_id`).
macro_rules! dra_version {
    ($v:ident, $($share:tt)*) => {
        #[tonic::async_trait]
        impl crate::proto::$v::dra_plugin_server::DraPlugin for DraService {
            async fn node_prepare_resources(
                &self,
                request: Request<crate::proto::$v::NodePrepareResourcesRequest>,
            ) -> Result<Response<crate::proto::$v::NodePrepareResourcesResponse>, Status> {
                use crate::proto::$v::{Device, NodePrepareResourceResponse};
                let claims = request.into_inner().claims.into_iter().map(|c| ClaimRef {
                    namespace: c.namespace,
                    uid: c.uid,
                    name: c.name,
                });
                let answer = self.0.prepare(claims.collect()).await;
                let claims = answer
                    .into_iter()
                    .map(|(uid, outcome)| {
                        let entry = match outcome {
                            Ok(devices) => NodePrepareResourceResponse {
                                devices: devices
                                    .into_iter()
                                    .map(|d| Device {
                                        request_names: d.request_names,
                                        pool_name: d.pool,
                                        device_name: d.device,
                                        cdi_device_ids: Vec::new(),
                                        $($share)*
                                    })
                                    .collect(),
                                error: String::new(),
                            },
                            Err(error) => NodePrepareResourceResponse {
                                devices: Vec::new(),
                                error,
                            },
                        };
                        (uid, entry)
                    })
                    .collect();
                Ok(Response::new(crate::proto::$v::NodePrepareResourcesResponse { claims }))
            }

            async fn node_unprepare_resources(
                &self,
                request: Request<crate::proto::$v::NodeUnprepareResourcesRequest>,
            ) -> Result<Response<crate::proto::$v::NodeUnprepareResourcesResponse>, Status> {
                use crate::proto::$v::NodeUnprepareResourceResponse;
                let claims = request.into_inner().claims.into_iter().map(|c| ClaimRef {
                    namespace: c.namespace,
                    uid: c.uid,
                    name: c.name,
                });
                let answer = self.0.unprepare(claims.collect()).await;
                let claims = answer
                    .into_iter()
                    .map(|(uid, outcome)| {
                        let error = outcome.err().unwrap_or_default();
                        (uid, NodeUnprepareResourceResponse { error })
                    })
                    .collect();
                Ok(Response::new(crate::proto::$v::NodeUnprepareResourcesResponse { claims }))
            }
        }
    };
}

dra_version!(v1, share_id: None,);
dra_version!(v1beta1,);

type V1Server = crate::proto::v1::dra_plugin_server::DraPluginServer<DraService>;
type V1beta1Server = crate::proto::v1beta1::dra_plugin_server::DraPluginServer<DraService>;

/// Both versions of the DRA service on one socket, told apart by the gRPC path's package
/// (tonic's own router would bring a web framework into the binary for this).
#[derive(Clone)]
struct Versions {
    v1: V1Server,
    v1beta1: V1beta1Server,
}

const V1BETA1_PATH: &str = "/k8s.io.kubelet.pkg.apis.dra.v1beta1.";

impl Service<http::Request<Body>> for Versions {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The generated servers are always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request.uri().path().starts_with(V1BETA1_PATH) {
            Box::pin(self.v1beta1.call(request))
        } else {
            // v1, and every unknown path (answered Unimplemented).
            Box::pin(self.v1.call(request))
        }
    }
}

/// The listening sockets, bound by the caller (root-only, stale files replaced).
pub struct Sockets {
    pub registration: UnixListener,
    pub dra: UnixListener,
    /// The DRA socket's absolute path, told to the kubelet.
    pub endpoint: PathBuf,
}

/// Serves registration and DRA and publishes the node's slices until `stop` completes or a
/// server fails (the error is returned).
pub async fn serve(
    driver: Arc<Driver>,
    publisher: Publisher,
    sockets: Sockets,
    stop: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let registration = RegistrationService {
        driver: driver.name.clone(),
        endpoint: sockets.endpoint,
    };
    let registration = tonic::transport::Server::builder().serve_with_incoming(
        RegistrationServer::new(registration),
        UnixListenerStream::new(sockets.registration),
    );
    let service = DraService(driver.clone());
    let versions = Versions {
        v1: V1Server::new(service.clone()),
        v1beta1: V1beta1Server::new(service),
    };
    let dra = tonic::transport::Server::builder()
        .serve_with_incoming(versions, UnixListenerStream::new(sockets.dra));
    let slices = publish::run(driver.client().clone(), publisher, driver.sysfs.clone());
    tokio::select! {
        served = registration => served,
        served = dra => served,
        () = slices => Ok(()),
        () = stop => Ok(()),
    }
}
