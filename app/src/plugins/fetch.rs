//! Plugins' outgoing HTTP(S) requests: each on a thread of its own, at most [`IN_FLIGHT`] at once
//! per plugin, 15 s and 1 MiB of answer at most. Redirects are not followed (the next host may
//! not be granted): the plugin gets the 3xx and decides. The answer comes back to the plugin as
//! an `http` (or `http-failed`) event through its queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::bindings::partyline::plugin::http::Request;
use super::bindings::partyline::plugin::types::{Event, HttpResponse};

/// Requests one plugin may have under way.
pub(crate) const IN_FLIGHT: usize = 4;
const TIMEOUT: Duration = Duration::from_secs(15);
const MAX_BODY: u64 = 1 << 20;

/// Hands an event to the plugin's own queue; false if it is full.
pub(crate) type Deliver = Arc<dyn Fn(Event) -> bool + Send + Sync>;

pub(crate) struct Fetcher {
    agent: ureq::Agent,
    deliver: Deliver,
    in_flight: Arc<AtomicUsize>,
    next: u64,
}

impl Fetcher {
    pub(crate) fn new(deliver: Deliver) -> Self {
        let agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .max_redirects_will_error(false)
            .http_status_as_error(false)
            .timeout_global(Some(TIMEOUT))
            .build()
            .into();
        Self { agent, deliver, in_flight: Arc::default(), next: 0 }
    }

    /// Starts `request`; its id, which the answer's event carries.
    pub(crate) fn fetch(&mut self, request: Request) -> Result<u64, String> {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= IN_FLIGHT {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(format!("at most {IN_FLIGHT} requests at once"));
        }
        self.next += 1;
        let id = self.next;
        let (agent, deliver, in_flight) = (self.agent.clone(), self.deliver.clone(), self.in_flight.clone());
        let started = std::thread::Builder::new().name("plugin-http".into()).spawn(move || {
            let event = match run(&agent, request) {
                Ok((status, headers, body)) => {
                    Event::Http(HttpResponse { request: id, status, headers, body })
                }
                Err(e) => Event::HttpFailed((id, e)),
            };
            in_flight.fetch_sub(1, Ordering::AcqRel);
            if !deliver(event) {
                tracing::debug!("a plugin's HTTP answer was dropped: its queue is full");
            }
        });
        if started.is_err() {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err("cannot start the request".into());
        }
        Ok(id)
    }
}

type Answer = (u16, Vec<(String, String)>, Vec<u8>);

fn run(agent: &ureq::Agent, request: Request) -> Result<Answer, String> {
    let mut builder =
        ureq::http::Request::builder().method(request.method.as_str()).uri(request.url.as_str());
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let request = builder.body(request.body).map_err(|e| format!("bad request: {e}"))?;
    let mut response = agent.run(request).map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| (name.to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    let body = response.body_mut().with_config().limit(MAX_BODY).read_to_vec().map_err(|e| e.to_string())?;
    Ok((status, headers, body))
}
