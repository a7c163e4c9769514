//! Tool definitions forwarded byte-faithfully. rmcp's typed `Tool` keeps
//! only the fields it models, so a field it does not know (2025-11-25's
//! `execution`, a vendor's extension) would vanish on the way through. The
//! gateway therefore taps each upstream's stdout for the raw JSON of every
//! tool it lists ([`TapReader`]), and swaps those raw definitions back into
//! the `tools/list` answers it writes to the client ([`RewriteWriter`]).
//! Everything else passes through untouched, but for the tasks
//! capability and the task answers of the 2025-11-25 revision, which rmcp
//! also cannot carry (see `tasks`).

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::tasks::wire;

/// What the gateway keeps of an upstream's own words, as raw JSON: its
/// tools as it last listed them, by name, and the `tasks` capability of
/// its `initialize` answer (rmcp's model has no field for it).
#[derive(Default)]
pub(crate) struct Originals {
    pub(crate) tools: Mutex<HashMap<String, Value>>,
    pub(crate) tasks_capability: Mutex<Option<Value>>,
    /// Its progress notifications as read, in order (`progress.rs`).
    pub(crate) progress: crate::progress::ProgressLedger,
}

pub(crate) type RawTools = Arc<Originals>;

/// Only lines that may carry a `tools/list` answer are parsed twice.
fn may_list_tools(line: &[u8]) -> bool {
    line.windows(8).any(|w| w == b"\"tools\":")
}

/// The `result.tools` array of a JSON-RPC response, if it has one.
fn listed_tools(message: &mut Value) -> Option<&mut Vec<Value>> {
    message.get("id")?;
    message.get_mut("result")?.get_mut("tools")?.as_array_mut()
}

/// Passes an upstream's stdout on a line at a time, recording the raw tool
/// definitions of each `tools/list` answer and the `tasks` capability of
/// its `initialize` answer, and wrapping its 2025-era task answers so that
/// rmcp keeps them whole (see `tasks::wire`). Every other line passes
/// unchanged.
pub(crate) struct TapReader<R> {
    inner: R,
    line: Vec<u8>,
    out: Vec<u8>,
    taken: usize,
    eof: bool,
    raw: RawTools,
}

impl<R> TapReader<R> {
    pub(crate) fn new(inner: R, raw: RawTools) -> Self {
        TapReader {
            inner,
            line: Vec::new(),
            out: Vec::new(),
            taken: 0,
            eof: false,
            raw,
        }
    }

    fn take_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        self.raw.progress.seen(&line);
        if may_list_tools(&line)
            && let Ok(mut message) = serde_json::from_slice::<Value>(&line)
            && let Some(tools) = listed_tools(&mut message)
        {
            let mut raw = self.raw.tools.lock().unwrap_or_else(|p| p.into_inner());
            for tool in tools.drain(..) {
                if let Some(name) = tool.get("name").and_then(Value::as_str).map(str::to_owned) {
                    raw.insert(name, tool);
                }
            }
        }
        if let Some(tasks) = wire::tasks_capability(&line) {
            *self
                .raw
                .tasks_capability
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(tasks);
        }
        match wire::wrap_answer_line(&line) {
            Some(wrapped) => self.out.extend_from_slice(&wrapped),
            None => self.out.extend_from_slice(&line),
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for TapReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if self.taken < self.out.len() {
                let n = buf.remaining().min(self.out.len() - self.taken);
                let from = self.taken;
                buf.put_slice(&self.out[from..from + n]);
                self.taken += n;
                if self.taken == self.out.len() {
                    self.out.clear();
                    self.taken = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if self.eof {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut self.inner).poll_read(cx, &mut read))?;
            let fresh = read.filled();
            if fresh.is_empty() {
                // An unterminated last line passes as it is.
                self.eof = true;
                let rest = std::mem::take(&mut self.line);
                self.out.extend_from_slice(&rest);
                continue;
            }
            for piece in fresh.split_inclusive(|b| *b == b'\n') {
                self.line.extend_from_slice(piece);
                if piece.ends_with(b"\n") {
                    self.take_line();
                }
            }
        }
    }
}

/// Finds the raw definition of a listed tool, by name.
pub(crate) type RawLookup = Arc<dyn Fn(&str) -> Option<Value> + Send + Sync>;

/// The `tasks` capability the gateway offers, if any upstream offers one.
pub(crate) type TasksLookup = Arc<dyn Fn() -> Option<Value> + Send + Sync>;

/// Writes the gateway's messages to the client, replacing each tool in a
/// `tools/list` answer by its upstream's raw definition, and adding the
/// upstreams' `tasks` capability to its `initialize` answer. Whole lines (one
/// JSON-RPC message each, as the stdio transport frames them) are
/// buffered until their newline.
pub(crate) struct RewriteWriter<W> {
    inner: W,
    line: Vec<u8>,
    out: Vec<u8>,
    written: usize,
    lookup: RawLookup,
    tasks: TasksLookup,
}

impl<W> RewriteWriter<W> {
    pub(crate) fn new(inner: W, lookup: RawLookup, tasks: TasksLookup) -> Self {
        RewriteWriter {
            inner,
            line: Vec::new(),
            out: Vec::new(),
            written: 0,
            lookup,
            tasks,
        }
    }

    fn take_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        if let Some(mut bytes) = restore(&line, &self.lookup) {
            bytes.push(b'\n');
            self.out.extend_from_slice(&bytes);
            return;
        }
        if let Some(tasks) = (self.tasks)()
            && let Some(mut offered) = wire::offer_tasks(&line, &tasks)
        {
            offered.push(b'\n');
            self.out.extend_from_slice(&offered);
            return;
        }
        self.out.extend_from_slice(&line);
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

        // But a 2025-era task answer is wrapped, so rmcp keeps it whole.
        let task = json!({"jsonrpc": "2.0", "id": 2, "result": {"taskId": "t", "status": "working", "ttl": 1}});
        let text = format!("{task}\n{{\"jsonrpc\":\"2.0\",\"method\":\"x\"}}");
        let mut tap = TapReader::new(text.as_bytes(), raw.clone());
        let mut through = String::new();
        tap.read_to_string(&mut through).await.unwrap();
        let mut lines = through.lines();
        let wrapped: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(
            wire::unwrap_answer(wrapped["result"].clone()),
            task["result"]
        );
        assert_eq!(
            lines.next(),
            Some("{\"jsonrpc\":\"2.0\",\"method\":\"x\"}"),
            "an unterminated last line passes"
        );

        // The gateway's typed answer lost `execution`; the writer restores it.
        let typed = json!({"jsonrpc": "2.0", "id": 7, "result": {"tools": [
            {"name": "echo", "inputSchema": {"type": "object"}}
        ]}});
        let lookup: RawLookup = Arc::new(move |n| raw.tools.lock().unwrap().get(n).cloned());
        let mut out = Vec::new();
        let mut w = RewriteWriter::new(&mut out, lookup, Arc::new(|| None));
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
