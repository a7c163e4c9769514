//! Tool definitions forwarded byte-faithfully over the HTTP front, as
//! `raw_tools` does for stdio: rmcp's server transport writes the typed
//! `tools/list` answer (a JSON body, or a `data:` line of an SSE stream),
//! which lacks the fields rmcp does not model (2025-11-25's `execution`);
//! [`RawToolsBody`] swaps each upstream's raw definitions back in, and adds
//! the upstreams' `tasks` capability to `initialize` answers; task requests
//! are marked on the way in, as on stdio (see `tasks`).
//! Everything else passes through as it came, line by line.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use http_body::Frame;

use crate::raw_tools::{RawLookup, TasksLookup, restore};
use crate::tasks::wire;

/// What the HTTP front restores of the upstreams' own words.
#[derive(Clone)]
pub(crate) struct Originals {
    pub(crate) tools: RawLookup,
    /// The `tasks` capability to offer in `initialize` answers.
    pub(crate) tasks: TasksLookup,
    /// The front's request body limit (rmcp's `max_request_body_bytes`).
    pub(crate) max_body: usize,
}

/// A POST (what carries requests and their answers): its task requests
/// marked to reach the gateway untyped (see `tasks`), and its response
/// body rewritten; the length of either may change, so each gets its
/// own `Content-Length` or none.
pub(crate) async fn restore_raw_tools(
    State(originals): State<Originals>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, originals.max_body).await else {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is over the front's limit of {} bytes",
                originals.max_body
            ),
        )
            .into_response();
    };
    let body = match wire::mark_body(&body) {
        Some(marked) => {
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(marked.len()));
            Bytes::from(marked)
        }
        None => body,
    };
    let request = Request::from_parts(parts, Body::from(body));
    let (mut parts, body) = next.run(request).await.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::new(RawToolsBody::new(body, originals)))
}

/// A response body passed on line by line (a JSON body is one line
/// without its newline, ended by the end of the body; an SSE event is a
/// few lines), with each `tools/list` answer's tools restored.
pub(crate) struct RawToolsBody {
    inner: Body,
    /// The incomplete last line seen so far.
    line: Vec<u8>,
    originals: Originals,
}

impl RawToolsBody {
    pub(crate) fn new(inner: Body, originals: Originals) -> Self {
        RawToolsBody {
            inner,
            line: Vec::new(),
            originals,
        }
    }

    /// `line` as it should go out: an SSE `data:` field or a bare JSON
    /// message holding a `tools/list` answer is rewritten.
    fn rewrite(&self, line: &[u8], out: &mut Vec<u8>) {
        let end = line.len()
            - line
                .iter()
                .rev()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
        let (text, ending) = line.split_at(end);
        let (field, message) = match text.strip_prefix(b"data:") {
            Some(rest) => {
                let space = usize::from(rest.first() == Some(&b' '));
                text.split_at(5 + space)
            }
            None => (&b""[..], text),
        };
        let restored = restore(message, &self.originals.tools).or_else(|| {
            (self.originals.tasks)().and_then(|tasks| wire::offer_tasks(message, &tasks))
        });
        match restored {
            Some(restored) => {
                out.extend_from_slice(field);
                out.extend_from_slice(&restored);
                out.extend_from_slice(ending);
            }
            None => out.extend_from_slice(line),
        }
    }

    /// The complete lines buffered, rewritten; the rest stays buffered.
    fn complete_lines(&mut self) -> Vec<u8> {
        let Some(last) = self.line.iter().rposition(|b| *b == b'\n') else {
            return Vec::new();
        };
        let rest = self.line.split_off(last + 1);
        let lines = std::mem::replace(&mut self.line, rest);
        let mut out = Vec::with_capacity(lines.len());
        for line in lines.split_inclusive(|b| *b == b'\n') {
            self.rewrite(line, &mut out);
        }
        out
    }
}

impl HttpBody for RawToolsBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        loop {
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        this.line.extend_from_slice(&data);
                        let out = this.complete_lines();
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(out.into()))));
                        }
                    }
                    // Trailers: what is buffered goes first.
                    Err(frame) if this.line.is_empty() => return Poll::Ready(Some(Ok(frame))),
                    Err(_) => return Poll::Ready(Some(Ok(Frame::data(this.rest())))),
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None if this.line.is_empty() => return Poll::Ready(None),
                None => return Poll::Ready(Some(Ok(Frame::data(this.rest())))),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.line.is_empty() && self.inner.is_end_stream()
    }
}

impl RawToolsBody {
    /// The last, unfinished line (a JSON body), rewritten.
    fn rest(&mut self) -> Bytes {
        let line = std::mem::take(&mut self.line);
        let mut out = Vec::with_capacity(line.len());
        self.rewrite(&line, &mut out);
        out.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::sync::Arc;

    /// A body that arrives in the given chunks.
    struct Chunks(std::collections::VecDeque<&'static str>);

    impl HttpBody for Chunks {
        type Data = Bytes;
        type Error = axum::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
            Poll::Ready(
                self.get_mut()
                    .0
                    .pop_front()
                    .map(|c| Ok(Frame::data(Bytes::from(c)))),
            )
        }
    }

    async fn through(chunks: Vec<&'static str>) -> String {
        let raw = json!({"name": "echo", "inputSchema": {"type": "object"}, "execution": {"taskSupport": "forbidden"}});
        let lookup: RawLookup = Arc::new(move |n| (n == "echo").then(|| raw.clone()));
        let originals = Originals {
            tools: lookup,
            tasks: Arc::new(|| None),
            max_body: usize::MAX,
        };
        let body = RawToolsBody::new(Body::new(Chunks(chunks.into())), originals);
        let bytes = axum::body::to_bytes(Body::new(body), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_json_body_and_an_sse_stream_get_their_raw_tools_back() {
        let typed = r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"echo","inputSchema":{"type":"object"}}]}}"#;
        // A JSON body: one message, no newline, split anywhere.
        let out = through(vec![&typed[..20], &typed[20..]]).await;
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v["result"]["tools"][0]["execution"]["taskSupport"],
            "forbidden"
        );
        assert_eq!(v["id"], 3);

        // An SSE stream: a priming event, then the answer, split mid-line.
        let sse: &'static str =
            Box::leak(format!("id: 0\ndata: \n\nid: 1\ndata: {typed}\n\n").into_boxed_str());
        let out = through(vec![&sse[..30], &sse[30..]]).await;
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("id: 0"));
        assert_eq!(lines.next(), Some("data: "));
        assert_eq!(lines.next(), Some(""));
        assert_eq!(lines.next(), Some("id: 1"));
        let data = lines.next().unwrap().strip_prefix("data: ").unwrap();
        let v: Value = serde_json::from_str(data).unwrap();
        assert_eq!(
            v["result"]["tools"][0]["execution"]["taskSupport"],
            "forbidden"
        );
        assert_eq!(lines.next(), Some(""));

        // Anything else is left as it is.
        let other = "data: {\"jsonrpc\":\"2.0\",\"id\":4,\"result\":{}}\n\n";
        assert_eq!(through(vec![other]).await, other);
    }
}
