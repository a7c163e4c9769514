//! The core's metric families, exactly: each scenario runs under a
//! recorder local to the test (the `metrics` facade's own seam), then
//! reads every series it expects by name and labels. The same families the
//! `mender` command renders for Prometheus (tests/admin.rs); here without
//! an exporter, as an embedder would see them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::{Script, fail, runtime};
use mender::{CallError, CallSpec, ErrorKind, Failure, Reply, Runtime};
use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};

/// Every series recorded, by `name{label=value,…}` (labels sorted).
#[derive(Default)]
struct Recorded {
    counters: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    gauges: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    histograms: Mutex<BTreeMap<String, Arc<Samples>>>,
    described: Mutex<BTreeSet<String>>,
}

#[derive(Default)]
struct Samples(Mutex<Vec<f64>>);

impl HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().unwrap().push(value);
    }
}

fn series(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Recorder for Recorded {
    fn describe_counter(&self, key: KeyName, _: Option<Unit>, _: SharedString) {
        self.described
            .lock()
            .unwrap()
            .insert(key.as_str().to_owned());
    }
    fn describe_gauge(&self, key: KeyName, _: Option<Unit>, _: SharedString) {
        self.described
            .lock()
            .unwrap()
            .insert(key.as_str().to_owned());
    }
    fn describe_histogram(&self, key: KeyName, _: Option<Unit>, _: SharedString) {
        self.described
            .lock()
            .unwrap()
            .insert(key.as_str().to_owned());
    }
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut map = self.counters.lock().unwrap();
        Counter::from_arc(map.entry(series(key)).or_default().clone())
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let mut map = self.gauges.lock().unwrap();
        Gauge::from_arc(map.entry(series(key)).or_default().clone())
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let mut map = self.histograms.lock().unwrap();
        Histogram::from_arc(map.entry(series(key)).or_default().clone())
    }
}

impl Recorded {
    /// A counter's value (0 when never touched).
    fn counter(&self, series: &str) -> u64 {
        let map = self.counters.lock().unwrap();
        map.get(series).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    fn gauge(&self, series: &str) -> Option<f64> {
        let map = self.gauges.lock().unwrap();
        map.get(series)
            .map(|g| f64::from_bits(g.load(Ordering::Relaxed)))
    }

    /// How many values a histogram recorded.
    fn count(&self, series: &str) -> usize {
        let map = self.histograms.lock().unwrap();
        map.get(series).map_or(0, |h| h.0.lock().unwrap().len())
    }

    /// The sum over every counter of `family` whose series has `part`.
    fn sum(&self, family: &str, part: &str) -> u64 {
        let map = self.counters.lock().unwrap();
        map.iter()
            .filter(|(k, _)| k.starts_with(&format!("{family}{{")) && k.contains(part))
            .map(|(_, c)| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Every family name seen.
    fn families(&self) -> BTreeSet<String> {
        let names = |keys: Vec<String>| {
            keys.into_iter()
                .map(|k| k.split('{').next().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        };
        let mut all = BTreeSet::new();
        all.extend(names(
            self.counters.lock().unwrap().keys().cloned().collect(),
        ));
        all.extend(names(self.gauges.lock().unwrap().keys().cloned().collect()));
        all.extend(names(
            self.histograms.lock().unwrap().keys().cloned().collect(),
        ));
        all
    }
}

/// Runs `scenario` on a paused-clock runtime of this thread, under
/// `recorder`, then has the runtime record its scrape-time families.
fn under<F, Fut>(recorder: &Recorded, toml: &str, scenario: F) -> Runtime
where
    F: FnOnce(Runtime) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    on(&tokio, recorder, toml, scenario)
}

/// [`under`] on the given tokio runtime.
fn on<F, Fut>(
    tokio: &tokio::runtime::Runtime,
    recorder: &Recorded,
    toml: &str,
    scenario: F,
) -> Runtime
where
    F: FnOnce(Runtime) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    metrics::with_local_recorder(recorder, || {
        mender::describe_metrics();
        let rt = tokio.block_on(async { runtime(toml) });
        tokio.block_on(scenario(rt.clone()));
        rt.record_metrics();
        rt
    })
}

async fn call(rt: &Runtime, up: &Script) -> Result<Reply<String>, CallError<Failure>> {
    rt.call(CallSpec::new("api", "get").idempotent(true), |_| up.next())
        .await
}

/// Every family recorded has a description (`# HELP` in Prometheus).
fn all_described(recorded: &Recorded) {
    let described = recorded.described.lock().unwrap().clone();
    for family in recorded.families() {
        assert!(described.contains(&family), "{family} has no description");
    }
}

#[test]
fn retries_spent_and_refused_failures_attempts_and_hooks() {
    let m = Recorded::default();
    under(&m, common::RETRY_BUDGET, |rt| async move {
        let down = Script::failing(fail(ErrorKind::Connect), 1000);
        for _ in 0..10 {
            call(&rt, &down).await.unwrap_err();
        }
    });
    // Budget of 5: the first call retries 3 times, the second twice and
    // is refused its third; the other 8 are refused their first.
    assert_eq!(
        m.counter("mender_retry_budget_total{result=spent,service=api}"),
        5
    );
    assert_eq!(
        m.counter("mender_retry_budget_total{result=refused,service=api}"),
        9
    );
    assert_eq!(
        m.counter("mender_failures_total{kind=connect,service=api}"),
        10
    );
    assert_eq!(
        m.counter("mender_calls_total{outcome=failed,service=api}"),
        10
    );
    // 10 first attempts and 5 retries, all of which ran.
    assert_eq!(
        m.counter("mender_attempts_total{kind=connect,service=api}"),
        15
    );
    assert_eq!(m.count("mender_attempt_duration_seconds{service=api}"), 15);
    assert_eq!(m.count("mender_call_duration_seconds{service=api}"), 10);
    // One on-error hook call per failed attempt, each a decision.
    let hooks = m.count("mender_hook_duration_seconds{hook=on-error,plugin=backoff,service=api}");
    assert_eq!(hooks, 15);
    assert_eq!(
        m.sum("mender_decisions_total", "plugin=backoff") as usize,
        hooks
    );
    // The serving generation, and no reload yet.
    assert_eq!(m.gauge("mender_reload_generation{}"), Some(1.0));
    assert_eq!(m.counter("mender_reloads_total{result=applied}"), 0);
    all_described(&m);
}

#[test]
fn a_closed_circuit_leases_admissions() {
    let m = Recorded::default();
    let toml = r#"
[plugins.breaker]
bundled = "circuit-breaker"
[services.default]
strategies = ["breaker"]
"#;
    under(&m, toml, |rt| async move {
        let up = Script::default();
        for _ in 0..5 {
            call(&rt, &up).await.unwrap();
        }
    });
    // The first admission asks the breaker, which allows with a lease;
    // the lease admits the next four without a Wasm call.
    let breaker = "plugin=breaker,service=api";
    assert_eq!(
        m.counter(&format!("mender_leases_granted_total{{{breaker}}}")),
        1
    );
    assert_eq!(
        m.counter(&format!("mender_lease_admissions_total{{{breaker}}}")),
        4
    );
    assert_eq!(
        m.count(&format!(
            "mender_hook_duration_seconds{{hook=admit,{breaker}}}"
        )),
        1
    );
    assert_eq!(
        m.counter(&format!(
            "mender_decisions_total{{decision=allow,{breaker}}}"
        )),
        1
    );
    assert_eq!(m.count("mender_attempt_duration_seconds{service=api}"), 5);
    assert_eq!(m.counter("mender_calls_total{outcome=ok,service=api}"), 5);
    all_described(&m);
}

const HOSTILE: &str = r#"
[guardrails]
max-attempts = 1
[plugins.hostile]
path = "{guests}/hostile-strategy.wasm"
limits = { quarantine-after = 3, quarantine-window = "1m", quarantine-for = "30s" }
config = { attack = "panic", in = "on-error" }
[services.default]
strategies = ["hostile"]
"#;

#[test]
fn faults_quarantine_and_reloads() {
    let m = Recorded::default();
    under(&m, HOSTILE, |rt| async move {
        for _ in 0..5 {
            let script = Script::failing(fail(ErrorKind::Connect), 1);
            let _ = call(&rt, &script).await;
        }
        // A reload adding a plugin whose file is not there is refused
        // whole; the same config again is applied (generation 2).
        let same = HOSTILE.replace("{guests}", env!("MENDER_GUEST_DIR"));
        let parse = |text: &str| {
            mender::Config::parse(text, "reload.toml", std::path::Path::new("/"))
                .expect("the config itself parses")
        };
        let missing = same.replace(
            "strategies = [\"hostile\"]",
            "strategies = [\"hostile\", \"ghost\"]\n[plugins.ghost]\npath = \"/no/such/plugin.wasm\"",
        );
        assert!(rt.reload_with(parse(&missing)).await.is_err());
        assert!(rt.reload_with(parse(&same)).await.is_ok());
    });
    // Three calls fault in on-error, then the plugin is quarantined and
    // the last two calls skip both its hooks (as tests/sandbox.rs counts).
    assert_eq!(m.counter("mender_sandbox_faults_total{plugin=hostile}"), 3);
    assert_eq!(
        m.counter("mender_sandbox_quarantines_total{plugin=hostile}"),
        1
    );
    assert_eq!(m.counter("mender_sandbox_skipped_total{plugin=hostile}"), 4);
    assert_eq!(
        m.gauge("mender_sandbox_quarantined{plugin=hostile}"),
        Some(1.0)
    );
    // Every hook call and skip is timed, and each is a decision (`fault`
    // for the panics and the skips).
    let hooks = m.count("mender_hook_duration_seconds{hook=admit,plugin=hostile,service=api}")
        + m.count("mender_hook_duration_seconds{hook=on-error,plugin=hostile,service=api}");
    assert_eq!(hooks, 10);
    assert_eq!(
        m.counter("mender_decisions_total{decision=fault,plugin=hostile,service=api}"),
        7
    );
    assert_eq!(m.counter("mender_reloads_total{result=failed}"), 1);
    assert_eq!(m.counter("mender_reloads_total{result=applied}"), 1);
    assert_eq!(m.gauge("mender_reload_generation{}"), Some(2.0));
    all_described(&m);
}

/// A Redis that accepts connections and never answers (as in
/// tests/redis.rs): state falls back to local memory, one outage.
#[cfg(feature = "redis")]
#[test]
fn an_unreachable_redis_is_an_outage() {
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}/", hole.local_addr().unwrap());
    std::thread::spawn(move || {
        let held: Vec<_> = hole.incoming().collect();
        drop(held);
    });
    let toml = format!(
        "[plugins.breaker]\nbundled = \"circuit-breaker\"\n[services.default]\n\
         strategies = [\"breaker\"]\n[state]\nbackend = \"redis\"\nurl = \"{url}\"\ntimeout = \"30ms\"\n"
    );
    let m = Recorded::default();
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rt = on(&tokio, &m, &toml, |rt| async move {
        let up = Script::default();
        for _ in 0..5 {
            call(&rt, &up).await.unwrap();
        }
    });
    let status = rt.state_status();
    assert_eq!(status.len(), 1);
    let labels = format!("backend=redis,target={}", status[0].target);
    assert_eq!(
        m.gauge(&format!("mender_state_shared{{{labels}}}")),
        Some(0.0)
    );
    assert_eq!(
        m.counter(&format!("mender_state_outages_total{{{labels}}}")),
        1
    );
    let local = m.counter(&format!("mender_state_local_ops_total{{{labels}}}"));
    assert!(local > 0);
    assert_eq!(local, status[0].fallback_ops);
    all_described(&m);
}

#[test]
fn hedges_won_failed_and_cancelled() {
    let m = Recorded::default();
    let toml = r#"
[plugins.hedge]
bundled = "hedge"
config = { after = "50ms" }
[services.default]
strategies = ["hedge"]
"#;
    under(&m, toml, |rt| async move {
        // (first attempt, hedge at 50 ms): how long each takes, and
        // whether it answers.
        let races = [
            ((400, true), (10, true)),   // the hedge wins
            ((60, true), (100, true)),   // the first wins, the hedge is cancelled
            ((100, false), (10, false)), // both fail: the hedge first
        ];
        for ((ms1, ok1), (ms2, ok2)) in races {
            let spec = CallSpec::new("api", "get").idempotent(true);
            let _ = rt
                .call(spec, |a| async move {
                    let (ms, ok) = if a.number == 1 {
                        (ms1, ok1)
                    } else {
                        (ms2, ok2)
                    };
                    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                    if ok {
                        Ok(String::new())
                    } else {
                        Err(fail(ErrorKind::Connect))
                    }
                })
                .await;
        }
    });
    for outcome in ["won", "cancelled", "failed"] {
        assert_eq!(
            m.counter(&format!(
                "mender_hedges_total{{outcome={outcome},service=api}}"
            )),
            1,
            "{outcome}"
        );
    }
    // A race answered is an answered call, not a retried one.
    assert_eq!(m.counter("mender_calls_total{outcome=ok,service=api}"), 2);
    assert_eq!(
        m.counter("mender_calls_total{outcome=failed,service=api}"),
        1
    );
    // Both of the last race's failures are counted as attempts.
    assert_eq!(
        m.counter("mender_attempts_total{kind=connect,service=api}"),
        2
    );
    all_described(&m);
}

/// A retry a plugin sends to another upstream (`retry-on`) is told from
/// one on the same upstream: `decision=retry-on`.
#[test]
fn a_routed_retry_is_counted_as_retry_on() {
    let m = Recorded::default();
    let toml = r#"
[limits]
hook-timeout = "30s"
[plugins.echo]
path = "{guests}/echo-strategy.wasm"
[services.api]
strategies = ["echo"]
"#;
    under(&m, toml, |rt| async move {
        let spec = CallSpec::new("api", "get")
            .idempotent(true)
            .upstreams(["a", "b"])
            .tag("echo-route", "1");
        let first = std::sync::atomic::AtomicBool::new(true);
        let reply = rt
            .call(spec, |_| {
                let failing = first.swap(false, std::sync::atomic::Ordering::Relaxed);
                async move {
                    if failing {
                        Err(fail(ErrorKind::Connect))
                    } else {
                        Ok::<_, Failure>("answered".to_owned())
                    }
                }
            })
            .await;
        assert_eq!(reply.unwrap().value, "answered");
    });
    assert_eq!(
        m.counter("mender_decisions_total{decision=retry-on,plugin=echo,service=api}"),
        1
    );
    assert_eq!(
        m.counter("mender_decisions_total{decision=retry,plugin=echo,service=api}"),
        0
    );
}
