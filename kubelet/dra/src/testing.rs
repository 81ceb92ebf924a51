//! For tests that play the kubelet: gRPC clients of the registration and DRA sockets.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::proto::registration::registration_client::RegistrationClient;
use crate::proto::v1::dra_plugin_client::DraPluginClient as V1Client;
use crate::proto::v1beta1::dra_plugin_client::DraPluginClient as V1beta1Client;

/// A channel to the unix socket at `path` (dialled again whenever the channel reconnects).
pub async fn channel(path: &Path) -> Result<Channel, tonic::transport::Error> {
    let path: PathBuf = path.to_path_buf();
    let connector = tower::service_fn(move |_: Uri| {
        let path = path.clone();
        async move {
            let stream = tokio::net::UnixStream::connect(path).await?;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    });
    // The URI only names the :authority header; the connector decides where bytes go.
    Endpoint::from_static("http://localhost")
        .connect_with_connector(connector)
        .await
}

pub async fn registration(
    path: &Path,
) -> Result<RegistrationClient<Channel>, tonic::transport::Error> {
    Ok(RegistrationClient::new(channel(path).await?))
}

pub async fn v1(path: &Path) -> Result<V1Client<Channel>, tonic::transport::Error> {
    Ok(V1Client::new(channel(path).await?))
}

pub async fn v1beta1(path: &Path) -> Result<V1beta1Client<Channel>, tonic::transport::Error> {
    Ok(V1beta1Client::new(channel(path).await?))
}
