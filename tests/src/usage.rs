//! What a process has used so far, from /proc: CPU time and resident memory.

use std::sync::OnceLock;

#[derive(Clone, Copy, Debug)]
pub struct Usage {
    /// User and system CPU time, in seconds.
    pub cpu_s: f64,
    /// Resident memory now, in KiB.
    pub rss_kib: u64,
    /// The most resident memory so far, in KiB.
    pub peak_rss_kib: u64,
}

/// Clock ticks per second in /proc/PID/stat (USER_HZ).
fn ticks_per_second() -> f64 {
    static HZ: OnceLock<f64> = OnceLock::new();
    *HZ.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

pub fn of(pid: u32) -> Usage {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("stat comm") + 2..].split(' ').collect();
    // utime and stime are fields 14 and 15, so 11 and 12 after the name and the state.
    let ticks: f64 = fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{key} in /proc/{pid}/status"))
    };
    Usage { cpu_s: ticks / ticks_per_second(), rss_kib: kib("VmRSS:"), peak_rss_kib: kib("VmHWM:") }
}
