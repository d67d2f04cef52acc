//! A scripted fake env0 on `127.0.0.1:0`, a recording observer and client builders.
//!
//! axum rather than `wiremock`: it is already a dependency, and a script closure that sees the
//! request and its number says "503 twice, then 200" more directly than stacked mocks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use env0_exporter::client::{
    Client, ClientConfig, Endpoint, Organization, RATE_WINDOW, RequestObserver, RequestOutcome,
};
use env0_exporter::clock::{ManualClock, SharedClock, SystemClock};
use env0_exporter::ratelimit::SlidingWindow;
use jiff::Timestamp;
use secrecy::SecretString;
use url::Url;

/// One request the fake server received.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// The path as sent, still percent-encoded.
    pub path: String,
    /// Query pairs in order, decoded.
    pub query: Vec<(String, String)>,
    /// Request headers.
    pub headers: HeaderMap,
}

impl Seen {
    /// The decoded value of query parameter `name`.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of header `name`.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What the fake server answers.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    delay: Duration,
}

impl Reply {
    /// 200 with a JSON body.
    pub(crate) fn json(body: impl Into<String>) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    /// `status` with a small JSON error body.
    pub(crate) fn status(status: u16) -> Self {
        Self {
            status,
            body: format!(r#"{{"message":"status {status}"}}"#),
            ..Self::json("")
        }
    }

    /// The same body under another status.
    pub(crate) fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Adds a response header.
    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Answers only after `delay` (real time).
    pub(crate) fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Script = dyn Fn(&Seen, usize) -> Reply + Send + Sync;

#[derive(Clone)]
struct FakeState {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Script>,
}

/// A fake env0 answering each request by `script(request, number_from_zero)`.
pub(crate) struct FakeEnv0 {
    /// `http://127.0.0.1:<port>/`.
    pub base_url: Url,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeEnv0 {
    /// Starts the server on a free port.
    pub(crate) async fn start(
        script: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = FakeState {
            seen: Arc::clone(&seen),
            script: Arc::new(script),
        };
        let app = Router::new().fallback(answer).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port");
        let addr = listener.local_addr().expect("local address");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("fake env0 serves");
        });
        Self {
            base_url: format!("http://{addr}/").parse().expect("base url"),
            seen,
            task,
        }
    }

    /// Every request so far, in order.
    pub(crate) fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    /// How many requests arrived.
    pub(crate) fn count(&self) -> usize {
        self.seen.lock().expect("lock").len()
    }
}

impl Drop for FakeEnv0 {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(State(state): State<FakeState>, request: Request) -> Response {
    let uri = request.uri();
    let seen = Seen {
        path: uri.path().to_owned(),
        query: url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect(),
        headers: request.headers().clone(),
    };
    let number = {
        let mut all = state.seen.lock().expect("lock");
        all.push(seen.clone());
        all.len() - 1
    };
    let reply = (state.script)(&seen, number);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response =
        Response::builder().status(StatusCode::from_u16(reply.status).expect("valid status"));
    for (name, value) in &reply.headers {
        response = response.header(name, value);
    }
    response.body(Body::from(reply.body)).expect("response")
}

/// Records every attempt the client reports.
#[derive(Debug, Default)]
pub(crate) struct Recorder(Mutex<Vec<(Endpoint, RequestOutcome)>>);

impl Recorder {
    /// Every `(endpoint, outcome)` so far, in order.
    pub(crate) fn attempts(&self) -> Vec<(Endpoint, RequestOutcome)> {
        self.0.lock().expect("lock").clone()
    }

    /// Waits (real time, at most 5 s) until `n` attempts were reported.
    pub(crate) async fn wait_for(&self, n: usize) {
        for _ in 0..1000 {
            if self.attempts().len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("{n} attempts were never reported: {:?}", self.attempts());
    }
}

impl RequestObserver for Recorder {
    fn observe(&self, endpoint: Endpoint, outcome: RequestOutcome, _duration: Duration) {
        self.0.lock().expect("lock").push((endpoint, outcome));
    }
}

/// The API key id every test uses.
pub(crate) const KEY: &str = "key-id";
/// The API key secret every test uses.
pub(crate) const SECRET: &str = "s3cret";

/// A fast test configuration: 2 s timeout, 4 retries, back-off 10 ms doubling to 40 ms.
pub(crate) fn config(base_url: &Url) -> ClientConfig {
    ClientConfig {
        request_timeout: Duration::from_secs(2),
        max_retries: 4,
        retry_base_delay: Duration::from_millis(10),
        retry_max_delay: Duration::from_millis(40),
        ..ClientConfig::new(base_url.clone(), KEY, SecretString::from(SECRET))
    }
}

/// A client on `clock` with a fresh recorder and a budget of 1000 requests per minute.
pub(crate) fn client_on(config: ClientConfig, clock: SharedClock) -> (Client, Arc<Recorder>) {
    client_with_budget(config, 1000, clock)
}

/// A client on `clock` with a fresh recorder and a budget of `per_minute` requests.
pub(crate) fn client_with_budget(
    config: ClientConfig,
    per_minute: u32,
    clock: SharedClock,
) -> (Client, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let budget = Arc::new(SlidingWindow::new(per_minute, RATE_WINDOW));
    let client = Client::new(config, budget, clock, recorder.clone()).expect("valid config");
    (client, recorder)
}

/// A client on the system clock with the test configuration.
pub(crate) fn client(server: &FakeEnv0) -> (Client, Arc<Recorder>) {
    client_on(config(&server.base_url), Arc::new(SystemClock))
}

/// A manual clock at a fixed start.
pub(crate) fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(ts("2026-07-01T14:00:00Z")))
}

/// Parses a test timestamp.
pub(crate) fn ts(s: &str) -> Timestamp {
    s.parse().expect("valid timestamp")
}

/// A JSON array of `n` minimal objects with ids `{prefix}{i}` for `i` in `range`.
pub(crate) fn ids_page(prefix: &str, range: std::ops::Range<usize>) -> String {
    let items: Vec<String> = range
        .map(|i| format!(r#"{{"id":"{prefix}{i}","name":"n{i}"}}"#))
        .collect();
    format!("[{}]", items.join(","))
}

/// Lets spawned tasks and the fake server run for a moment of real time.
pub(crate) async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Starts `client.organizations()` in the background, for tests that move a manual clock.
pub(crate) fn spawn_organizations(
    client: &Client,
) -> tokio::task::JoinHandle<env0_exporter::client::Result<Vec<Organization>>> {
    let client = client.clone();
    tokio::spawn(async move { client.organizations().await })
}

/// Waits (real time, at most 5 s) for a background request and returns its result.
pub(crate) async fn finish<T>(task: tokio::task::JoinHandle<T>, what: &str) -> T {
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap_or_else(|_| panic!("{what}: still waiting after 5 s"))
        .expect("request task ran")
}

/// Answers the first request with 429 (and `retry_after`, if any), every later one with `[]`.
pub(crate) fn rate_limited_once(
    retry_after: Option<&'static str>,
) -> impl Fn(&Seen, usize) -> Reply {
    move |_, n| match (n, retry_after) {
        (0, Some(value)) => Reply::status(429).header("retry-after", value),
        (0, None) => Reply::status(429),
        _ => Reply::json("[]"),
    }
}

/// The attempts of an organizations call rate limited once, then answered.
pub(crate) const LIMITED_THEN_OK: [(Endpoint, RequestOutcome); 2] = [
    (Endpoint::Organizations, RequestOutcome::Status(429)),
    (Endpoint::Organizations, RequestOutcome::Status(200)),
];
