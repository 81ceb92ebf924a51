//! Delegation to the IPAM plugin named by `ipam.type`, with the plugin's own stdin, as the
//! reference plugins do. Errors keep the IPAM plugin's code.

use multinet_cni::{
    Command, DEFAULT_EXEC_TIMEOUT, ExecRequest, NetworkResult, Request, exec_plugin, find_plugin,
};

use crate::error::{Error, Result};

/// The IPAM plugin of one request.
#[derive(Debug, Clone, Copy)]
pub struct Ipam<'a> {
    pub plugin: &'static str,
    pub plugin_type: &'a str,
    pub req: &'a Request,
}

impl Ipam<'_> {
    async fn call(&self, command: Command) -> Result<Option<NetworkResult>> {
        let verb = command.as_str();
        let err = |source| Error::Ipam {
            plugin: self.plugin,
            verb,
            source,
        };
        let path = find_plugin(self.plugin_type, &self.req.env.path)
            .map_err(|e| err(e.context(format!("key \"ipam.type\": {:?}", self.plugin_type))))?;
        let exec = ExecRequest {
            command,
            env: &self.req.env,
            extra_env: &self.req.extra_env,
            stdin: &self.req.stdin,
            timeout: DEFAULT_EXEC_TIMEOUT,
        };
        exec_plugin(&path, &exec).await.map_err(err)
    }

    /// Allocates addresses; a result without any is an error.
    pub async fn add(&self) -> Result<NetworkResult> {
        let result = self.call(Command::Add).await?.unwrap_or_default();
        if result.ips.is_empty() {
            return Err(Error::Ipam {
                plugin: self.plugin,
                verb: "ADD",
                source: multinet_cni::CniError::internal(format!(
                    "IPAM plugin {:?} returned no IP address",
                    self.plugin_type
                )),
            });
        }
        Ok(result)
    }

    pub async fn del(&self) -> Result<()> {
        self.call(Command::Del).await.map(drop)
    }

    pub async fn check(&self) -> Result<()> {
        self.call(Command::Check).await.map(drop)
    }

    pub async fn status(&self) -> Result<()> {
        self.call(Command::Status).await.map(drop)
    }

    pub async fn gc(&self) -> Result<()> {
        self.call(Command::Gc).await.map(drop)
    }
}
