//! The frames between the binary and the daemon, one exchange per connection:
//! request `MNT1`, u32 length of the env JSON, env JSON (`[[name, value], ...]`), stdin bytes to
//! EOF; response u32 exit code, stdout bytes to EOF. Either side closes its write half when done.

/// First bytes of every request: a stray client is told apart from a caller of this protocol.
pub const MAGIC: &[u8; 4] = b"MNT1";
/// Largest request the daemon reads: CNI configs are kilobytes; this bounds a bad client.
pub const MAX_REQUEST: usize = 16 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("not a multinet request (bad magic)")]
    Magic,
    #[error("request truncated")]
    Truncated,
    #[error("request larger than {MAX_REQUEST} bytes")]
    TooLarge,
    #[error("environment is not a JSON list of [name, value] pairs: {0}")]
    Env(String),
}

/// One CNI call as the runtime made it: the process environment and stdin.
#[derive(Debug, PartialEq, Eq)]
pub struct Call {
    pub vars: Vec<(String, String)>,
    pub stdin: Vec<u8>,
}

pub fn encode_request(vars: &[(String, String)], stdin: &[u8]) -> Vec<u8> {
    let env: Vec<[&str; 2]> = vars.iter().map(|(k, v)| [k.as_str(), v.as_str()]).collect();
    // A list of string pairs always serializes.
    let env = serde_json::to_vec(&env).unwrap_or_default();
    let mut frame = Vec::with_capacity(8 + env.len() + stdin.len());
    frame.extend_from_slice(MAGIC);
    frame.extend_from_slice(&(env.len() as u32).to_be_bytes());
    frame.extend_from_slice(&env);
    frame.extend_from_slice(stdin);
    frame
}

pub fn decode_request(frame: &[u8]) -> Result<Call, WireError> {
    if frame.len() > MAX_REQUEST {
        return Err(WireError::TooLarge);
    }
    if frame.len() < 8 {
        return Err(if frame.starts_with(&MAGIC[..frame.len().min(4)]) {
            WireError::Truncated
        } else {
            WireError::Magic
        });
    }
    if &frame[..4] != MAGIC {
        return Err(WireError::Magic);
    }
    let len = u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]) as usize;
    let rest = &frame[8..];
    if len > rest.len() {
        return Err(WireError::Truncated);
    }
    let vars = serde_json::from_slice(&rest[..len]).map_err(|e| WireError::Env(e.to_string()))?;
    Ok(Call {
        vars,
        stdin: rest[len..].to_vec(),
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
        let huge = vec![0u8; MAX_REQUEST + 1];
        assert_eq!(decode_request(&huge), Err(WireError::TooLarge));
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
