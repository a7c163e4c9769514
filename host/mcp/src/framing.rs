//! The client's messages, checked one line at a time before rmcp sees
//! them, so every bad one gets the JSON-RPC answer the spec asks for
//! instead of silence (rmcp drops unparsable and oversized lines, and
//! answers a malformed request without `"id": null`):
//!
//! - a line over `max-message-bytes`: -32600, with the request's id when
//!   its first bytes show it, else `null`;
//! - invalid UTF-8 or JSON: -32700 with `id: null`;
//! - JSON that is no JSON-RPC message: -32600 with its id, or `null`;
//! - a known method with params that do not fit it (`tools/call` without
//!   params, `arguments` as an array): -32602, not rmcp's -32601.
//!
//! Answers are written to the client between rmcp's own lines, never
//! inside one.

// Subscribe and setLevel are deprecated by the 2026-07-28 protocol but are
// what handshake-era clients send; their params are checked all the same.
#![allow(deprecated)]

use rmcp::model::{
    CallToolRequest, ClientJsonRpcMessage, ClientRequest, CompleteRequest, GetPromptRequest,
    ReadResourceRequest, SetLevelRequest, SubscribeRequest, UnsubscribeRequest,
};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncWrite, AsyncWriteExt as _, BufReader};
use tokio::sync::mpsc;

/// How much of an oversized line is kept to find its id in.
const ID_WINDOW: usize = 4096;

/// Reads the client's lines from `reader`, passes the good ones to `rmcp`
/// and sends an error answer for each bad one on `answers`.
pub(crate) async fn check_input<R, W>(
    reader: R,
    mut rmcp: W,
    answers: mpsc::UnboundedSender<Vec<u8>>,
    max_bytes: usize,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = match read_bounded(&mut reader, &mut line, max_bytes).await {
            Ok(read) => read,
            Err(e) => {
                tracing::warn!("reading the MCP client: {e}");
                break;
            }
        };
        let answer = match read {
            Read::Eof => break,
            Read::Oversized(total) => {
                tracing::warn!(
                    bytes = total,
                    limit = max_bytes,
                    "a client message exceeded max-message-bytes; answered with an error"
                );
                Some(error(
                    id_in_prefix(&line),
                    -32600,
                    &format!(
                        "message of {total} bytes or more exceeds the gateway's limit of {max_bytes} \
                         bytes (`max-message-bytes` in [mcp])"
                    ),
                ))
            }
            Read::Line => check_line(&line),
        };
        match answer {
            Some(answer) => {
                if answers.send(answer).is_err() {
                    break;
                }
            }
            None => {
                // Task requests pass beside rmcp's model (see `tasks`).
                let marked = crate::tasks::wire::mark_request_line(&line);
                let line = marked.as_deref().unwrap_or(&line);
                if rmcp.write_all(line).await.is_err() || rmcp.flush().await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = rmcp.shutdown().await;
}

/// Writes rmcp's lines and the checker's answers to the client, whole
/// lines each, until rmcp's session ends.
pub(crate) async fn write_output<R, W>(
    rmcp: R,
    mut client: W,
    mut answers: mpsc::UnboundedReceiver<Vec<u8>>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut rmcp = BufReader::new(rmcp);
    // Kept across iterations: a read cut short by an answer resumes here.
    let mut line = Vec::new();
    let mut answers_open = true;
    loop {
        tokio::select! {
            read = rmcp.read_until(b'\n', &mut line) => {
                match read {
                    // The session is over.
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let out = std::mem::take(&mut line);
                        if client.write_all(&out).await.is_err() || client.flush().await.is_err() {
                            return;
                        }
                    }
                }
            }
            answer = answers.recv(), if answers_open => {
                let Some(mut answer) = answer else {
                    answers_open = false;
                    continue;
                };
                answer.push(b'\n');
                if client.write_all(&answer).await.is_err() || client.flush().await.is_err() {
                    return;
                }
            }
        }
    }
    let _ = client.flush().await;
}

enum Read {
    Line,
    /// The line was longer than the limit (at least this many bytes); its
    /// first bytes are kept.
    Oversized(usize),
    Eof,
}

/// Reads one line into `line` without holding more than `max` bytes of it.
async fn read_bounded<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Read> {
    let mut total = 0usize;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if total > max {
                Read::Oversized(total)
            } else {
                Read::Eof
            });
        }
        let newline = available.iter().position(|b| *b == b'\n');
        let take = newline.map_or(available.len(), |i| i + 1);
        let keep = if total + take > max {
            ID_WINDOW.saturating_sub(line.len()).min(take)
        } else {
            take
        };
        line.extend_from_slice(&available[..keep]);
        total += take;
        reader.consume(take);
        if newline.is_some() {
            return Ok(if total > max {
                Read::Oversized(total)
            } else {
                Read::Line
            });
        }
        if total > max && line.len() > ID_WINDOW {
            line.truncate(ID_WINDOW);
        }
    }
}

/// The answer to a bad line, or `None` to pass it on.
fn check_line(line: &[u8]) -> Option<Vec<u8>> {
    let text = line.strip_suffix(b"\n").unwrap_or(line);
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    if text.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let Ok(text) = std::str::from_utf8(text) else {
        return Some(error(Value::Null, -32700, "parse error: invalid UTF-8"));
    };
    // The common case, a message rmcp will take, costs one typed parse
    // (what rmcp itself does with these bytes), not a `Value`, a clone of
    // it and a typed parse of the clone: profiled, this check was a tenth
    // of the gateway's CPU per call. A line that does not parse so is
    // looked at again below, the slow way, to find the right answer.
    if let Ok(message) = serde_json::from_str::<ClientJsonRpcMessage>(text) {
        return match &message {
            ClientJsonRpcMessage::Request(r) => match &r.request {
                ClientRequest::CustomRequest(custom) => {
                    custom_params_error(&custom.method, text, &r.id)
                }
                _ => None,
            },
            _ => None,
        };
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return Some(error(Value::Null, -32700, &format!("parse error: {e}"))),
    };
    let id = match value.get("id") {
        Some(id @ (Value::String(_) | Value::Number(_))) => id.clone(),
        _ => Value::Null,
    };
    let message = match serde_json::from_value::<ClientJsonRpcMessage>(value.clone()) {
        Ok(m) => m,
        Err(e) => {
            // A method rmcp models, with params that do not fit: the
            // request is well-formed, its params are not.
            if !id.is_null()
                && let Some(why) = value
                    .get("method")
                    .and_then(Value::as_str)
                    .and_then(|m| params_error(m, &value))
            {
                return Some(error(id, -32602, &why));
            }
            return Some(error(id, -32600, &format!("invalid request: {e}")));
        }
    };
    if let ClientJsonRpcMessage::Request(r) = &message
        && let ClientRequest::CustomRequest(custom) = &r.request
        && let Some(why) = params_error(&custom.method, &value)
    {
        return Some(error(id, -32602, &why));
    }
    None
}

/// The answer to a request rmcp took as a custom method although it names
/// one rmcp models (its params do not fit that method's), if so.
fn custom_params_error(method: &str, text: &str, id: &rmcp::model::RequestId) -> Option<Vec<u8>> {
    let value: Value = serde_json::from_str(text).ok()?;
    let why = params_error(method, &value)?;
    let id = serde_json::to_value(id).unwrap_or(Value::Null);
    Some(error(id, -32602, &why))
}

/// Why a request to a method rmcp models does not fit it (rmcp takes such
/// a request as an unknown custom method and answers -32601).
fn params_error(method: &str, message: &Value) -> Option<String> {
    fn fits<T: serde::de::DeserializeOwned>(request: Value) -> Option<String> {
        serde_json::from_value::<T>(request)
            .err()
            .map(|e| e.to_string())
    }
    let request = json!({
        "method": method,
        "params": message.get("params").cloned().unwrap_or(Value::Null),
    });
    let why = match method {
        "tools/call" => fits::<CallToolRequest>(request),
        "resources/read" => fits::<ReadResourceRequest>(request),
        "resources/subscribe" => fits::<SubscribeRequest>(request),
        "resources/unsubscribe" => fits::<UnsubscribeRequest>(request),
        "prompts/get" => fits::<GetPromptRequest>(request),
        "completion/complete" => fits::<CompleteRequest>(request),
        "logging/setLevel" => fits::<SetLevelRequest>(request),
        _ => None,
    }?;
    Some(format!("invalid params for `{method}`: {why}"))
}

/// The `"id"` of a JSON-RPC message from its first bytes, if they show it.
fn id_in_prefix(prefix: &[u8]) -> Value {
    static ID: std::sync::LazyLock<regex::bytes::Regex> = std::sync::LazyLock::new(|| {
        regex::bytes::Regex::new(r#""id"\s*:\s*(-?\d+|"(?:[^"\\]|\\.)*")"#).expect("id pattern")
    });
    ID.captures(prefix)
        .and_then(|c| serde_json::from_slice(&c[1]).ok())
        .unwrap_or(Value::Null)
}

fn error(id: Value, code: i64, message: &str) -> Vec<u8> {
    let body = json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    serde_json::to_vec(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(line: &str) -> Option<Value> {
        check_line(line.as_bytes()).map(|a| serde_json::from_slice(&a).unwrap())
    }

    #[test]
    fn bad_lines_get_the_spec_answers() {
        let a = answer("{not json\n").unwrap();
        assert_eq!(
            (a["id"].clone(), a["error"]["code"].clone()),
            (Value::Null, json!(-32700))
        );
        let a: Value = serde_json::from_slice(&check_line(b"\xff\xfe\n").unwrap()).unwrap();
        assert_eq!(
            (a["id"].clone(), a["error"]["code"].clone()),
            (Value::Null, json!(-32700))
        );
        let a = answer(r#"{"jsonrpc":"2.0","id":3,"method":"tools/call"}"#).unwrap();
        assert_eq!(
            (a["id"].clone(), a["error"]["code"].clone()),
            (json!(3), json!(-32602))
        );
        // A string id comes back as the string, on either path.
        let a = answer(r#"{"jsonrpc":"2.0","id":"s","method":"tools/call"}"#).unwrap();
        assert_eq!(
            (a["id"].clone(), a["error"]["code"].clone()),
            (json!("s"), json!(-32602))
        );
        let a = answer(r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"x","arguments":[1]}}"#).unwrap();
        assert_eq!(a["error"]["code"], -32602, "{a}");
        let a = answer(r#"{"jsonrpc":"2.0","id":true}"#).unwrap();
        assert_eq!(
            (a["id"].clone(), a["error"]["code"].clone()),
            (Value::Null, json!(-32600))
        );
        assert!(
            answer(r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"x"}}"#)
                .is_none()
        );
        assert!(answer(r#"{"jsonrpc":"2.0","id":6,"method":"vendor/thing"}"#).is_none());
        assert_eq!(
            id_in_prefix(br#"{"jsonrpc":"2.0","id":"a\"b","method":"x","params":{"#),
            json!("a\"b")
        );
    }
}
