//! The entry point every plugin binary of the project uses: parse env and stdin, check the
//! version gates, call the plugin, print the result or error JSON, exit.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::NetConf;
use crate::env::{CniEnv, Command, process_vars, split_vars};
use crate::error::{CniError, ErrorCode, Result};
use crate::result::NetworkResult;
use crate::version::{CniVersion, SUPPORTED_VERSIONS};

/// One invocation, parsed and validated.
#[derive(Debug, Clone)]
pub struct Request {
    pub env: CniEnv,
    /// The raw config bytes, for delegates that must see exactly what the runtime sent.
    pub stdin: Vec<u8>,
    pub config: NetConf,
    /// The config's version; results are printed in it.
    pub version: CniVersion,
    /// Non-CNI variables to forward to delegates (PATH, TRACEPARENT, CNI_NETNS_OVERRIDE, ...).
    pub extra_env: Vec<(String, String)>,
}

impl Request {
    /// Builds a request from an already validated env and config bytes (for in-process
    /// delegation); the config must parse and its version must be known.
    pub fn new(env: CniEnv, stdin: Vec<u8>, extra_env: Vec<(String, String)>) -> Result<Request> {
        let config = NetConf::from_slice(&stdin)?;
        let version = config.version()?;
        Ok(Request {
            env,
            stdin,
            config,
            version,
            extra_env,
        })
    }
}

/// One (container, interface) attachment that GC must keep.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// The GC input: everything not listed here may be cleaned up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcRequest {
    pub valid_attachments: Vec<Attachment>,
}

/// The spec's key, and the key libcni also sends.
pub const VALID_ATTACHMENTS_KEYS: [&str; 2] = ["cni.dev/valid-attachments", "cni.dev/attachments"];

impl GcRequest {
    /// Reads `cni.dev/valid-attachments`, else `cni.dev/attachments`. An absent or null list
    /// means no attachment is valid (libcni sends null for an empty list).
    pub fn from_config(config: &NetConf) -> Result<GcRequest> {
        for key in VALID_ATTACHMENTS_KEYS {
            match config.extra.get(key) {
                None | Some(Value::Null) => continue,
                Some(v) => {
                    let valid_attachments = serde_json::from_value(v.clone())
                        .map_err(|e| CniError::invalid_config(format!("key {key:?}: {e}")))?;
                    return Ok(GcRequest { valid_attachments });
                }
            }
        }
        Ok(GcRequest::default())
    }

    pub fn is_valid(&self, container_id: &str, ifname: &str) -> bool {
        self.valid_attachments
            .iter()
            .any(|a| a.container_id == container_id && a.ifname == ifname)
    }
}

/// A CNI plugin. Only `add`, `del` and `check` are required.
#[allow(async_fn_in_trait)] // Plugins run on a current-thread runtime: no Send bound needed.
pub trait Plugin {
    fn name(&self) -> &'static str;

    /// The versions the plugin accepts; a config in another version is refused with code 1.
    fn supported_versions(&self) -> &'static [CniVersion] {
        SUPPORTED_VERSIONS
    }

    async fn add(&self, req: &Request) -> Result<NetworkResult>;
    async fn del(&self, req: &Request) -> Result<()>;
    async fn check(&self, req: &Request) -> Result<()>;

    async fn status(&self, _req: &Request) -> Result<()> {
        Ok(())
    }

    async fn gc(&self, _req: &Request, _gc: &GcRequest) -> Result<()> {
        Ok(())
    }
}

/// Exit code of a failed invocation.
pub const FAILURE_EXIT_CODE: i32 = 1;

/// Largest config a plugin reads on stdin. CNI configs are kilobytes; the bound keeps a runaway
/// writer from holding a root process's memory. The node daemon takes the same limit.
pub const MAX_STDIN_BYTES: usize = 1 << 20;

/// Reads a plugin's stdin, refusing more than [`MAX_STDIN_BYTES`] with an error naming the limit.
pub fn read_stdin(mut input: impl Read) -> Result<Vec<u8>> {
    let mut stdin = Vec::new();
    (&mut input)
        .take(MAX_STDIN_BYTES as u64 + 1)
        .read_to_end(&mut stdin)
        .map_err(|e| CniError::io(format!("reading stdin: {e}")))?;
    check_stdin_size(stdin.len())?;
    Ok(stdin)
}

/// The stdin limit as a check, for callers that got the bytes another way (the daemon).
pub fn check_stdin_size(len: usize) -> Result<()> {
    if len > MAX_STDIN_BYTES {
        return Err(CniError::invalid_config(format!(
            "stdin: the config is more than {MAX_STDIN_BYTES} bytes (the limit for a CNI config)"
        )));
    }
    Ok(())
}

/// The cniVersion to print in an error: the config's when it is a known version, else LATEST.
pub fn error_version(stdin: &[u8]) -> CniVersion {
    serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str()?.parse().ok())
        .unwrap_or(CniVersion::LATEST)
}

/// The bytes printed on stdout for an error.
pub fn error_bytes(err: &CniError, version: CniVersion) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(&err.to_json(version.as_str())).unwrap_or_default();
    out.push(b'\n');
    out
}

/// The VERSION answer.
pub fn version_info(supported: &[CniVersion]) -> Value {
    json!({
        "cniVersion": CniVersion::LATEST.as_str(),
        "supportedVersions": supported.iter().map(|v| v.as_str()).collect::<Vec<_>>(),
    })
}

/// Runs a full CNI invocation with the given variables and stdin; returns the stdout bytes and
/// the exit code. It reads no process state, so tests drive it directly.
pub async fn dispatch<P: Plugin>(
    plugin: &P,
    vars: Vec<(String, String)>,
    stdin: &[u8],
) -> (Vec<u8>, i32) {
    match run(plugin, vars, stdin).await {
        Ok(out) => (out, 0),
        Err(e) => (error_bytes(&e, error_version(stdin)), FAILURE_EXIT_CODE),
    }
}

async fn run<P: Plugin>(plugin: &P, vars: Vec<(String, String)>, stdin: &[u8]) -> Result<Vec<u8>> {
    let (cni_vars, extra_env) = split_vars(vars);
    let env = CniEnv::from_vars(cni_vars)?;
    if env.command == Command::Version {
        return to_bytes(&version_info(plugin.supported_versions()));
    }
    let req = Request::new(env, stdin.to_vec(), extra_env)?;
    let version = req.version;
    if !plugin.supported_versions().contains(&version) {
        return Err(CniError::incompatible_version(format!(
            "incompatible CNI versions: config is {version}, plugin {} supports {}",
            plugin.name(),
            plugin
                .supported_versions()
                .iter()
                .map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let gate = |allowed: bool, verb: Command, since: CniVersion| {
        if allowed {
            Ok(())
        } else {
            Err(CniError::new(
                ErrorCode::IncompatibleVersion,
                format!(
                    "config version {version} does not allow {verb}; it needs {since} or later"
                ),
            ))
        }
    };
    match req.env.command {
        Command::Add => {
            let result = plugin.add(&req).await?;
            let mut out = result.to_vec_pretty(version)?;
            out.push(b'\n');
            Ok(out)
        }
        Command::Del => plugin.del(&req).await.map(|()| Vec::new()),
        Command::Check => {
            gate(version.has_check(), Command::Check, CniVersion::V0_4_0)?;
            plugin.check(&req).await.map(|()| Vec::new())
        }
        Command::Status => {
            gate(
                version.has_status_and_gc(),
                Command::Status,
                CniVersion::V1_1_0,
            )?;
            plugin.status(&req).await.map(|()| Vec::new())
        }
        Command::Gc => {
            gate(version.has_status_and_gc(), Command::Gc, CniVersion::V1_1_0)?;
            let gc = GcRequest::from_config(&req.config)?;
            plugin.gc(&req, &gc).await.map(|()| Vec::new())
        }
        Command::Version => to_bytes(&version_info(plugin.supported_versions())),
    }
}

fn to_bytes(v: &Value) -> Result<Vec<u8>> {
    let mut out = serde_json::to_vec_pretty(v)
        .map_err(|e| CniError::internal(format!("encoding output: {e}")))?;
    out.push(b'\n');
    Ok(out)
}

/// The `main` of every plugin binary: a current-thread runtime, env and stdin in, the result or
/// error JSON out on stdout, exit code 0 or 1.
pub fn run_main<P: Plugin>(plugin: P) -> ! {
    match read_stdin(std::io::stdin().lock()) {
        Ok(stdin) => run_main_with_stdin(plugin, &stdin),
        Err(err) => exit_with(&error_bytes(&err, CniVersion::LATEST), FAILURE_EXIT_CODE),
    }
}

/// [`run_main`] for a caller that has already read stdin (multinet reads it to decide whether
/// a node daemon should take the call).
pub fn run_main_with_stdin<P: Plugin>(plugin: P, stdin: &[u8]) -> ! {
    let (out, code) = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(dispatch(&plugin, process_vars(), stdin)),
        Err(e) => (
            error_bytes(
                &CniError::internal(format!("starting runtime: {e}")),
                error_version(stdin),
            ),
            FAILURE_EXIT_CODE,
        ),
    };
    exit_with(&out, code)
}

/// Prints a plugin's answer on stdout and exits with its code.
pub fn exit_with(out: &[u8], code: i32) -> ! {
    let mut stdout = std::io::stdout().lock();
    // Nothing more can be reported if stdout is gone; the exit code still tells.
    let _ = stdout.write_all(out).and_then(|()| stdout.flush());
    std::process::exit(code)
}
