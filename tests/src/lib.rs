//! Harness for Partyline's integration tests and benchmarks: real `partyline` processes driven
//! through their JSON output and stdin, in-process nodes, and network namespaces.

pub mod attacker;
pub mod audio;
pub mod browser;
pub mod capture;
pub mod companion;
pub mod device_talk;
pub mod games;
pub mod impair;
pub mod netns;
pub mod plugins;
pub mod procfs;
pub mod pulse;
pub mod relay_client;
pub mod report;
pub mod store;
pub mod talk;
pub mod usage;
pub mod wm;
pub mod xvfb;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Logs of in-process nodes go to the test's output when `RUST_LOG` is set.
pub fn init_logs() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
    });
}

/// Loopback-only listening, so test traffic never leaves the machine, and no multicast discovery.
pub const LOOPBACK: &[&str] =
    &["--listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns"];

/// Tests that measure real-time audio, and tests that keep both cores busy (the overlay renders
/// on the CPU), take turns with this lock: on two cores, two of them at once starve each other
/// and measure the machine rather than Partyline. It is a lock on a file, so it holds between
/// threads and between processes alike (a runner that gives each test its own process, or two
/// test binaries at once); the kernel lets go of it when its holder ends, however it ends.
pub struct Exclusive {
    _lock: std::fs::File,
}

pub fn exclusive() -> Exclusive {
    let path = std::env::temp_dir().join("partyline-tests.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open the tests' lock {}: {e}", path.display()));
    file.lock().unwrap_or_else(|e| panic!("cannot take the tests' lock {}: {e}", path.display()));
    Exclusive { _lock: file }
}

/// Party tests that are not about voice run without it (no audio devices exist in CI).
pub const NO_VOICE: &[&str] = &["--no-voice"];

/// The `partyline` binary, built (once per test run) from this workspace.
pub fn partyline_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // target/<profile>/deps/<this test> -> target/<profile>/partyline
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
        let profile = profile_dir.file_name().and_then(|p| p.to_str()).unwrap_or("debug").to_owned();
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "--quiet", "-p", "partyline", "--bin", "partyline"]);
        // Cargo gives this test process variables describing it (CARGO_PKG_NAME and others); some
        // build scripts rebuild their crate when those change, so the nested build must not see them.
        const KEEP: [&str; 6] =
            ["CARGO_HOME", "CARGO_TARGET_DIR", "CARGO_BUILD_", "CARGO_NET_", "CARGO_HTTP_", "CARGO_REGISTR"];
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("CARGO_") && !KEEP.iter().any(|k| key.starts_with(k)) {
                build.env_remove(key.as_ref());
            }
        }
        if profile == "release" {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "building the partyline binary failed");
        let bin = profile_dir.join("partyline");
        assert!(bin.exists(), "{} missing after build", bin.display());
        bin
    })
}

/// A running `partyline` process with its own home directory, driven through stdin and read
/// through its `--json` events. Killed when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    events: mpsc::Receiver<Value>,
    seen: Arc<Mutex<Vec<Value>>>,
    pub home: PathBuf,
    _home_guard: Option<tempfile::TempDir>,
}

impl Proc {
    /// Starts `partyline --json --home <new temp dir> <args…>`.
    pub fn start(name: &str, args: &[&str]) -> Self {
        let home = tempfile::Builder::new().prefix(&format!("pl-{name}-")).tempdir().expect("temp dir");
        let path = home.path().to_path_buf();
        Self::start_in(name, &path, args, Some(home), &[])
    }

    /// Starts with an existing home (to restart a node) and an optional command prefix (such as
    /// `ip netns exec NS`).
    pub fn start_in(
        name: &str,
        home: &Path,
        args: &[&str],
        guard: Option<tempfile::TempDir>,
        prefix: &[&str],
    ) -> Self {
        Self::start_full(name, home, args, guard, prefix, &[])
    }

    /// Starts in a new home with extra environment variables (say, a private PulseAudio's).
    pub fn start_env(name: &str, args: &[&str], env: &[(String, String)]) -> Self {
        let home = tempfile::Builder::new().prefix(&format!("pl-{name}-")).tempdir().expect("temp dir");
        let path = home.path().to_path_buf();
        Self::start_full(name, &path, args, Some(home), &[], env)
    }

    /// Starts in `home` (kept by `guard`, if given), after a command `prefix`, with extra
    /// environment variables.
    pub fn start_full(
        name: &str,
        home: &Path,
        args: &[&str],
        guard: Option<tempfile::TempDir>,
        prefix: &[&str],
        env: &[(String, String)],
    ) -> Self {
        let bin = partyline_bin();
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let stderr = std::fs::File::create(home.join(format!("{name}.stderr"))).expect("stderr file");
        cmd.arg("--json")
            .arg("--home")
            .arg(home)
            .args(args)
            .env("RUST_LOG", std::env::var("PARTYLINE_TEST_LOG").unwrap_or_else(|_| "info".into()))
            // Headless unless a test gives a display (the overlay tests' Xvfb).
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, events) = mpsc::channel();
        let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
        let seen_writer = seen.clone();
        let label = name.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("{label} printed a line that is not JSON ({e}): {line}"));
                seen_writer.lock().unwrap().push(value.clone());
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        Self {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            events,
            seen,
            home: home.to_path_buf(),
            _home_guard: guard,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Types a line into the node.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("{}: stdin: {e}", self.name));
    }

    /// The next event satisfying `pred`, skipping others, or `None` after `timeout`.
    pub fn try_wait_for(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(ev) if pred(&ev) => return Some(ev),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// The next event satisfying `pred`, skipping others; panics after `timeout` with what was seen.
    pub fn wait_for(&self, timeout: Duration, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.try_wait_for(timeout, pred).unwrap_or_else(|| {
            panic!(
                "{}: no {what} within {timeout:?}. Events so far:\n{}\nstderr tail:\n{}",
                self.name,
                self.seen().iter().map(Value::to_string).collect::<Vec<_>>().join("\n"),
                self.stderr_tail()
            )
        })
    }

    /// Like [`Proc::wait_for`], but an event printed earlier counts too.
    pub fn seen_or_wait(&self, timeout: Duration, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        match self.seen().into_iter().find(|e| pred(e)) {
            Some(e) => e,
            None => self.wait_for(timeout, what, pred),
        }
    }

    /// The node's counters, from a `/stats` command.
    pub fn stats(&mut self) -> Value {
        self.send("/stats");
        self.wait_event(Duration::from_secs(5), "stats")
    }

    pub fn wait_event(&self, timeout: Duration, event: &str) -> Value {
        self.wait_for(timeout, event, |e| e["event"] == event)
    }

    /// Everything printed so far.
    pub fn seen(&self) -> Vec<Value> {
        self.seen.lock().unwrap().clone()
    }

    pub fn stderr_tail(&self) -> String {
        let text =
            std::fs::read_to_string(self.home.join(format!("{}.stderr", self.name))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Waits until this process's roster (see [`roster`]) is `names`.
    pub fn wait_roster(&self, timeout: Duration, names: &[&str]) {
        let deadline = Instant::now() + timeout;
        while roster(&self.seen()) != names {
            if Instant::now() > deadline {
                panic!(
                    "{}: roster is {:?}, not {names:?}, after {timeout:?}. Events:\n{}\nstderr tail:\n{}",
                    self.name,
                    roster(&self.seen()),
                    self.seen().iter().map(Value::to_string).collect::<Vec<_>>().join("\n"),
                    self.stderr_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{}: still running after {timeout:?}\n{}",
                self.name,
                self.stderr_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident memory in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        usage::of(self.pid()).rss_kib
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // PARTYLINE_KEEP_LOGS=DIR keeps each process's log (with PARTYLINE_TEST_LOG to choose
        // what it logs), for looking into a run.
        if let Some(dir) = std::env::var_os("PARTYLINE_KEEP_LOGS") {
            let log = format!("{}.stderr", self.name);
            let kept = Path::new(&dir).join(format!("{}-{}", self.child.id(), log));
            let _ = std::fs::copy(self.home.join(&log), kept);
        }
    }
}

/// `host --name NAME` on loopback, with extra args; returns the process and its first link.
pub fn host(name: &str, extra: &[&str]) -> (Proc, String) {
    let mut args = vec!["host", "--name", name];
    args.extend_from_slice(LOOPBACK);
    if !extra.iter().any(|a| a.starts_with("--mic") || a.starts_with("--speaker")) {
        args.extend_from_slice(NO_VOICE);
    }
    args.extend_from_slice(extra);
    let proc = Proc::start(name, &args);
    let link = proc.wait_event(Duration::from_secs(20), "link")["link"].as_str().expect("link").to_owned();
    (proc, link)
}

/// Arguments of `join LINK --name NAME` on loopback, with extra args.
pub fn join_args<'a>(link: &'a str, name: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["join", link, "--name", name];
    args.extend_from_slice(LOOPBACK);
    if !extra.iter().any(|a| a.starts_with("--mic") || a.starts_with("--speaker")) {
        args.extend_from_slice(NO_VOICE);
    }
    args.extend_from_slice(extra);
    args
}

/// `join LINK --name NAME` on loopback, with extra args, in a new home.
pub fn join(name: &str, link: &str, extra: &[&str]) -> Proc {
    Proc::start(name, &join_args(link, name, extra))
}

/// Counter `key` of a `stats` event.
pub fn count(stats: &Value, key: &str) -> u64 {
    stats[key].as_u64().unwrap_or_else(|| panic!("no {key} in {stats}"))
}

/// The member names a process knows of, from its `joined`, `member-joined` and `member-left`
/// events so far (in order).
pub fn roster(events: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for e in events {
        match e["event"].as_str() {
            Some("joined") => {
                names =
                    e["members"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_owned()).collect();
            }
            Some("member-joined") => names.push(e["name"].as_str().unwrap().to_owned()),
            Some("member-left") => names.retain(|n| n != e["name"].as_str().unwrap()),
            _ => {}
        }
    }
    names.sort();
    names
}

/// The chat lines (`seq`, `from`, `text`) a process printed so far.
pub fn chat_log(events: &[Value]) -> Vec<(u64, String, String)> {
    events
        .iter()
        .filter(|e| e["event"] == "chat")
        .map(|e| {
            (
                e["seq"].as_u64().unwrap(),
                e["from"].as_str().unwrap().into(),
                e["text"].as_str().unwrap().into(),
            )
        })
        .collect()
}

/// Runs `partyline --json --home HOME ARGS…` to its end (at most `timeout`): whether it
/// succeeded, and the JSON lines it printed.
pub fn run_cli(home: &Path, args: &[&str], timeout: Duration) -> (bool, Vec<Value>) {
    let mut child = Command::new(partyline_bin())
        .arg("--json")
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("partyline runs");
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect()
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("`partyline {}` still running after {timeout:?}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let lines: Vec<Value> = reader.join().expect("reader");
    (status.success(), lines)
}

/// An in-process node's settings: loopback only, no mDNS, no voice, under `home`.
pub fn loopback_config(home: &Path, name: &str) -> partyline::NodeConfig {
    partyline::NodeConfig {
        dirs: partyline::paths::Dirs::under(home),
        name: name.into(),
        relays: vec![],
        listen: vec![
            "/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap(),
            "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
        ],
        port: 0,
        mdns: false,
        join_timeout: Duration::from_secs(10),
        voice: None,
        announce: vec![],
        upload_limit: None,
        direct_transfers: true,
        voice_datagrams: true,
        voice_port: 0,
        announce_voice_port: None,
    }
}
