//! What moving games costs. A generated 4 GiB game (many tiny files, some medium, three large)
//! goes from one member, then from three at once, to another member on loopback, through the
//! real binary and its game store (`partyline games share` / `games get`); beside it, in the same
//! run, `cp -r` of the same folder on the same disk, synced as the download is (the physical
//! limit here). Throughput from the get to `transfer-complete` (every piece verified, synced and
//! the tree finished), and CPU seconds per GiB of the receiving and the serving processes.
//!
//! With providers' uploads capped (`--upload-limit`), three providers against one shows how the
//! download spreads over them. One run goes over the party's libp2p connection only
//! (`--no-direct-transfers`), for comparison with the direct sealed channel.
//!
//! `cargo bench -p partyline-tests --bench transfers` (release build). Prints tables; not a test.
//! `PARTYLINE_BENCH_GIB` changes the game's size.

use std::path::Path;
use std::time::{Duration, Instant};

use partyline_tests::games;
use partyline_tests::usage;
use partyline_tests::{Proc, host, join, run_cli};

const GIB: f64 = (1u64 << 30) as f64;
/// Upload cap per provider for the spread comparison, MB/s.
const CAPPED: &str = "150";

struct Run {
    seconds: f64,
    receiver_cpu: f64,
    providers_cpu: f64,
    peak_rss_mib: f64,
}

fn share(p: &Proc, game: &Path) -> f64 {
    let at = Instant::now();
    let (ok, out) = run_cli(&p.home, &["games", "share", game.to_str().unwrap()], Duration::from_secs(600));
    assert!(ok, "{out:?}");
    at.elapsed().as_secs_f64()
}

/// One download of `game` by a new member (started with `extra` arguments) from `providers`
/// members that share it, each capped at `cap` MB/s (if given). Returns the run, and how long
/// the first provider took to hash it.
fn download(game: &Path, providers: usize, cap: Option<&str>, extra: &[&str]) -> (Run, f64) {
    let name = game.file_name().unwrap().to_str().unwrap().to_owned();
    let limit: Vec<&str> = cap.map(|c| vec!["--upload-limit", c]).unwrap_or_default();
    let (first, link) = host("p0", &limit);
    let mut serving = vec![first];
    for i in 1..providers {
        let p = join(&format!("p{i}"), &link, &limit);
        p.wait_event(Duration::from_secs(30), "joined");
        serving.push(p);
    }
    let hashing = share(&serving[0], game);
    for p in &serving[1..] {
        share(p, game);
    }
    let receiver = join("getter", &link, extra);
    receiver.wait_event(Duration::from_secs(30), "joined");
    receiver
        .wait_for(Duration::from_secs(60), "offered", |e| partyline_tests::store::get_buttons(e, &name) > 0);
    let cpu = |procs: &[Proc]| procs.iter().map(|p| usage::of(p.pid()).cpu_s).sum::<f64>();
    let (r0, p0) = (usage::of(receiver.pid()).cpu_s, cpu(&serving));
    let at = Instant::now();
    let (ok, out) = run_cli(&receiver.home, &["games", "get", &name], Duration::from_secs(1800));
    assert!(ok, "{:?}", out.iter().rev().take(3).collect::<Vec<_>>());
    let complete =
        receiver.seen_or_wait(Duration::from_secs(10), "complete", |e| e["event"] == "transfer-complete");
    let seconds = at.elapsed().as_secs_f64();
    let peers = out.iter().filter_map(|e| e["peers"].as_u64()).max().unwrap_or(0);
    assert_eq!(peers as usize, providers, "downloaded from every provider");
    assert!(complete["total"].as_u64().is_some());
    let used = usage::of(receiver.pid());
    let run = Run {
        seconds,
        receiver_cpu: used.cpu_s - r0,
        providers_cpu: cpu(&serving) - p0,
        peak_rss_mib: used.peak_rss_kib as f64 / 1024.0,
    };
    (run, hashing)
}

/// `cp -r` of `game` into a fresh folder on the same disk, then a sync of that file system.
fn copy(game: &Path, into: &Path) -> f64 {
    let dest = into.join("copy");
    let at = Instant::now();
    let ok = std::process::Command::new("cp").arg("-r").arg(game).arg(&dest).status().unwrap().success();
    assert!(ok, "cp -r failed");
    let ok = std::process::Command::new("sync").arg("-f").arg(&dest).status().unwrap().success();
    assert!(ok, "sync failed");
    let seconds = at.elapsed().as_secs_f64();
    std::fs::remove_dir_all(&dest).unwrap();
    seconds
}

fn main() {
    let gib: f64 = std::env::var("PARTYLINE_BENCH_GIB").ok().and_then(|v| v.parse().ok()).unwrap_or(4.0);
    let dir = tempfile::Builder::new().prefix("pl-bench-").tempdir_in(std::env::temp_dir()).unwrap();
    let made = Instant::now();
    let game = games::generate(dir.path(), "Bench Game", (gib * GIB) as u64, 42);
    let size = games::size_of(&game) as f64 / GIB;
    println!(
        "\ngame: {size:.2} GiB, {} files, made in {:.1} s",
        walk_count(&game),
        made.elapsed().as_secs_f64()
    );

    let cp = copy(&game, dir.path());
    let (one, hashing) = download(&game, 1, None, &[]);
    let cp_again = copy(&game, dir.path());
    let (one_libp2p, _) = download(&game, 1, None, &["--no-direct-transfers"]);
    let (one_capped, _) = download(&game, 1, Some(CAPPED), &[]);
    let (three_capped, _) = download(&game, 3, Some(CAPPED), &[]);

    let rate = |s: f64| size * 1024.0 / s;
    println!(
        "\n| case | seconds | MiB/s | vs cp -r | receiver CPU s/GiB | providers CPU s/GiB | receiver peak RSS MiB |"
    );
    println!(
        "|------|---------|-------|----------|--------------------|---------------------|-----------------------|"
    );
    let cp_best = cp.min(cp_again);
    println!("| cp -r + sync (same disk), best of 2 | {cp_best:.1} | {:.0} | 100% | | | |", rate(cp_best));
    for (label, r) in [
        ("1 provider (direct channel)", &one),
        ("1 provider, party connection only (QUIC)", &one_libp2p),
        (&*format!("1 provider capped at {CAPPED} MB/s"), &one_capped),
        (&*format!("3 providers capped at {CAPPED} MB/s each"), &three_capped),
    ] {
        println!(
            "| {label} | {:.1} | {:.0} | {:.0}% | {:.2} | {:.2} | {:.0} |",
            r.seconds,
            rate(r.seconds),
            cp_best / r.seconds * 100.0,
            r.receiver_cpu / size,
            r.providers_cpu / size,
            r.peak_rss_mib
        );
    }
    println!(
        "\nthree capped providers against one: {:.2}x; hashing the game to share it: {:.1} s ({:.0} MiB/s)",
        one_capped.seconds / three_capped.seconds,
        hashing,
        rate(hashing)
    );
}

fn walk_count(path: &Path) -> usize {
    std::fs::read_dir(path)
        .map(|entries| entries.filter_map(Result::ok).map(|e| 1 + walk_count(&e.path())).sum())
        .unwrap_or(0)
}
