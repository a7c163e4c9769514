//! The live status page at `/` of the admin listener, and the JSON it
//! polls (`/api/activity`): upstreams, services' last minute, plugins and
//! the latest decisions.
//!
//! The page is one HTML file with its script inline (`status_page.html`),
//! compiled into the binary: no build step, no CDN, so it works offline
//! and on an air-gapped host. It polls rather than streams (SSE) because a
//! poll a second is cheap, survives a restarted gateway without a
//! reconnect dance, and is what a `--dump-dom` browser test can wait on.

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use mender::{PluginStatus, Runtime};

use super::Admin;

/// The page, as served.
const STATUS_PAGE: &str = include_str!("status_page.html");

/// The demo's runtime, published once it is built: the admin listener
/// starts before the demo (so a taken port fails at once) and learns of
/// the runtime afterwards.
static DEMO_RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// The demo's runtime, once published (its families are scraped too).
pub(super) fn demo_runtime() -> Option<&'static Runtime> {
    DEMO_RUNTIME.get()
}

/// Shows the demo's `runtime` on the status page.
pub(crate) fn show_demo_runtime(runtime: &Runtime) {
    let _ = DEMO_RUNTIME.set(runtime.clone());
}

/// `GET /`: the page.
pub(super) async fn page() -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Html(STATUS_PAGE)).into_response()
}

/// `GET /api/activity`: everything the page shows, in one read.
pub(super) async fn activity(State(admin): State<Arc<Admin>>) -> Response {
    let runtime = match &admin.gateway {
        Some(g) => Some(g.runtime()),
        None => DEMO_RUNTIME.get(),
    };
    let upstreams = admin
        .gateway
        .as_ref()
        .map(|g| serde_json::to_value(g.snapshot().upstreams).unwrap_or_default());
    let (services, decisions, plugins) = match runtime {
        Some(rt) => {
            let a = rt.activity();
            (
                serde_json::to_value(a.services).unwrap_or_default(),
                serde_json::to_value(a.decisions).unwrap_or_default(),
                rt.plugins().iter().map(plugin_json).collect::<Vec<_>>(),
            )
        }
        None => (
            serde_json::Value::Array(vec![]),
            serde_json::Value::Array(vec![]),
            vec![],
        ),
    };
    let body = serde_json::json!({
        "kind": if admin.gateway.is_some() { "gateway" } else { "demo" },
        "pid": std::process::id(),
        "upstreams": upstreams,
        "services": services,
        "plugins": plugins,
        "decisions": decisions,
    });
    super::json(axum::http::StatusCode::OK, &body)
}

fn plugin_json(p: &PluginStatus) -> serde_json::Value {
    serde_json::json!({
        "name": p.name,
        "world": p.world.to_string(),
        "generation": p.version,
        "sha256": p.sha256,
        "hook_calls": p.hook_calls,
        "faults": p.faults,
        "skipped": p.skipped,
        "quarantines": p.quarantines,
        "quarantined_for_ms": p.quarantined_for_ms,
        "reload_error": p.reload_error,
    })
}
