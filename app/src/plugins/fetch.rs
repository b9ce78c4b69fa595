//! Plugins' outgoing HTTP(S) requests: each on a thread of its own, at most [`IN_FLIGHT`] at once
//! per plugin, 15 s and 1 MiB of answer at most. Redirects are not followed (the next host may
//! not be granted): the plugin gets the 3xx and decides. No proxy from the environment is used.
//! A host name is resolved once, here, and only its public addresses are connected to: a granted
//! name that resolves to this machine or the local network (DNS rebinding, a hostile feed
//! naming `localhost`) fails; a grant of the address itself (`http:192.168.1.20`) reaches it.
//! The answer comes back to the plugin as an `http` (or `http-failed`) event through its queue.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

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
        let config = ureq::Agent::config_builder()
            .max_redirects(0)
            .max_redirects_will_error(false)
            .http_status_as_error(false)
            .timeout_global(Some(TIMEOUT))
            .proxy(None)
            .build();
        let agent = ureq::Agent::with_parts(config, DefaultConnector::default(), PublicOnly::default());
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

/// Resolves as usual, then keeps only public addresses unless the URL names an address itself.
#[derive(Debug, Default)]
struct PublicOnly(DefaultResolver);

impl Resolver for PublicOnly {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let all = self.0.resolve(uri, config, timeout)?;
        let host = uri.host().unwrap_or_default();
        if host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok() {
            return Ok(all); // an address the plugin was granted by that address
        }
        let mut public = self.empty();
        for addr in all.iter().filter(|a| is_public(a.ip())) {
            public.push(*addr);
        }
        if public.is_empty() {
            let first = all.first().map(|a| a.ip().to_string()).unwrap_or_default();
            return Err(ureq::Error::Io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "{host} resolves to {first}, an address of this machine or the local network; \
                     a plugin reaches such an address only by it (grant http:{first})"
                ),
            )));
        }
        Ok(public)
    }
}

/// Whether `ip` is on the public Internet: not loopback, private, link-local, shared (CGNAT),
/// unspecified, multicast or broadcast, nor an IPv6 address that maps or embeds such an IPv4 one.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00 // unique local
                    || (first & 0xffc0) == 0xfe80 // link-local
                    || v6.segments()[..6] == [0; 6]) // IPv4-compatible (::a.b.c.d)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.20",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.251",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "ff02::fb",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "1.1.1.1", "100.128.0.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }
}
