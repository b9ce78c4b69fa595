//! The local doors, tried from another user's account: the data directory, the socket and the
//! databases are this user's only (even under a careless umask), a client of another uid is hung
//! up on even where the directory was opened up, and a screenshot is written only into the data
//! directory. The open-file limit is raised as far as it goes.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use partyline_tests::{LOOPBACK, Proc};
use serde_json::{Value, json};

/// Connects to `socket` as user `nobody` and asks for a chat line; what happened.
fn as_another_user(socket: &Path) -> String {
    const CLIENT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("refused:", e)
    sys.exit(0)
try:
    s.sendall(b'{"request": "line", "line": "from another user"}\n')
    print("answered:", s.makefile().readline().strip() or "nothing")
except OSError as e:
    print("hung up:", e)
"#;
    let out = Command::new("/usr/bin/setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", CLIENT])
        .arg(socket)
        .current_dir("/")
        .output()
        .expect("setpriv and python3 (scripts/setup.sh installs them)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

fn ipc(socket: &Path, request: Value) -> Value {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    writeln!(stream, "{request}").unwrap();
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).unwrap();
    serde_json::from_str(&answer).unwrap()
}

#[test]
fn local_files_and_the_socket_are_this_users_only() {
    partyline_tests::init_logs();
    // A home others may enter (as Debian's are), a umask that hides nothing, and the usual soft
    // limit of open files.
    let guard = tempfile::Builder::new().prefix("pl-ana-").tempdir().unwrap();
    let home = guard.path().to_owned();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut args = vec!["host", "--name", "ana", "--mic-device", "none", "--speaker-device", "none"];
    args.extend_from_slice(LOOPBACK);
    let ana = Proc::start_in(
        "ana",
        &home,
        &args,
        Some(guard),
        &["sh", "-c", "umask 000; ulimit -Sn 1024; exec \"$0\" \"$@\""],
    );
    ana.wait_event(Duration::from_secs(20), "link");

    for dir in ["config", "data", "cache"] {
        assert_eq!(mode(&home.join(dir)), 0o700, "{dir} is not private");
    }
    let data = home.join("data");
    let socket = data.join("partyline.sock");
    assert_eq!(mode(&socket) & 0o077, 0, "the socket is open to others: {:o}", mode(&socket));
    let databases: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".sqlite3"))
        .collect();
    assert!(databases.len() >= 2, "{databases:?}");
    for db in &databases {
        assert_eq!(mode(db) & 0o077, 0, "{} is open to others: {:o}", db.display(), mode(db));
    }

    // Another user cannot reach the socket; nor, once the user opened the folder and the socket
    // to everyone, get past the check of who is calling.
    let tried = as_another_user(&socket);
    assert!(tried.starts_with("refused:"), "{tried}");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o777)).unwrap();
    let tried = as_another_user(&socket);
    assert!(tried.starts_with("hung up:") || tried == "answered: nothing", "{tried}");
    std::thread::sleep(Duration::from_millis(500));
    let chat = ana.seen().into_iter().find(|e| e["event"] == "chat");
    assert!(chat.is_none(), "another user's line was carried out: {chat:?}");

    // A screenshot is written only into the data directory (the overlay is not needed for the
    // refusal), not through a symbolic link in it.
    let outside = std::env::temp_dir().join("partyline-shot.png");
    let answer = ipc(&socket, json!({"request": "screenshot", "path": outside}));
    assert!(answer["error"].as_str().is_some_and(|e| e.contains("only into")), "{answer}");
    std::os::unix::fs::symlink(&outside, data.join("link.png")).unwrap();
    let answer = ipc(&socket, json!({"request": "screenshot", "path": data.join("link.png")}));
    assert!(answer["error"].as_str().is_some_and(|e| e.contains("only into")), "{answer}");
    // Every peer, stream and transfer holds descriptors: the soft limit is raised to the hard one.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", ana.pid())).unwrap();
    let files = limits.lines().find(|l| l.starts_with("Max open files")).unwrap().to_owned();
    let numbers: Vec<&str> = files.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers[0], numbers[1], "{files}");

    // The owner's own line still works.
    assert_eq!(ipc(&socket, json!({"request": "line", "line": "from ana"})), json!("ok"));
}
