//! Tasks as the 2025-11-25 revision defines them (a `tools/call` with a
//! `task`, then `tasks/get`, `tasks/result`, `tasks/list`, `tasks/cancel`
//! and `notifications/tasks/status`), forwarded as the client and the
//! server sent them.
//!
//! rmcp 3.9 models only the 2026 tasks extension (SEP-2663): its
//! `tools/call` params have no `task`, its task answer has `ttlMs` where
//! 2025 has `ttl`, and it knows no `tasks/result` or `tasks/list`. So these
//! messages pass beside its typed model, on both sides ([`wire`]): the
//! client's are renamed before rmcp reads them and reach
//! [`Gateway::forward_untyped`] with their params untouched; an upstream's
//! task answers are wrapped so rmcp keeps them whole.
//!
//! The gateway remembers which upstream created each task, for which
//! client: every later request about it goes there, and only that client
//! may ask. A task-augmented call is sent once and never retried: it
//! creates work the server keeps, and a second attempt would create a
//! second task.

pub(crate) mod wire;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use rmcp::RoleServer;
use rmcp::model::{
    ClientRequest, CustomRequest, CustomResult, ErrorCode, ErrorData, ProtocolVersion, ServerResult,
};
use rmcp::service::RequestContext;
use serde_json::{Map, Value, json};

use crate::client::Caller;
use crate::gateway::{Gateway, as_rpc_error};
use crate::upstream::Upstream;

/// Tasks remembered at most; the oldest is forgotten first (a task
/// outlives its `ttl` upstream anyway).
const REMEMBERED: usize = 10_000;

/// Where a task lives: the upstream process that created it (its
/// `Upstream::key`: a server's replica or per-client process), for which
/// client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) server: String,
    pub(crate) session: u64,
}

/// Every task created through the gateway, by task id.
#[derive(Default)]
pub(crate) struct Routes(Mutex<(HashMap<String, Route>, VecDeque<String>)>);

impl Routes {
    pub(crate) fn insert(&self, task: &str, route: Route) {
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (routes, order) = &mut *guard;
        if routes.insert(task.to_owned(), route).is_none() {
            order.push_back(task.to_owned());
        }
        while order.len() > REMEMBERED {
            if let Some(oldest) = order.pop_front() {
                routes.remove(&oldest);
            }
        }
    }

    pub(crate) fn get(&self, task: &str) -> Option<Route> {
        let guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        guard.0.get(task).cloned()
    }
}

fn invalid(message: String) -> ErrorData {
    ErrorData::invalid_params(message, None)
}

impl Gateway {
    /// Answers a client request rmcp does not model: the task requests of
    /// 2025-11-25 (see the module's doc); any other is unknown, as before.
    pub(crate) async fn forward_untyped(
        &self,
        request: CustomRequest,
        context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, ErrorData> {
        let method = request
            .method
            .strip_prefix(wire::UNTYPED)
            .unwrap_or(&request.method);
        if method != "tools/call" && !method.starts_with("tasks/") {
            return Err(ErrorData::new(
                ErrorCode::METHOD_NOT_FOUND,
                method.to_owned(),
                None,
            ));
        }
        self.enter(&context, None).await?;
        let params = match request.params {
            Some(Value::Object(p)) => p,
            None | Some(Value::Null) => Map::new(),
            Some(_) => return Err(invalid(format!("{method}: params must be an object"))),
        };
        // What rmcp does for typed results: a client of the handshake era
        // gets them without 2026's `resultType: "complete"`.
        let legacy = context
            .protocol_version()
            .is_none_or(|v| v.as_str() < ProtocolVersion::V_2026_07_28.as_str());
        let caller = Caller {
            session: self.session,
            request: context.id.clone(),
            progress: context.meta.get_progress_token(),
        };
        let to = To {
            caller: &caller,
            legacy,
        };
        let answer = match method {
            "tools/call" => self.create_task(params, &to).await?,
            "tasks/list" => self.list_tasks(params, &to).await?,
            _ => {
                let id = params
                    .get("taskId")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let up = self.task_owner(id).ok_or_else(|| {
                    invalid(format!(
                        "{method}: no task `{id}` was created by this client"
                    ))
                })?;
                send(&up, method, params, &to).await?
            }
        };
        Ok(CustomResult::new(answer))
    }

    /// The `tasks` capability the gateway offers a handshake-era client:
    /// what its upstreams offered, merged; `None` when none did.
    pub(crate) fn tasks_capability(&self) -> Option<Value> {
        let mut offered: Option<Value> = None;
        for up in self.upstreams.iter() {
            let caps = up
                .lister()
                .originals
                .tasks_capability
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(caps) = caps.as_ref() {
                match &mut offered {
                    Some(o) => wire::merge_capability(o, caps),
                    None => offered = Some(caps.clone()),
                }
            }
        }
        offered
    }

    /// The process holding task `id`, if this client created it: a task
    /// lives in the replica that created it.
    fn task_owner(&self, id: &str) -> Option<Arc<Upstream>> {
        let route = self.hub.tasks.get(id)?;
        if route.session != self.session {
            return None;
        }
        self.processes().find(|u| u.key() == route.server)
    }

    /// Every process of the upstreams: each server's replicas in turn.
    fn processes(&self) -> impl Iterator<Item = Arc<Upstream>> + '_ {
        self.upstreams.iter().flat_map(|u| u.replica_set())
    }

    async fn create_task(
        &self,
        mut params: Map<String, Value>,
        to: &To<'_>,
    ) -> Result<Value, ErrorData> {
        let name = params
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let (up, _) = self
            .owner(|c| c.tools.iter().any(|t| t.name == name))
            .ok_or_else(|| invalid(format!("no connected MCP server offers tool `{name}`")))?;
        let own = up.own_tool_name(&name).unwrap_or(&name).to_owned();
        // Sent once, to the replica whose turn it is; the task's later
        // requests follow it there.
        let up = crate::failover::target(up, &[], &own).clone();
        up.attempts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        params.insert("name".into(), own.into());
        let answer = send(&up, "tools/call", params, to).await?;
        if let Some(id) = answer.pointer("/task/taskId").and_then(Value::as_str) {
            let route = Route {
                server: up.key(),
                session: self.session,
            };
            self.hub.tasks.insert(id, route);
        }
        Ok(answer)
    }

    /// One page of this client's tasks: each upstream that lists tasks
    /// answers its own pages in turn, under a cursor that names it
    /// (`INDEX:ITS_CURSOR`).
    async fn list_tasks(
        &self,
        mut params: Map<String, Value>,
        to: &To<'_>,
    ) -> Result<Value, ErrorData> {
        let listing: Vec<Arc<Upstream>> = self
            .processes()
            .filter(|u| {
                let caps = u
                    .originals
                    .tasks_capability
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                caps.as_ref().is_some_and(|c| c.get("list").is_some())
            })
            .collect();
        let (index, cursor) = match params.remove("cursor") {
            None | Some(Value::Null) => (0, None),
            Some(Value::String(c)) => {
                let (i, rest) = c
                    .split_once(':')
                    .ok_or_else(|| invalid(format!("tasks/list: unknown cursor `{c}`")))?;
                let i: usize = i
                    .parse()
                    .map_err(|_| invalid(format!("tasks/list: unknown cursor `{c}`")))?;
                (i, (!rest.is_empty()).then(|| rest.to_owned()))
            }
            Some(other) => {
                return Err(invalid(format!(
                    "tasks/list: cursor must be a string, not {other}"
                )));
            }
        };
        let Some(up) = listing.get(index) else {
            return Ok(json!({ "tasks": [] }));
        };
        if let Some(cursor) = cursor {
            params.insert("cursor".into(), cursor.into());
        }
        let mut answer = send(up, "tasks/list", params, to).await?;
        let mine = |task: &Value| {
            task.get("taskId")
                .and_then(Value::as_str)
                .and_then(|id| self.hub.tasks.get(id))
                .is_some_and(|r| r.session == self.session && r.server == up.key())
        };
        if let Some(tasks) = answer.get_mut("tasks").and_then(Value::as_array_mut) {
            tasks.retain(mine);
        }
        let next = match answer.get("nextCursor").and_then(Value::as_str) {
            Some(c) => Some(format!("{index}:{c}")),
            None => (index + 1 < listing.len()).then(|| format!("{}:", index + 1)),
        };
        if let Some(obj) = answer.as_object_mut() {
            match next {
                Some(next) => obj.insert("nextCursor".into(), next.into()),
                None => obj.remove("nextCursor"),
            };
        }
        Ok(answer)
    }
}

/// Whom an untyped request is forwarded for.
struct To<'a> {
    caller: &'a Caller,
    /// The client speaks the handshake era (no `resultType`).
    legacy: bool,
}

/// Sends `method` to `up` with `params` as they are, and returns its answer
/// as it sent it, redacted as its results are.
async fn send(
    up: &Arc<Upstream>,
    method: &str,
    params: Map<String, Value>,
    to: &To<'_>,
) -> Result<Value, ErrorData> {
    let request = ClientRequest::CustomRequest(CustomRequest::new(
        method.to_owned(),
        Some(Value::Object(params)),
    ));
    let mut answer: ServerResult = up
        .request(request, up.spec.call_timeout, Some(to.caller))
        .await
        .map_err(|e| as_rpc_error(up, e))?;
    if to.legacy {
        answer.strip_result_type_for_legacy_peer();
    }
    let answer = serde_json::to_value(&answer)
        .map_err(|e| ErrorData::internal_error(format!("{method}: {e}"), None))?;
    let answer = wire::unwrap_answer(answer);
    Ok(crate::scrub::result(
        &up.rt,
        &up.secrets.get(),
        up.spec.redact_results,
        answer,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_remember_the_newest_tasks_only() {
        let routes = Routes::default();
        let route = |session| Route {
            server: "s".into(),
            session,
        };
        for i in 0..=REMEMBERED {
            routes.insert(&format!("t{i}"), route(1));
        }
        assert_eq!(routes.get("t0"), None, "the oldest is forgotten");
        assert_eq!(routes.get(&format!("t{REMEMBERED}")), Some(route(1)));
        routes.insert("t1", route(2));
        assert_eq!(routes.get("t1"), Some(route(2)));
    }
}
