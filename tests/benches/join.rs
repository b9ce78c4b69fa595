//! Time from starting `partyline join` to its `joined` event, on loopback, with the real binary.
//!
//! `cargo bench -p partyline-tests --bench join` (release build). Prints a table; not a test.

use std::time::{Duration, Instant};

use partyline_tests::report::{spread_header, spread_row};
use partyline_tests::{Proc, host, join_args};

const RUNS: usize = 10;

/// Milliseconds from starting `join` in `home` to its `joined` event; the member then leaves.
fn time_join(link: &str, name: &str, home: &std::path::Path) -> f64 {
    let started = Instant::now();
    let mut joiner = Proc::start_in(name, home, &join_args(link, name, &[]), None, &[]);
    joiner.wait_event(Duration::from_secs(20), "joined");
    let ms = started.elapsed().as_secs_f64() * 1e3;
    joiner.send("/leave");
    joiner.wait_exit(Duration::from_secs(10));
    ms
}

fn main() {
    let (_alice, link) = host("alice", &[]);
    let (mut fresh, mut returning) = (Vec::new(), Vec::new());
    for i in 0..RUNS {
        let name = format!("bob{i}");
        let home = tempfile::tempdir().unwrap();
        // A first join (new identity, database and settings), then the same member coming back.
        fresh.push(time_join(&link, &name, home.path()));
        returning.push(time_join(&link, &name, home.path()));
    }
    spread_header("start of `partyline join` to its `joined` event, loopback, ms");
    spread_row("first join (new identity and data)", fresh);
    spread_row("re-join (existing identity)", returning);
}
