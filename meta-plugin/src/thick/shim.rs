//! The binary's side of thick mode: hand the call to the node daemon, or say that none listens.
//! Blocking std I/O only: this runs before any runtime or logging is set up, so a handed-over
//! call costs the process start and one local round trip.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use multinet_cni::{CniError, error_bytes, error_version};
use serde::Deserialize;

use super::wire;

/// The daemon's socket named by the config's `daemonSocket`, if any. Any config that does not
/// parse is left to the normal path, which reports it properly.
pub fn daemon_socket(stdin: &[u8]) -> Option<PathBuf> {
    #[derive(Deserialize)]
    struct Thick {
        #[serde(rename = "daemonSocket")]
        daemon_socket: Option<PathBuf>,
    }
    serde_json::from_slice::<Thick>(stdin)
        .ok()?
        .daemon_socket
        .filter(|p| !p.as_os_str().is_empty())
}

/// Why a call runs here although its config names a daemon, for the call's log.
pub fn no_daemon_note(socket: &Path, err: &std::io::Error) -> String {
    format!(
        "no multinet daemon at {} ({err}); running the call here",
        socket.display()
    )
}

/// What became of a call handed to the daemon.
#[derive(Debug)]
pub enum Handover {
    /// The daemon ran it (or it failed after the daemon took it): print this and exit with it.
    Answered { code: i32, stdout: Vec<u8> },
    /// Nothing listens on the socket: nothing was done, the caller may run the call itself.
    NoDaemon(std::io::Error),
}

/// Sends the call to the daemon at `socket` and waits for its answer.
pub fn hand_over(socket: &Path, vars: &[(String, String)], stdin: &[u8]) -> Handover {
    let request = wire::encode_request(vars, stdin);
    let env_len = request.len() - wire::HEADER_LEN - stdin.len();
    if env_len > wire::MAX_ENV_BYTES {
        // The daemon would refuse it; thin mode takes any environment, so the call runs here.
        return Handover::NoDaemon(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "the environment ({env_len} bytes as JSON) is over the daemon's limit of {} bytes",
                wire::MAX_ENV_BYTES
            ),
        ));
    }
    let mut stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) => return Handover::NoDaemon(e),
    };
    let sent = stream
        .write_all(&request)
        .and_then(|()| stream.shutdown(std::net::Shutdown::Write));
    let mut answer = Vec::new();
    let received = sent.and_then(|()| stream.read_to_end(&mut answer));
    match (received, wire::decode_response(&answer)) {
        (Ok(_), Some((code, stdout))) => Handover::Answered { code, stdout },
        // The daemon took the call and then went away (restarted, killed): what it did is in
        // the attachment record; the runtime retries, or calls DEL, which cleans it.
        (outcome, _) => {
            let why = match outcome {
                Err(e) => e.to_string(),
                Ok(_) => "it closed the connection without an answer".into(),
            };
            let err = CniError::try_again(format!(
                "multinet daemon at {}: {why}; try again",
                socket.display()
            ));
            Handover::Answered {
                code: multinet_cni::FAILURE_EXIT_CODE,
                stdout: error_bytes(&err, error_version(stdin)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_comes_from_the_config() {
        let conf = br#"{"cniVersion":"1.0.0","type":"multinet","daemonSocket":"/run/multinet/multinet.sock"}"#;
        assert_eq!(
            daemon_socket(conf),
            Some(PathBuf::from("/run/multinet/multinet.sock"))
        );
        assert_eq!(daemon_socket(br#"{"type":"multinet"}"#), None);
        assert_eq!(daemon_socket(br#"{"daemonSocket":""}"#), None);
        assert_eq!(daemon_socket(b"not json"), None);
        assert_eq!(daemon_socket(br#"{"daemonSocket":7}"#), None);
    }

    #[test]
    fn no_listener_is_no_daemon_and_a_silent_daemon_is_try_again() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.sock");
        assert!(matches!(
            hand_over(&missing, &[], b"{}"),
            Handover::NoDaemon(_)
        ));
        // An environment the daemon would refuse is not handed over: the call runs here.
        let listener = std::os::unix::net::UnixListener::bind(dir.path().join("big.sock")).unwrap();
        let huge = vec![("X".to_string(), "v".repeat(wire::MAX_ENV_BYTES))];
        let Handover::NoDaemon(e) = hand_over(&dir.path().join("big.sock"), &huge, b"{}") else {
            panic!("an environment over the daemon's limit must run in the binary");
        };
        assert!(e.to_string().contains("environment"), "{e}");
        listener.set_nonblocking(true).unwrap();
        assert!(listener.accept().is_err(), "nothing was sent to the daemon");
        // A listener that accepts and closes without answering.
        let path = dir.path().join("mute.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let mute = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).unwrap();
            buf
        });
        let stdin = br#"{"cniVersion":"0.4.0"}"#;
        let Handover::Answered { code, stdout } = hand_over(&path, &[], stdin) else {
            panic!("a daemon that took the call must be an answer");
        };
        let got = mute.join().unwrap();
        assert_eq!(wire::decode_request(&got).unwrap().stdin, stdin.to_vec());
        assert_eq!(code, 1);
        let err: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
        assert_eq!(err["code"], 11, "{err}");
        assert_eq!(err["cniVersion"], "0.4.0");
        assert!(err["msg"].as_str().unwrap().contains("mute.sock"), "{err}");
    }
}
