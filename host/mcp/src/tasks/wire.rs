//! The byte-level half of forwarding tasks: the lines that must bypass
//! rmcp's typed model, found and marked before rmcp reads them.

use serde_json::Value;

/// Prefix the gateway puts before the method of a client request that must
/// reach it untyped. No MCP method starts with it, so rmcp hands such a
/// request to `on_custom_request` with its params as the client sent them.
pub(crate) const UNTYPED: &str = "mender.untyped/";

/// Key under which a 2025-era task answer from an upstream is wrapped so
/// that rmcp's untyped fallback (`CustomResult`) keeps it whole.
pub(crate) const WRAPPED: &str = "mender.untyped";

/// Whether a client request must bypass rmcp's model: every `tasks/*`
/// request, and a `tools/call` augmented with a `task`.
fn is_untyped_request(message: &Value) -> bool {
    if message.get("id").is_none() {
        return false;
    }
    match message.get("method").and_then(Value::as_str) {
        Some(m) if m.starts_with("tasks/") => true,
        Some("tools/call") => message
            .get("params")
            .and_then(|p| p.get("task"))
            .is_some_and(Value::is_object),
        _ => false,
    }
}

/// Marks a client request that must reach the gateway untyped (see
/// [`UNTYPED`]); `false` when the message is left as it is.
pub(crate) fn mark_request(message: &mut Value) -> bool {
    if !is_untyped_request(message) {
        return false;
    }
    let method = message["method"].as_str().unwrap_or_default();
    message["method"] = Value::String(format!("{UNTYPED}{method}"));
    true
}

/// [`mark_request`] on one newline-terminated line of a stdio client; the
/// line to pass on instead, if it changed.
pub(crate) fn mark_request_line(line: &[u8]) -> Option<Vec<u8>> {
    if !contains(line, b"\"task") {
        return None;
    }
    let mut message: Value = serde_json::from_slice(line).ok()?;
    if !mark_request(&mut message) {
        return None;
    }
    let mut out = serde_json::to_vec(&message).ok()?;
    out.push(b'\n');
    Some(out)
}

/// Whether an upstream's answer is a task as the 2025-11-25 revision
/// shapes it (a `CreateTaskResult`, a task, a task list: no `resultType`).
/// rmcp's 2026 model would read a bare task as its own `GetTaskResult`
/// and drop `ttl` and `pollInterval`.
fn is_2025_task_answer(result: &Value) -> bool {
    let Some(result) = result.as_object() else {
        return false;
    };
    !result.contains_key("resultType")
        && ["taskId", "task", "tasks"]
            .iter()
            .any(|k| result.contains_key(*k))
}

/// Wraps a 2025-era task answer in one line an upstream wrote under
/// [`WRAPPED`]; the line to pass on instead, if it changed.
pub(crate) fn wrap_answer_line(line: &[u8]) -> Option<Vec<u8>> {
    if !contains(line, b"\"task") {
        return None;
    }
    let mut message: Value = serde_json::from_slice(line).ok()?;
    message.get("id")?;
    let result = message.get_mut("result")?;
    if !is_2025_task_answer(result) {
        return None;
    }
    let answer = result.take();
    *result = serde_json::json!({ WRAPPED: answer });
    let mut out = serde_json::to_vec(&message).ok()?;
    out.push(b'\n');
    Some(out)
}

/// An answer as the upstream sent it: unwrapped if it was wrapped.
pub(crate) fn unwrap_answer(mut value: Value) -> Value {
    match value.get_mut(WRAPPED) {
        Some(inner) => inner.take(),
        None => value,
    }
}

/// The `capabilities.tasks` of an `initialize` answer an upstream wrote,
/// if the line is one.
pub(crate) fn tasks_capability(line: &[u8]) -> Option<Value> {
    if !contains(line, b"\"protocolVersion\"") || !contains(line, b"\"tasks\"") {
        return None;
    }
    let message: Value = serde_json::from_slice(line).ok()?;
    message.get("id")?;
    let result = message.get("result")?;
    result.get("protocolVersion")?;
    result.get("capabilities")?.get("tasks").cloned()
}

/// Adds `tasks` to the capabilities of the gateway's own `initialize`
/// answer in `message` (one JSON-RPC message, a trailing newline allowed);
/// the message to write instead, without a newline, if it is one.
pub(crate) fn offer_tasks(message: &[u8], tasks: &Value) -> Option<Vec<u8>> {
    if !contains(message, b"\"protocolVersion\"") || !contains(message, b"\"serverInfo\"") {
        return None;
    }
    let mut message: Value = serde_json::from_slice(message).ok()?;
    message.get("id")?;
    let caps = message
        .get_mut("result")?
        .get_mut("capabilities")?
        .as_object_mut()?;
    caps.insert("tasks".into(), tasks.clone());
    serde_json::to_vec(&message).ok()
}

/// [`mark_request`] on a POST body (one message or a batch); the body to
/// pass on instead, if it changed.
pub(crate) fn mark_body(body: &[u8]) -> Option<Vec<u8>> {
    if !contains(body, b"\"task") {
        return None;
    }
    let mut messages: Value = serde_json::from_slice(body).ok()?;
    let marked = match &mut messages {
        Value::Array(batch) => batch.iter_mut().fold(false, |m, r| mark_request(r) | m),
        one => mark_request(one),
    };
    marked.then(|| serde_json::to_vec(&messages).ok()).flatten()
}

/// Merges one upstream's `tasks` capability into `into`: an object key
/// any upstream offers is offered.
pub(crate) fn merge_capability(into: &mut Value, from: &Value) {
    match (into.as_object_mut(), from.as_object()) {
        (Some(into), Some(from)) => {
            for (k, v) in from {
                match into.get_mut(k) {
                    Some(existing) => merge_capability(existing, v),
                    None => {
                        into.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        _ => *into = from.clone(),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(v: Value) -> Vec<u8> {
        let mut l = serde_json::to_vec(&v).unwrap();
        l.push(b'\n');
        l
    }

    fn parsed(l: Option<Vec<u8>>) -> Value {
        serde_json::from_slice(&l.expect("changed")).unwrap()
    }

    #[test]
    fn task_requests_are_marked_and_others_are_not() {
        let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "research", "arguments": {}, "task": {"ttl": 60000}}});
        let marked = parsed(mark_request_line(&line(call.clone())));
        assert_eq!(marked["method"], "mender.untyped/tools/call");
        assert_eq!(marked["params"], call["params"]);
        let get =
            json!({"jsonrpc": "2.0", "id": 2, "method": "tasks/get", "params": {"taskId": "t"}});
        assert_eq!(
            parsed(mark_request_line(&line(get)))["method"],
            "mender.untyped/tasks/get"
        );
        // A plain call, a tool merely named "task", a notification: as they are.
        for other in [
            json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "task"}}),
            json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "x", "task": "no"}}),
            json!({"jsonrpc": "2.0", "method": "notifications/tasks/status", "params": {"taskId": "t"}}),
        ] {
            assert_eq!(mark_request_line(&line(other)), None);
        }
    }

    #[test]
    fn post_bodies_are_marked_one_message_or_a_batch() {
        let get =
            json!({"jsonrpc": "2.0", "id": 2, "method": "tasks/get", "params": {"taskId": "t"}});
        let ping = json!({"jsonrpc": "2.0", "id": 3, "method": "ping"});
        let one: Value = serde_json::from_slice(&mark_body(&line(get.clone())).unwrap()).unwrap();
        assert_eq!(one["method"], "mender.untyped/tasks/get");
        let batch: Value =
            serde_json::from_slice(&mark_body(&line(json!([ping.clone(), get]))).unwrap()).unwrap();
        assert_eq!(batch[0], ping);
        assert_eq!(batch[1]["method"], "mender.untyped/tasks/get");
        assert_eq!(mark_body(&line(ping)), None);
    }

    #[test]
    fn task_answers_of_2025_are_wrapped_and_unwrap_whole() {
        let task = json!({"taskId": "t1", "status": "working", "createdAt": "2026-01-01T00:00:00Z",
            "lastUpdatedAt": "2026-01-01T00:00:00Z", "ttl": 60000, "pollInterval": 1000});
        for result in [
            task.clone(),
            json!({"task": task}),
            json!({"tasks": [task]}),
        ] {
            let wrapped = parsed(wrap_answer_line(&line(
                json!({"jsonrpc": "2.0", "id": 9, "result": result}),
            )));
            assert_eq!(wrapped["id"], 9);
            assert_eq!(unwrap_answer(wrapped["result"].clone()), result);
        }
        // 2026 answers (they carry resultType), tool results, requests: untouched.
        for other in [
            json!({"jsonrpc": "2.0", "id": 1, "result": {"resultType": "complete", "taskId": "t"}}),
            json!({"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": "\"task\""}]}}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "x", "params": {"taskId": "t"}}),
        ] {
            assert_eq!(wrap_answer_line(&line(other)), None);
        }
        assert_eq!(unwrap_answer(json!({"a": 1})), json!({"a": 1}));
    }

    #[test]
    fn the_tasks_capability_is_read_from_upstreams_and_offered_merged() {
        let init = json!({"jsonrpc": "2.0", "id": 0, "result": {"protocolVersion": "2025-11-25",
            "capabilities": {"tools": {}, "tasks": {"list": {}, "requests": {"tools": {"call": {}}}}},
            "serverInfo": {"name": "s", "version": "1"}}});
        let mut offered = tasks_capability(&line(init.clone())).unwrap();
        merge_capability(
            &mut offered,
            &json!({"cancel": {}, "requests": {"sampling": {}}}),
        );
        assert_eq!(
            offered,
            json!({"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}, "sampling": {}}})
        );
        let ours = json!({"jsonrpc": "2.0", "id": 0, "result": {"protocolVersion": "2025-11-25",
            "capabilities": {"tools": {}}, "serverInfo": {"name": "mender", "version": "1"}}});
        let out: Value =
            serde_json::from_slice(&offer_tasks(&line(ours), &offered).unwrap()).unwrap();
        assert_eq!(out["result"]["capabilities"]["tasks"], offered);
        assert_eq!(out["result"]["capabilities"]["tools"], json!({}));
        let no_tasks = json!({"jsonrpc": "2.0", "id": 0, "result": {"protocolVersion": "x", "capabilities": {}}});
        assert_eq!(tasks_capability(&line(no_tasks)), None);
    }
}
