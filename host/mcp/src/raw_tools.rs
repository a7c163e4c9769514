//! Tool definitions forwarded byte-faithfully. rmcp's typed `Tool` keeps
//! only the fields it models, so a field it does not know (2025-11-25's
//! `execution`, a vendor's extension) would vanish on the way through. The
//! gateway therefore taps each upstream's stdout for the raw JSON of every
//! tool it lists ([`TapReader`]), and swaps those raw definitions back into
//! the `tools/list` answers it writes to the client ([`RewriteWriter`]).
//! Everything else passes through untouched.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// One upstream's tools as it last listed them, by name, as raw JSON.
pub(crate) type RawTools = Arc<Mutex<HashMap<String, Value>>>;

/// Only lines that may carry a `tools/list` answer are parsed twice.
fn may_list_tools(line: &[u8]) -> bool {
    line.windows(8).any(|w| w == b"\"tools\":")
}

/// The `result.tools` array of a JSON-RPC response, if it has one.
fn listed_tools(message: &mut Value) -> Option<&mut Vec<Value>> {
    message.get("id")?;
    message.get_mut("result")?.get_mut("tools")?.as_array_mut()
}

/// Passes an upstream's stdout through unchanged, recording the raw tool
/// definitions of each `tools/list` answer in it.
pub(crate) struct TapReader<R> {
    inner: R,
    line: Vec<u8>,
    raw: RawTools,
}

impl<R> TapReader<R> {
    pub(crate) fn new(inner: R, raw: RawTools) -> Self {
        TapReader {
            inner,
            line: Vec::new(),
            raw,
        }
    }

    fn inspect(&mut self, bytes: &[u8]) {
        for chunk in bytes.split_inclusive(|b| *b == b'\n') {
            self.line.extend_from_slice(chunk);
            if !chunk.ends_with(b"\n") {
                continue;
            }
            if may_list_tools(&self.line)
                && let Ok(mut message) = serde_json::from_slice::<Value>(&self.line)
                && let Some(tools) = listed_tools(&mut message)
            {
                let mut raw = self.raw.lock().unwrap_or_else(|p| p.into_inner());
                for tool in tools.drain(..) {
                    if let Some(name) = tool.get("name").and_then(Value::as_str).map(str::to_owned)
                    {
                        raw.insert(name, tool);
                    }
                }
            }
            self.line.clear();
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for TapReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let fresh = buf.filled()[before..].to_vec();
        self.inspect(&fresh);
        Poll::Ready(Ok(()))
    }
}

/// Finds the raw definition of a listed tool, by name.
pub(crate) type RawLookup = Arc<dyn Fn(&str) -> Option<Value> + Send + Sync>;

/// Writes the gateway's messages to the client, replacing each tool in a
/// `tools/list` answer by its upstream's raw definition. Whole lines (one
/// JSON-RPC message each, as the stdio transport frames them) are
/// buffered until their newline.
pub(crate) struct RewriteWriter<W> {
    inner: W,
    line: Vec<u8>,
    out: Vec<u8>,
    written: usize,
    lookup: RawLookup,
}

impl<W> RewriteWriter<W> {
    pub(crate) fn new(inner: W, lookup: RawLookup) -> Self {
        RewriteWriter {
            inner,
            line: Vec::new(),
            out: Vec::new(),
            written: 0,
            lookup,
        }
    }

    fn take_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        match restore(&line, &self.lookup) {
            Some(mut bytes) => {
                bytes.push(b'\n');
                self.out.extend_from_slice(&bytes);
            }
            None => self.out.extend_from_slice(&line),
        }
    }
}

/// `message` (one JSON-RPC message) with each tool of a `tools/list`
/// answer replaced by its upstream's raw definition; `None` when it is no
/// such answer (leave it as it is).
pub(crate) fn restore(message: &[u8], lookup: &RawLookup) -> Option<Vec<u8>> {
    if !may_list_tools(message) {
        return None;
    }
    let mut message = serde_json::from_slice::<Value>(message).ok()?;
    for tool in listed_tools(&mut message)? {
        let raw = tool
            .get("name")
            .and_then(Value::as_str)
            .and_then(|n| lookup(n));
        if let Some(raw) = raw {
            *tool = raw;
        }
    }
    serde_json::to_vec(&message).ok()
}

impl<W: AsyncWrite + Unpin> RewriteWriter<W> {
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.out.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.out.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for RewriteWriter<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // Earlier output first, so the buffer cannot grow without bound.
        ready!(self.poll_drain(cx))?;
        for chunk in buf.split_inclusive(|b| *b == b'\n') {
            self.line.extend_from_slice(chunk);
            if chunk.ends_with(b"\n") {
                self.take_line();
            }
        }
        // The bytes are ours now; what the writer cannot take yet goes out
        // on the next write or flush.
        if let Poll::Ready(Err(e)) = self.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn unknown_tool_fields_survive_the_round_trip() {
        let upstream = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": [
            {"name": "echo", "inputSchema": {"type": "object"}, "execution": {"taskSupport": "forbidden"}}
        ]}});
        let text = format!("{upstream}\n{{\"jsonrpc\":\"2.0\",\"method\":\"x\"}}\n");
        let raw = RawTools::default();
        let mut tap = TapReader::new(text.as_bytes(), raw.clone());
        let mut through = String::new();
        tap.read_to_string(&mut through).await.unwrap();
        assert_eq!(through, text, "the tap changes nothing");

        // The gateway's typed answer lost `execution`; the writer restores it.
        let typed = json!({"jsonrpc": "2.0", "id": 7, "result": {"tools": [
            {"name": "echo", "inputSchema": {"type": "object"}}
        ]}});
        let lookup: RawLookup = Arc::new(move |n| raw.lock().unwrap().get(n).cloned());
        let mut out = Vec::new();
        let mut w = RewriteWriter::new(&mut out, lookup);
        let line = format!("{typed}\n");
        // Split mid-message, as a framed writer may.
        w.write_all(&line.as_bytes()[..10]).await.unwrap();
        w.write_all(&line.as_bytes()[10..]).await.unwrap();
        w.write_all(b"{\"other\":1}\n").await.unwrap();
        w.flush().await.unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.lines();
        let first: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(
            first["result"]["tools"][0]["execution"]["taskSupport"],
            "forbidden"
        );
        assert_eq!(first["id"], 7);
        assert_eq!(lines.next(), Some("{\"other\":1}"));
    }
}
