//! What plugins cost: loading each built plugin without the compiled-component cache (cold) and
//! with it (warm), from a fresh engine as a starting Partyline has; delivering one event to a
//! plugin; and how long after its 100 ms deadline a call that never returns is stopped.
//!
//! `cargo bench -p partyline-tests --bench plugins` (release build). Prints tables; not a test.

use std::path::Path;

use partyline::plugins::{BUILT, bench};
use partyline_tests::report::{spread_header, spread_row};

const RUNS: usize = 10;

fn wasm(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(BUILT).join(format!("partyline_plugin_{name}.wasm"))).expect("built plugin")
}

fn main() {
    let cache = tempfile::tempdir().expect("temp dir");
    let plugins: [(&str, &[(&str, &str)]); 4] = [
        ("game_store", &[("feed", "")]),
        ("file_transfer", &[]),
        ("template", &[]),
        ("hostile", &[("mode", "well")]),
    ];

    spread_header(&format!("plugin load, ms ({RUNS} runs; the plugins built with Partyline)"));
    let (mut cold_all, mut warm_all) = (vec![0.0; RUNS], vec![0.0; RUNS]);
    let (mut cold_bundled, mut warm_bundled) = (vec![0.0; RUNS], vec![0.0; RUNS]);
    for (name, config) in plugins {
        let bundled = matches!(name, "game_store" | "file_transfer");
        let bytes = wasm(name);
        let (mut cold, mut warm) = (Vec::new(), Vec::new());
        for run in 0..RUNS {
            let (c, w) = bench::load(&bytes, config, &cache.path().join(name)).expect("load");
            cold.push(c.as_secs_f64() * 1e3);
            warm.push(w.as_secs_f64() * 1e3);
            cold_all[run] += c.as_secs_f64() * 1e3;
            warm_all[run] += w.as_secs_f64() * 1e3;
            if bundled {
                cold_bundled[run] += c.as_secs_f64() * 1e3;
                warm_bundled[run] += w.as_secs_f64() * 1e3;
            }
        }
        spread_row(&format!("{name} ({} KiB) cold", bytes.len() / 1024), cold);
        spread_row(&format!("{name} warm (cache)"), warm);
    }
    spread_row("bundled (game-store + file-transfer), cold", cold_bundled);
    spread_row("bundled, warm (cache)", warm_bundled);
    spread_row("all of them, cold", cold_all);
    spread_row("all of them, warm (cache)", warm_all);

    spread_header(&format!("one event into a plugin, µs ({RUNS} runs of 100000)"));
    let per_event: Vec<f64> = (0..RUNS)
        .map(|_| bench::event_cost(&wasm("template"), &[], 100_000).expect("events").as_secs_f64() * 1e6)
        .collect();
    spread_row("template, an event it ignores", per_event);

    spread_header("a runaway call stopped after its deadline, ms past the deadline");
    let overruns = bench::overrun(&wasm("hostile"), 20).expect("overrun");
    spread_row("hostile, loop mode", overruns.iter().map(|d| d.as_secs_f64() * 1e3).collect());
}
