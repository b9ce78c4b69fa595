//! Network namespaces for tests that need several hosts with their own addresses: peers that can
//! reach each other only through a relay, or only from behind NATs. Needs root (CI runs as root);
//! without it the test fails and says so. Namespaces are removed when dropped.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub struct Netns {
    pub name: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("cannot run `ip`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("`ip {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl Netns {
    /// A fresh namespace with its loopback up. Panics with the reason when it cannot be made.
    pub fn new(tag: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!("pl{}-{}-{tag}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        if let Err(e) = ip(&["netns", "add", &name]) {
            panic!("this test needs network namespaces (run as root, with iproute2 installed): {e}");
        }
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Runs `ip -n <ns> <args>`.
    pub fn ip(&self, args: &[&str]) {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        ip(&full).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Runs a shell command inside the namespace.
    pub fn sh(&self, script: &str) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "sh", "-c", script])
            .output()
            .expect("run ip netns exec");
        assert!(
            out.status.success(),
            "`{script}` in {} failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }

    /// The command prefix that runs a program inside the namespace.
    pub fn prefix(&self) -> [&str; 4] {
        ["ip", "netns", "exec", self.name.as_str()]
    }

    pub fn set_forwarding(&self, on: bool) {
        self.sh(&format!("sysctl -qw net.ipv4.ip_forward={}", u8::from(on)));
    }

    pub fn default_route(&self, via: &str) {
        self.ip(&["route", "add", "default", "via", via]);
    }

    pub fn route(&self, net: &str, via: &str) {
        self.ip(&["route", "add", net, "via", via]);
    }

    /// Acts as a home router on `wan`: source-NATs what leaves (keeping ports where it can) and,
    /// like real routers, drops unsolicited packets arriving for the router itself. The drop also
    /// keeps such packets from leaving conntrack entries behind that would make the NAT pick
    /// another port for the next outgoing flow, which would break hole punching.
    pub fn masquerade(&self, wan: &str) {
        self.sh(&format!(
            "nft add table ip nat && \
             nft add chain ip nat post '{{ type nat hook postrouting priority 100 ; }}' && \
             nft add rule ip nat post oifname {wan} masquerade && \
             nft add table ip filter && \
             nft add chain ip filter input '{{ type filter hook input priority 0 ; }}' && \
             nft add rule ip filter input iifname {wan} ct state new drop"
        ));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Connects two namespaces with a veth pair: `a_if` gets `a_addr` (CIDR) in `a`, likewise `b`.
pub fn link(a: &Netns, a_if: &str, a_addr: &str, b: &Netns, b_if: &str, b_addr: &str) {
    ip(&["link", "add", a_if, "netns", &a.name, "type", "veth", "peer", "name", b_if, "netns", &b.name])
        .unwrap_or_else(|e| panic!("{e}"));
    for (ns, ifname, addr) in [(a, a_if, a_addr), (b, b_if, b_addr)] {
        ns.ip(&["addr", "add", addr, "dev", ifname]);
        ns.ip(&["link", "set", ifname, "up"]);
    }
}
