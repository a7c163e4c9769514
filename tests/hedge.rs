//! Hedging end to end: the bundled `hedge` plugin and the host's race,
//! against a real upstream with a long tail (a local HTTP server on
//! 127.0.0.1), called through `Runtime::call` with reqwest.
//!
//! The upstream makes the first attempt of every fifth call slow (400 ms)
//! and everything else fast (5 ms). It decides by the call and attempt
//! numbers the client sends, so which requests are slow does not depend
//! on how the concurrent calls interleave. It counts requests per call,
//! and requests whose client went away before the answer.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mender::{CallSpec, ErrorKind, Failure, Reply, Runtime, Step};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The slow answer: the tail hedging should cut.
const SLOW: Duration = Duration::from_millis(400);
/// Everything else.
const FAST: Duration = Duration::from_millis(5);

/// What the upstream saw.
#[derive(Default)]
struct Seen {
    /// Requests per call number.
    requests: Mutex<HashMap<u32, u32>>,
    /// Requests whose connection closed before they were answered.
    abandoned: AtomicU32,
}

impl Seen {
    fn requests_of(&self, call: u32) -> u32 {
        self.requests
            .lock()
            .unwrap()
            .get(&call)
            .copied()
            .unwrap_or(0)
    }
    fn total(&self) -> u32 {
        self.requests.lock().unwrap().values().sum()
    }
}

/// Starts the upstream; it serves until the test's runtime ends.
async fn upstream() -> (SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let counts = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(serve(conn, counts.clone()));
        }
    });
    (addr, seen)
}

/// One keep-alive connection: `GET /CALL/ATTEMPT` answered after
/// [`SLOW`] or [`FAST`], unless the client closes it first.
async fn serve(mut conn: TcpStream, seen: Arc<Seen>) {
    let mut buf = Vec::new();
    loop {
        let head = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                buf.drain(..end + 4);
                break head;
            }
            let mut chunk = [0u8; 1024];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let path = head.split(' ').nth(1).unwrap_or("/");
        let mut numbers = path.trim_start_matches('/').split('/');
        let mut next = || numbers.next().and_then(|n| n.parse::<u32>().ok());
        let (call, attempt) = (next().unwrap_or(0), next().unwrap_or(0));
        *seen.requests.lock().unwrap().entry(call).or_default() += 1;
        let delay = if call % 5 == 0 && attempt == 1 {
            SLOW
        } else {
            FAST
        };
        // While answering, watch the connection: a client that drops the
        // request closes it (reqwest cannot reuse a connection mid-answer).
        let mut probe = [0u8; 1];
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = conn.read(&mut probe) => {
                seen.abandoned.fetch_add(1, SeqCst);
                return;
            }
        }
        let body = format!("call {call} attempt {attempt}");
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if conn.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// A runtime whose `api` service is hedged after 50 ms (or not at all).
fn runtime(hedged: bool, guardrails: &str) -> Runtime {
    let strategies = if hedged { r#"["hedge"]"# } else { "[]" };
    common::runtime(&format!(
        r#"
[guardrails]
{guardrails}
[plugins.hedge]
bundled = "hedge"
config = {{ after = "50ms", max = 1 }}
[services.api]
strategies = {strategies}
"#
    ))
}

/// Counts attempt futures dropped before they finished (the host's side
/// of a cancelled hedge).
#[derive(Default)]
struct Dropped(AtomicU32);

struct DropGuard<'a> {
    finished: bool,
    dropped: &'a Dropped,
}

impl Drop for DropGuard<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.dropped.0.fetch_add(1, SeqCst);
        }
    }
}

/// Call `number` through the runtime: one GET per attempt.
async fn call(
    rt: &Runtime,
    http: &reqwest::Client,
    addr: SocketAddr,
    number: u32,
    idempotent: bool,
    dropped: &Dropped,
) -> (Reply<String>, Duration) {
    let started = Instant::now();
    let spec = CallSpec::new("api", "GET /").idempotent(idempotent);
    let reply = rt
        .call(spec, |attempt| {
            let request = http
                .get(format!("http://{addr}/{number}/{}", attempt.number))
                .send();
            let guard = DropGuard {
                finished: false,
                dropped,
            };
            async move {
                let mut guard = guard;
                let response = request.await;
                let body = match response {
                    Ok(r) => r.text().await,
                    Err(e) => Err(e),
                };
                guard.finished = true;
                body.map_err(|e| Failure::new(ErrorKind::Connect, e.to_string()))
            }
        })
        .await
        .unwrap_or_else(|e| panic!("call {number}: {e}"));
    (reply, started.elapsed())
}

/// The 99th percentile of `took` (the second slowest of 200).
fn p99(mut took: Vec<Duration>) -> Duration {
    took.sort();
    took[(took.len() * 99).div_ceil(100) - 1]
}

/// 200 idempotent calls, ten at a time; how long each took.
async fn two_hundred_calls(rt: &Runtime, addr: SocketAddr) -> Vec<Duration> {
    let http = reqwest::Client::new();
    let dropped = Dropped::default();
    let next = AtomicU32::new(1);
    let took = Mutex::new(Vec::new());
    let worker = || async {
        loop {
            let n = next.fetch_add(1, SeqCst);
            if n > 200 {
                return;
            }
            let (_, t) = call(rt, &http, addr, n, true, &dropped).await;
            took.lock().unwrap().push(t);
        }
    };
    tokio::join!(
        worker(),
        worker(),
        worker(),
        worker(),
        worker(),
        worker(),
        worker(),
        worker(),
        worker(),
        worker()
    );
    took.into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hedging_cuts_the_tail_within_max_extra_attempts() {
    let (addr, seen) = upstream().await;
    let plain = two_hundred_calls(&runtime(false, ""), addr).await;
    let plain_p99 = p99(plain);
    assert_eq!(seen.total(), 200, "without a hedge, one request per call");
    assert!(plain_p99 >= SLOW, "the tail is there: p99 {plain_p99:?}");

    let (addr, seen) = upstream().await;
    let hedged = two_hundred_calls(&runtime(true, ""), addr).await;
    let hedged_p99 = p99(hedged);
    // A slow first attempt is hedged at 50 ms and the hedge answers in
    // 5 ms: well under the 400 ms tail (a generous bound on a busy
    // machine, not a speed).
    assert!(
        hedged_p99 < Duration::from_millis(250),
        "p99 with hedging {hedged_p99:?}, without {plain_p99:?}"
    );
    for n in 1..=200 {
        let requests = seen.requests_of(n);
        assert!(
            (1..=2).contains(&requests),
            "call {n}: {requests} requests, max is 1 hedge"
        );
        if n % 5 == 0 {
            assert_eq!(requests, 2, "call {n}'s slow first attempt was hedged");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_idempotent_call_is_never_hedged() {
    let (addr, seen) = upstream().await;
    let rt = runtime(true, "");
    let http = reqwest::Client::new();
    let dropped = Dropped::default();
    for n in [5, 10, 11] {
        let (reply, took) = call(&rt, &http, addr, n, false, &dropped).await;
        assert_eq!(reply.value, format!("call {n} attempt 1"));
        assert!(reply.history.is_empty());
        if n % 5 == 0 {
            assert!(took >= SLOW, "call {n} waited for its slow attempt");
        }
        assert_eq!(seen.requests_of(n), 1, "call {n}: exactly one request");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_attempt_leaks_nothing() {
    let (addr, seen) = upstream().await;
    // Two slots: the slow first attempt and its hedge. A slot the
    // cancelled attempt kept would leave the next call no room to hedge
    // (a hedge never queues), and its slow attempt would answer it.
    let rt = runtime(true, "max-in-flight = 2");
    let http = reqwest::Client::new();
    let dropped = Dropped::default();
    for (i, n) in [5, 10, 15, 20].into_iter().enumerate() {
        let (reply, took) = call(&rt, &http, addr, n, true, &dropped).await;
        assert_eq!(reply.value, format!("call {n} attempt 2"), "the hedge won");
        assert!(took < SLOW, "call {n} took {took:?}");
        let [first] = &reply.history[..] else {
            panic!("call {n}: {:?}", reply.history)
        };
        assert_eq!((first.attempt, first.kind), (1, ErrorKind::Cancelled));
        assert_eq!(first.step, Step::Cancelled { answered: 2 });
        assert_eq!(seen.requests_of(n), 2);
        // The host dropped the slow attempt's future at once...
        assert_eq!(dropped.0.load(SeqCst), i as u32 + 1);
        // ...and with it the connection, which the upstream sees closed
        // before its answer was due.
        let deadline = Instant::now() + SLOW;
        while seen.abandoned.load(SeqCst) < i as u32 + 1 {
            assert!(
                Instant::now() < deadline,
                "the upstream never saw call {n}'s drop"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
