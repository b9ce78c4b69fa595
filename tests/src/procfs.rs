//! What a running process holds, read from `/proc`: its open descriptors and the TCP ports it
//! listens on.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};

/// How many descriptors `pid` has open.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// The IPv4 TCP sockets `pid` listens on.
pub fn tcp_listeners(pid: u32) -> Vec<SocketAddr> {
    let sockets: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            target.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_owned)
        })
        .collect();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl, local address, remote address, state (0A: listening), …, inode (the tenth).
            let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
            if *state != "0A" || !sockets.contains(*inode) {
                return None;
            }
            let (ip, port) = local.split_once(':')?;
            // The kernel prints the address as the 32-bit word it keeps, in this machine's order.
            let ip = Ipv4Addr::from(u32::from_str_radix(ip, 16).ok()?.to_ne_bytes());
            Some(SocketAddr::new(ip.into(), u16::from_str_radix(port, 16).ok()?))
        })
        .collect()
}
