//! A private PulseAudio server for device tests: virtual microphones and speakers (null sinks,
//! pipe sources), started and stopped by the test. Partyline reaches it the way it reaches any
//! desktop's sound: through ALSA's default device and PulseAudio's ALSA plugin.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Pulse {
    dir: tempfile::TempDir,
    daemon: Option<Child>,
}

impl Pulse {
    /// Starts a server of our own (its own runtime directory, so nothing else shares it).
    pub fn start() -> Self {
        let dir = tempfile::Builder::new().prefix("pl-pulse-").tempdir().unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        let mut pulse = Self { dir, daemon: None };
        pulse.run_daemon();
        pulse
    }

    fn run_daemon(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("pulse.log")).unwrap();
        let child = Command::new("pulseaudio")
            .args(["--daemonize=no", "--exit-idle-time=-1", "-n", "--load=module-native-protocol-unix"])
            .envs(self.env())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start pulseaudio ({e}); scripts/setup.sh installs it"));
        self.daemon = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.pactl(&["info"]).0 {
            assert!(Instant::now() < deadline, "pulseaudio did not come up:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server, as when a sound device disappears.
    pub fn kill(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }

    /// Starts it again (without its modules).
    pub fn restart(&mut self) {
        self.kill();
        self.run_daemon();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pulse.log")).unwrap_or_default()
    }

    /// What a client needs in its environment to use this server.
    pub fn env(&self) -> Vec<(String, String)> {
        let dir = self.dir.path().to_string_lossy().into_owned();
        vec![("XDG_RUNTIME_DIR".into(), dir.clone()), ("PULSE_RUNTIME_PATH".into(), format!("{dir}/pulse"))]
    }

    /// [`Self::env`] and more variables (`PULSE_SINK`, `PULSE_SOURCE`, ...).
    pub fn env_with(&self, more: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = self.env();
        env.extend(more.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    }

    fn pactl(&self, args: &[&str]) -> (bool, String) {
        match Command::new("pactl").args(args).envs(self.env()).output() {
            Ok(out) => (out.status.success(), String::from_utf8_lossy(&out.stdout).trim().to_owned()),
            Err(_) => (false, String::new()),
        }
    }

    /// `pactl list short sources` and `sinks`, for diagnostics.
    pub fn devices(&self) -> String {
        format!(
            "{}\n{}",
            self.pactl(&["list", "short", "sources"]).1,
            self.pactl(&["list", "short", "sinks"]).1
        )
    }

    /// The latencies PulseAudio reports for its clients' streams (`pactl list` of sink inputs and
    /// source outputs: buffer and device latency per stream), for latency budgets.
    pub fn stream_latencies(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (kind, heading) in [("sink-inputs", "Sink Input #"), ("source-outputs", "Source Output #")] {
            let (_, text) = self.pactl(&["list", kind]);
            // Each stream's latencies come before its properties (where its name is).
            for entry in text.split(heading).skip(1) {
                let lines_of = || entry.lines().map(str::trim);
                let name = lines_of()
                    .find_map(|l| l.strip_prefix("application.name = "))
                    .unwrap_or("?")
                    .trim_matches('"');
                for line in lines_of().filter(|l| {
                    ["Buffer Latency:", "Sink Latency:", "Source Latency:"].iter().any(|p| l.starts_with(p))
                }) {
                    lines.push(format!("{kind} {name}: {line}"));
                }
            }
        }
        lines
    }

    /// Loads a module; returns its index.
    pub fn load(&self, module: &str, args: &str) -> String {
        let mut all = vec!["load-module", module];
        all.extend(args.split_whitespace());
        let (ok, index) = self.pactl(&all);
        assert!(ok, "cannot load {module} {args}:\n{}", self.log());
        index
    }

    /// A speaker: a null sink whose monitor source records what was played into it. Without
    /// rewinds: a null sink renders up to two seconds ahead, and when a stream starts or stops
    /// it rewinds and pulls that again from its clients, which played as seconds-long stalls and
    /// bursts (measured: a 1.9 s gap between the mixer's pulls in a failing run, none over 95 ms
    /// in twelve runs without rewinds).
    pub fn speaker(&self, name: &str) {
        self.load("module-null-sink", &format!("sink_name={name} rate=48000 channels=1 norewinds=1"));
    }

    /// A microphone: a null sink to play speech into, whose monitor is the source to capture.
    /// Returns the source's name.
    pub fn microphone(&self, name: &str) -> String {
        self.speaker(&format!("{name}_in"));
        format!("{name}_in.monitor")
    }

    /// Plays a WAV file into `sink` in real time; returns the player.
    pub fn play(&self, sink: &str, wav: &Path) -> Child {
        Command::new("paplay").args(["--device", sink]).arg(wav).envs(self.env()).spawn().expect("run paplay")
    }

    /// Records `source` into a WAV file until the returned recorder is stopped.
    pub fn record(&self, source: &str, path: &Path) -> Recorder {
        let child = Command::new("parecord")
            .args(["--device", source, "--rate=48000", "--channels=1", "--format=s16le", "--file-format=wav"])
            .arg(path)
            .envs(self.env())
            .spawn()
            .expect("run parecord");
        Recorder(child)
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Recorder(Child);

impl Recorder {
    /// Stops recording; parecord finishes the file on SIGINT.
    pub fn stop(mut self) {
        let _ = Command::new("kill").args(["-INT", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}
