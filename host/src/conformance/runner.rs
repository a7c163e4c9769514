//! Replays scenarios against a plugin through the host's own plugin
//! machinery: the same pool, sandbox limits, host interfaces, outcome
//! counters and leases a [`crate::Runtime`] uses, on a virtual clock and a
//! seeded random source.
//!
//! The component is compiled once per [`Subject`]; each scenario gets a new
//! instance pool (so `init` runs with that scenario's config), fresh state,
//! a clock at 0 and the file's seed, so a scenario's result does not depend
//! on the ones before it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use super::describe::describe_step;
use super::expect::{Observed, check};
use super::permits::Permits;
use super::report::{Divergence, Report, ScenarioResult};
use super::scenario::{CallSpec, EventSpec, Millis, Scenario, ScenarioFile, Step, Succeed};
use crate::config::Config;
use crate::failure::ErrorKind;
use crate::host::HostShared;
use crate::host::state::MemoryState;
use crate::pipeline::detail::DetailCursor;
use crate::pipeline::outcomes::{Cursor, LeaseCell, ServiceStats};
use crate::plugin::bindings::{Routed, Upstreams, wit};
use crate::plugin::cache::ArtifactCache;
use crate::plugin::current::RecentDetail;
use crate::plugin::host_api::HostState;
use crate::plugin::{self, LoadContext, Loaded, Sandbox, WorldKind};

/// Prefix that names a bundled plugin instead of a file.
const BUNDLED_PREFIX: &str = "bundled:";

/// A plugin under test, compiled once.
pub struct Subject {
    /// How the plugin is named in reports (its file stem or bundled name).
    pub name: String,
    /// The world it implements.
    pub world: WorldKind,
    /// `path = "…"` or `bundled = "…"`, as a plugin table has it.
    source: toml::Table,
    origin: String,
    engine: Engine,
    linker: Linker<HostState>,
    component: Component,
}

impl Subject {
    /// Compiles `plugin`: a `.wasm` component path, or `bundled:NAME` for a
    /// plugin compiled into this build.
    pub fn load(plugin: &str) -> Result<Subject, String> {
        let (name, (key, value), origin, bytes) =
            if let Some(name) = plugin.strip_prefix(BUNDLED_PREFIX) {
                let bytes = plugin::bundled::find(name).ok_or_else(|| {
                    format!(
                        "no bundled plugin `{name}` (bundled: {})",
                        plugin::bundled::names().collect::<Vec<_>>().join(", ")
                    )
                })?;
                (
                    name.to_owned(),
                    ("bundled", name.to_owned()),
                    format!("bundled `{name}`"),
                    bytes.to_vec(),
                )
            } else {
                let path = Path::new(plugin);
                let bytes = crate::plugin::read_component(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let name = path
                    .file_stem()
                    .map_or("plugin".into(), |s| s.to_string_lossy().into_owned());
                let abs = std::path::absolute(path).unwrap_or_else(|_| PathBuf::from(path));
                (
                    name,
                    ("path", abs.display().to_string()),
                    path.display().to_string(),
                    bytes,
                )
            };
        let Sandbox { engine, linker } =
            Sandbox::new().map_err(|e| format!("wasmtime engine: {e:#}"))?;
        // The host's compiled-plugin cache: a Python or JavaScript component
        // takes seconds to compile, and the same one is often checked again.
        let cache = ArtifactCache::new(ArtifactCache::default_root().as_deref(), &engine);
        let component = cache
            .get_or_compile(&engine, &crate::plugin::cache::sha256_hex(&bytes), || {
                plugin::compile(&engine, &bytes)
            })
            .map_err(|e| format!("{origin}: {e}"))?;
        let (world, _) =
            plugin::world_of(&engine, &component).map_err(|e| format!("{origin}: {e}"))?;
        let mut source = toml::Table::new();
        source.insert(key.into(), toml::Value::String(value));
        Ok(Subject {
            name,
            world,
            source,
            origin,
            engine,
            linker,
            component,
        })
    }

    /// Replays every scenario of `files`. `default_config` is the plugin's
    /// config for files and scenarios that set none (`{}` if `None`).
    pub fn run(&self, files: &[ScenarioFile], default_config: Option<&toml::Table>) -> Report {
        // A runtime of our own, on a thread of our own: the caller may be
        // inside a tokio runtime already (a test, an embedding agent), where
        // starting another would panic.
        let results = std::thread::scope(|s| {
            s.spawn(|| {
                let mut results = Vec::new();
                for file in files {
                    for scenario in &file.scenarios {
                        let config = scenario
                            .config
                            .as_ref()
                            .or(file.config.as_ref())
                            .or(default_config);
                        results.push(self.run_scenario(file, scenario, config));
                    }
                }
                results
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        });
        Report {
            plugin: self.name.clone(),
            results,
        }
    }

    fn run_scenario(
        &self,
        file: &ScenarioFile,
        scenario: &Scenario,
        config: Option<&toml::Table>,
    ) -> ScenarioResult {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a current-thread tokio runtime");
        let outcome = rt.block_on(async {
            let host = self.host(file.seed, scenario, config);
            let setup = |expected: String, got: &str, why: String| Divergence {
                step: 0,
                steps: scenario.steps.len(),
                repetition: None,
                input: "load and init".into(),
                at_ms: 0,
                expected,
                got: got.into(),
                why,
            };
            if let Some(text) = &scenario.init_error {
                let expected = format!("init refuses the config with {text:?}");
                return match host {
                    Err(why) if why.contains(text.as_str()) => Ok(0),
                    Err(why) => Err(setup(expected, "another error", why)),
                    Ok(_) => Err(setup(
                        expected,
                        "the plugin accepted it",
                        "init succeeded".into(),
                    )),
                };
            }
            let mut host = host.map_err(|why| {
                setup(
                    "the plugin loads and accepts its config".into(),
                    "an error",
                    why,
                )
            })?;
            for (index, step) in scenario.steps.iter().enumerate() {
                for repetition in 1..=step.repeat {
                    let at_ms = host.shared.now_ms();
                    let observed = host.step(step).await;
                    if let Err(why) = check(&step.expect, &observed) {
                        return Err(Divergence {
                            step: index + 1,
                            steps: scenario.steps.len(),
                            repetition: (step.repeat > 1).then_some((repetition, step.repeat)),
                            input: describe_step(step),
                            at_ms,
                            expected: step.expect.to_string(),
                            got: observed.to_string(),
                            why,
                        });
                    }
                }
            }
            Ok(scenario.steps.len())
        });
        ScenarioResult {
            file: file.path.clone(),
            name: scenario.name.clone(),
            outcome,
        }
    }

    /// A fresh host for one scenario: state, clock at 0, seeded random,
    /// and the plugin instantiated with the scenario's config.
    fn host(
        &self,
        seed: u64,
        scenario: &Scenario,
        config: Option<&toml::Table>,
    ) -> Result<Host, String> {
        let shared = Arc::new(HostShared::live(
            Arc::new(MemoryState::default()),
            Some(seed),
            false,
        ));
        // The plugin's table as mender.toml has it, built as a value so
        // that nested config tables serialise correctly.
        let mut table = self.source.clone();
        table.insert(
            "config".into(),
            toml::Value::Table(config.cloned().unwrap_or_default()),
        );
        let mut plugins = toml::Table::new();
        plugins.insert(self.name.clone(), toml::Value::Table(table));
        let mut root = toml::Table::new();
        root.insert("plugins".into(), toml::Value::Table(plugins));
        let plugin_table = toml::to_string(&root).map_err(|e| format!("config: {e}"))?;
        let spec = Config::parse(&plugin_table, "<conformance>", Path::new("."))
            .map_err(|e| format!("config: {e}"))?
            .plugins
            .remove(0);
        let cache = ArtifactCache::new(None, &self.engine);
        let cx = LoadContext {
            engine: &self.engine,
            linker: &self.linker,
            cache: &cache,
        };
        let loaded = plugin::link(&cx, &spec, &self.origin, &self.component)
            .and_then(|prepared| plugin::instantiate(&self.engine, &shared, &spec, &prepared))
            .map_err(|e| e.to_string())?;
        // As a pipeline does: 0.2's detail is counted when a plugin reads it.
        let stats = ServiceStats::default();
        if let Loaded::Strategy(p) = &loaded
            && p.contract >= crate::plugin::Contract::V0_2
        {
            stats.detail.enable();
        }
        let upstreams =
            (!scenario.upstreams.is_empty()).then(|| Arc::from(scenario.upstreams.clone()));
        Ok(Host {
            service: Arc::from(scenario.service.as_str()),
            upstreams,
            shared,
            loaded,
            stats,
            lease: LeaseCell::default(),
            cursor: Cursor::default(),
            detail: DetailCursor::default(),
            permits: Permits::default(),
        })
    }
}

/// One scenario's host: the plugin and the service's counters and lease,
/// as one strategy slot of a pipeline has them.
struct Host {
    service: Arc<str>,
    /// Routing: the scenario's `upstreams`, which every call names.
    upstreams: Option<Arc<[String]>>,
    shared: Arc<HostShared>,
    loaded: Loaded,
    stats: ServiceStats,
    lease: LeaseCell,
    cursor: Cursor,
    /// 0.2's detail of `recent`, as a pipeline slot takes it.
    detail: DetailCursor,
    /// The permits the plugin granted in this scenario.
    permits: Permits,
}

impl Host {
    async fn step(&mut self, step: &Step) -> Observed {
        if let Some(ms) = step.advance {
            tokio::time::advance(Duration::from_millis(ms.0)).await;
            return Observed::Nothing;
        }
        if let Some(n) = step.in_flight {
            self.stats.detail.set_in_flight(n);
        }
        if let Some(succeed) = &step.succeed {
            self.succeed(succeed, step.latency);
            return Observed::Nothing;
        }
        if let Some(kind) = step.fail {
            self.permits.outcome(None);
            self.count_failure(kind);
            return Observed::Nothing;
        }
        if let Some(spec) = &step.on_error {
            return self.on_error(spec);
        }
        if let Some(spec) = &step.admit {
            return self.admit(spec);
        }
        if let Some(spec) = &step.serve {
            return self.serve(spec);
        }
        unreachable!("ScenarioFile::parse checks that a step has one input")
    }

    /// Successes, counted as `CallState::succeed` counts them: the
    /// service's totals, the plugin's slow calls and its permit's success.
    fn succeed(&self, succeed: &Succeed, step_latency: Option<Millis>) {
        let (latency, permit) = match succeed {
            Succeed::Count(_) => (step_latency, None),
            Succeed::Described(d) => (d.latency.or(step_latency), d.permit.as_ref()),
        };
        let latency = latency.map_or(0, |l| l.0);
        let threshold = match &self.loaded {
            Loaded::Strategy(p) => p.slow_call_threshold,
            Loaded::Fallback(_) => None,
        };
        for i in 0..succeed.count() {
            self.stats.record_success(latency);
            if let Some(t) = threshold {
                self.detail.record_latency(latency, t);
            }
            if i == 0
                && let Some(p) = self.permits.outcome(permit)
            {
                self.detail.record_permitted_success(p);
            }
        }
    }

    /// 0.2's detail for a hook call of `p`, as `StrategySlot::take_detail`,
    /// with the scenario's upstreams and `used` (the step's `upstream`)
    /// as the call path sets them.
    fn take_detail(&self, p: &crate::plugin::StrategyPlugin, used: Option<u32>) -> RecentDetail {
        let mut detail = if p.contract >= crate::plugin::Contract::V0_2 {
            let shared = &self.shared;
            let mut detail =
                self.detail
                    .take(&self.stats.detail, shared.now_ms(), shared.origin_ms);
            detail.in_flight = self.stats.detail.in_flight();
            detail
        } else {
            RecentDetail::default()
        };
        detail.upstreams = Upstreams {
            names: self.upstreams.clone(),
            used: self.upstreams.as_ref().map(|_| used.unwrap_or(0)),
        };
        detail
    }

    /// What call.rs does with a failed attempt before asking strategies.
    fn count_failure(&self, kind: ErrorKind) {
        if kind.reached_upstream() {
            self.stats.record_failure(kind);
            self.lease.on_failure();
        }
    }

    fn event(&self, spec: &EventSpec) -> wit::ErrorEvent {
        wit::ErrorEvent {
            service: self.service.to_string(),
            operation: spec.operation.clone().unwrap_or_else(|| "op".into()),
            kind: spec.kind.into(),
            message: spec
                .message
                .clone()
                .unwrap_or_else(|| format!("simulated {}", spec.kind)),
            status: spec.status,
            retry_after: spec.retry_after.map(|m| m.0),
            attempt: spec.attempt.unwrap_or(1),
            elapsed: spec.elapsed.map_or(0, |m| m.0),
            deadline_left: spec.deadline_left.map(|m| m.0),
            idempotent: spec.idempotent.unwrap_or(true),
            tags: spec.tags.clone().into_iter().collect(),
        }
    }

    fn on_error(&self, spec: &EventSpec) -> Observed {
        let Loaded::Strategy(p) = &self.loaded else {
            return Observed::WrongWorld("on-error", "fallback handler");
        };
        self.count_failure(spec.kind);
        if !p.hooks.contains(wit::Hooks::ON_ERROR) {
            // The host never calls it: as good as `pass`.
            return Observed::Skipped("on-error");
        }
        let permit = self.permits.outcome(spec.permit.as_ref());
        let recent = self.cursor.take(&self.stats, &self.lease);
        let mut detail = self.take_detail(p, spec.upstream);
        detail.permit = permit;
        let answered = p
            .on_error(&self.service, &self.event(spec), &recent, &detail)
            .map_err(|fault| fault.reason)
            // A bad route is a fault, as in a live call.
            .and_then(|d| detail.upstreams.hold("the retry", d));
        match answered {
            Ok(d) => Observed::Decision(d.answer, d.upstream),
            Err(reason) => Observed::Fault(reason),
        }
    }

    fn admit(&self, spec: &CallSpec) -> Observed {
        let Loaded::Strategy(p) = &self.loaded else {
            return Observed::WrongWorld("admit", "fallback handler");
        };
        if !p.hooks.contains(wit::Hooks::ADMIT) {
            return Observed::Skipped("admit");
        }
        let now = self.shared.now_ms();
        if let Some(leased) = self.lease.try_admit(now) {
            return Observed::Leased(leased.upstream);
        }
        let call = wit::CallInfo {
            service: self.service.to_string(),
            operation: spec.operation.clone().unwrap_or_else(|| "op".into()),
            attempt: spec.attempt.unwrap_or(1),
            elapsed: spec.elapsed.map_or(0, |m| m.0),
            deadline_left: spec.deadline_left.map(|m| m.0),
            idempotent: spec.idempotent.unwrap_or(true),
            tags: spec.tags.clone().into_iter().collect(),
        };
        let recent = self.cursor.take(&self.stats, &self.lease);
        let detail = self.take_detail(p, spec.upstream);
        let answered = p
            .admit(&self.service, &call, &recent, &detail)
            .map_err(|fault| fault.reason)
            .and_then(|a| detail.upstreams.hold("the attempt", a));
        match answered {
            Ok(Routed { answer, upstream }) => {
                if let wit::Admission::Allow(grant) = &answer.admission {
                    self.lease.grant(grant, upstream, now);
                    self.permits.grant(answer.permit);
                }
                Observed::Admission(answer.admission, upstream, answer.permit)
            }
            Err(reason) => Observed::Fault(reason),
        }
    }

    fn serve(&self, spec: &EventSpec) -> Observed {
        let Loaded::Fallback(p) = &self.loaded else {
            return Observed::WrongWorld("serve", "strategy");
        };
        let recorded = spec.recorded.as_ref().map(|r| wit::RecordedResult {
            body: r.body.clone(),
            age: r.age.0,
        });
        match p.serve(&self.service, &self.event(spec), recorded.as_ref()) {
            Ok(answer) => Observed::Served(answer),
            Err(fault) => Observed::Fault(fault.reason),
        }
    }
}
