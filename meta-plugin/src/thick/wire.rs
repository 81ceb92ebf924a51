//! The frames between the binary and the daemon, one exchange per connection:
//! request `MNT1`, u32 length of the env JSON, env JSON (`[[name, value], ...]`), stdin bytes to
//! EOF; response u32 exit code, stdout bytes to EOF. Either side closes its write half when done.

use multinet_cni::MAX_STDIN_BYTES;

/// First bytes of every request: a stray client is told apart from a caller of this protocol.
pub const MAGIC: &[u8; 4] = b"MNT1";
/// The magic and the env JSON's length.
pub const HEADER_LEN: usize = 8;
/// Largest env JSON the daemon takes. The kernel's default limit for a process's arguments and
/// environment together is 2 MiB, and JSON escaping of ordinary text at most doubles it; the
/// binary runs a call with a larger environment itself rather than hand it over.
pub const MAX_ENV_BYTES: usize = 4 << 20;
/// Largest request the daemon reads: any stdin the binary accepts (up to
/// [`MAX_STDIN_BYTES`]) with any environment up to [`MAX_ENV_BYTES`].
pub const MAX_REQUEST: usize = HEADER_LEN + MAX_ENV_BYTES + MAX_STDIN_BYTES;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("not a multinet request (bad magic)")]
    Magic,
    #[error("request truncated")]
    Truncated,
    #[error("environment of {0} bytes is over the limit of {MAX_ENV_BYTES} bytes")]
    EnvTooLarge(usize),
    #[error("environment is not a JSON list of [name, value] pairs: {0}")]
    Env(String),
    /// Answered as thin mode answers it (see [`multinet_cni::check_stdin_size`]).
    #[error("stdin of more than {MAX_STDIN_BYTES} bytes")]
    StdinTooLarge,
}

/// One CNI call as the runtime made it: the process environment and stdin.
#[derive(Debug, PartialEq, Eq)]
pub struct Call {
    pub vars: Vec<(String, String)>,
    pub stdin: Vec<u8>,
}

/// The env JSON of a request: what the binary sends, and what [`MAX_ENV_BYTES`] bounds.
pub fn encode_env(vars: &[(String, String)]) -> Vec<u8> {
    let env: Vec<[&str; 2]> = vars.iter().map(|(k, v)| [k.as_str(), v.as_str()]).collect();
    // A list of string pairs always serializes.
    serde_json::to_vec(&env).unwrap_or_default()
}

pub fn encode_request(vars: &[(String, String)], stdin: &[u8]) -> Vec<u8> {
    let env = encode_env(vars);
    let mut frame = Vec::with_capacity(HEADER_LEN + env.len() + stdin.len());
    frame.extend_from_slice(MAGIC);
    frame.extend_from_slice(&(env.len() as u32).to_be_bytes());
    frame.extend_from_slice(&env);
    frame.extend_from_slice(stdin);
    frame
}

/// The env JSON's length from a request's first [`HEADER_LEN`] bytes (fewer: truncated).
pub fn decode_header(head: &[u8]) -> Result<usize, WireError> {
    if !head.starts_with(&MAGIC[..head.len().min(MAGIC.len())]) {
        return Err(WireError::Magic);
    }
    let Some(len) = head.get(4..HEADER_LEN) else {
        return Err(WireError::Truncated);
    };
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if len > MAX_ENV_BYTES {
        return Err(WireError::EnvTooLarge(len));
    }
    Ok(len)
}

pub fn decode_env(env: &[u8]) -> Result<Vec<(String, String)>, WireError> {
    serde_json::from_slice(env).map_err(|e| WireError::Env(e.to_string()))
}

/// A whole request frame; the daemon reads one piece by piece with the same checks.
pub fn decode_request(frame: &[u8]) -> Result<Call, WireError> {
    let len = decode_header(frame.get(..HEADER_LEN).unwrap_or(frame))?;
    let rest = &frame[HEADER_LEN..];
    let env = rest.get(..len).ok_or(WireError::Truncated)?;
    let vars = decode_env(env)?;
    let stdin = &rest[len..];
    if stdin.len() > MAX_STDIN_BYTES {
        return Err(WireError::StdinTooLarge);
    }
    Ok(Call {
        vars,
        stdin: stdin.to_vec(),
    })
}

pub fn encode_response(code: i32, stdout: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(4 + stdout.len());
    frame.extend_from_slice(&code.to_be_bytes());
    frame.extend_from_slice(stdout);
    frame
}

/// The exit code and stdout of a response frame; `None` when the daemon closed before answering.
pub fn decode_response(frame: &[u8]) -> Option<(i32, Vec<u8>)> {
    let code = i32::from_be_bytes(frame.get(..4)?.try_into().ok()?);
    Some((code, frame[4..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vec<(String, String)> {
        vec![
            ("CNI_COMMAND".into(), "ADD".into()),
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("ODD".into(), "quote \" and newline \n".into()),
        ]
    }

    #[test]
    fn request_round_trips() {
        let stdin = br#"{"cniVersion":"1.0.0","name":"n"}"#;
        let frame = encode_request(&vars(), stdin);
        let call = Call {
            vars: vars(),
            stdin: stdin.to_vec(),
        };
        assert_eq!(decode_request(&frame), Ok(call));
        let empty = encode_request(&[], b"");
        let none = Call {
            vars: vec![],
            stdin: vec![],
        };
        assert_eq!(decode_request(&empty), Ok(none));
    }

    #[test]
    fn bad_requests_are_named() {
        let frame = encode_request(&vars(), b"{}");
        assert_eq!(decode_request(b"GET / HTTP/1.1\r\n"), Err(WireError::Magic));
        assert_eq!(decode_request(b"MNT"), Err(WireError::Truncated));
        assert_eq!(decode_request(&frame[..12]), Err(WireError::Truncated));
        let mut bad_env = b"MNT1\0\0\0\x02{}".to_vec();
        bad_env.extend_from_slice(b"stdin");
        assert!(matches!(decode_request(&bad_env), Err(WireError::Env(_))));
        let mut huge_env = b"MNT1".to_vec();
        huge_env.extend_from_slice(&(MAX_ENV_BYTES as u32 + 1).to_be_bytes());
        assert_eq!(
            decode_request(&huge_env),
            Err(WireError::EnvTooLarge(MAX_ENV_BYTES + 1))
        );
    }

    /// Any stdin thin mode takes fits in a request with the largest environment; one byte more
    /// is the stdin limit, whatever the environment.
    #[test]
    fn stdin_up_to_the_cni_limit_passes_and_one_byte_more_is_named() {
        let big_env = vec![("X".to_string(), "v".repeat(MAX_ENV_BYTES - 16))];
        assert!(encode_env(&big_env).len() <= MAX_ENV_BYTES);
        let at_limit = encode_request(&big_env, &vec![b' '; MAX_STDIN_BYTES]);
        assert!(at_limit.len() <= MAX_REQUEST);
        let call = decode_request(&at_limit).unwrap();
        assert_eq!(call.stdin.len(), MAX_STDIN_BYTES);
        assert_eq!(call.vars, big_env);
        let over = encode_request(&vars(), &vec![b' '; MAX_STDIN_BYTES + 1]);
        assert_eq!(decode_request(&over), Err(WireError::StdinTooLarge));
    }

    #[test]
    fn response_round_trips_and_an_empty_one_is_no_answer() {
        let frame = encode_response(1, b"{\"code\":11}");
        assert_eq!(
            decode_response(&frame),
            Some((1, b"{\"code\":11}".to_vec()))
        );
        assert_eq!(decode_response(&encode_response(0, b"")), Some((0, vec![])));
        assert_eq!(decode_response(b""), None);
        assert_eq!(decode_response(b"\0\0"), None);
    }
}
