//! Commands that act on the Partyline already running for this user (overlay or headless), over
//! its local socket: `partyline games list | share PATH | get GAME` and `partyline send PATH --to
//! NAME`. Each follows the running Partyline's events, hands it the command as a line, and
//! prints what concerns it (progress bars, or the JSON events with `--json`) until it is done.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::Value;

use super::output::{Printer, progress_line};
use crate::ipc::{self, Answer, Request};
use crate::paths::Dirs;

#[derive(Subcommand, Debug)]
pub(crate) enum GamesCommand {
    /// Games here, in the party and in the store (the game store's panel).
    List,
    /// Share a game's folder with the party.
    Share { path: PathBuf },
    /// Download a game from every member who has it, verified, into the library.
    Get { game: String },
}

/// How long to wait for the game store's word after a download is complete.
const AFTER_COMPLETE: Duration = Duration::from_secs(20);

/// What a followed event means for the command.
enum Step {
    /// Show it, keep going.
    Show,
    Ignore,
    Done(ExitCode),
}

pub(crate) async fn games(dirs: &Dirs, command: GamesCommand, printer: Printer) -> Result<ExitCode> {
    match command {
        GamesCommand::List => {
            run(dirs, "/games", printer, |e| {
                if e["event"] == "plugin-panel" && e["plugin"] == "game-store" {
                    Step::Done(ExitCode::SUCCESS)
                } else {
                    Step::Ignore
                }
            })
            .await
        }
        GamesCommand::Share { path } => {
            let path = absolute(&path)?;
            let wanted = path.display().to_string();
            run(dirs, &format!("/share {wanted}"), printer, move |e| match e["event"].as_str() {
                Some("shared") if e["path"] == wanted.as_str() => Step::Done(ExitCode::SUCCESS),
                Some("plugin-toast") if e["plugin"] == "game-store" => {
                    let text = e["text"].as_str().unwrap_or_default();
                    if text.starts_with("Sharing") { Step::Ignore } else { Step::Done(ExitCode::FAILURE) }
                }
                _ => Step::Ignore,
            })
            .await
        }
        GamesCommand::Get { game } => {
            let mut complete: Option<std::time::Instant> = None;
            let ours = |e: &Value| e["label"].as_str().is_some_and(|l| l.eq_ignore_ascii_case(&game));
            run(dirs, &format!("/get {game}"), printer, move |e| {
                if complete.is_some_and(|at| at.elapsed() > AFTER_COMPLETE) {
                    return Step::Done(ExitCode::SUCCESS);
                }
                match e["event"].as_str() {
                    Some("transfer") if ours(e) => Step::Show,
                    Some("transfer-complete") if ours(e) => {
                        complete = Some(std::time::Instant::now());
                        Step::Show
                    }
                    Some("transfer-failed") if ours(e) => Step::Done(ExitCode::FAILURE),
                    Some("plugin-toast") if e["plugin"] == "game-store" => {
                        let text = e["text"].as_str().unwrap_or_default();
                        if text.contains("installed") || text.contains("already in your library") {
                            Step::Done(ExitCode::SUCCESS)
                        } else if text.starts_with("Getting") {
                            Step::Show
                        } else {
                            Step::Done(ExitCode::FAILURE)
                        }
                    }
                    _ => Step::Ignore,
                }
            })
            .await
        }
    }
}

/// `partyline send PATH --to NAME`: offers it, then waits for the member to take it.
pub(crate) async fn send(dirs: &Dirs, path: &Path, to: &str, printer: Printer) -> Result<ExitCode> {
    let path = absolute(path)?;
    let line = format!("/send {} {to}", path.display());
    run(dirs, &line, printer, |e| {
        if e["event"] != "plugin-toast" || e["plugin"] != "file-transfer" {
            return Step::Ignore;
        }
        let text = e["text"].as_str().unwrap_or_default();
        if text.contains(" received ") {
            Step::Done(ExitCode::SUCCESS)
        } else if text.contains("declined")
            || text.contains("could not receive")
            || text.contains("no member")
        {
            Step::Done(ExitCode::FAILURE)
        } else {
            Step::Show
        }
    })
    .await
}

fn absolute(path: &Path) -> Result<PathBuf> {
    let path = std::path::absolute(path)?;
    anyhow::ensure!(path.exists(), "{} does not exist", path.display());
    Ok(path)
}

/// Follows the running Partyline's events, hands it `line`, and shows what `step` says until it
/// says done. Errors the running Partyline reports end the command too.
async fn run(
    dirs: &Dirs,
    line: &str,
    printer: Printer,
    mut step: impl FnMut(&Value) -> Step,
) -> Result<ExitCode> {
    let socket = dirs.socket();
    let mut events = ipc::follow(&socket)
        .await?
        .context("Partyline is not running: start it first (`partyline`, or `partyline join LINK`)")?;
    match ipc::hand_off(&socket, &Request::Line { line: line.to_owned() }).await? {
        Some(Answer::Ok) => {}
        Some(Answer::Error(e)) => bail!("{e}"),
        None => bail!("Partyline stopped"),
    }
    let mut bar = false;
    while let Some(text) = events.next_line().await? {
        let Ok(event) = serde_json::from_str::<Value>(&text) else { continue };
        let what = if event["event"] == "error" { Step::Done(ExitCode::FAILURE) } else { step(&event) };
        match what {
            Step::Ignore => continue,
            Step::Show => bar = show(&event, printer, bar),
            Step::Done(code) => {
                show(&event, printer, bar);
                return Ok(code);
            }
        }
    }
    bail!("Partyline stopped")
}

/// Prints one followed event: as it came with `--json`; as a progress bar redrawn in place, or a
/// line, for people. Whether a bar is on screen now.
fn show(event: &Value, printer: Printer, bar: bool) -> bool {
    if printer.is_json() {
        printer.raw(&event.to_string());
        return false;
    }
    let text = |k: &str| event[k].as_str().unwrap_or_default().to_owned();
    let number = |k: &str| event[k].as_u64().unwrap_or(0);
    let mut out = std::io::stdout().lock();
    match event["event"].as_str() {
        Some("transfer") => {
            let line =
                progress_line(&text("name"), number("done"), number("total"), number("peers") as usize);
            let _ = write!(out, "\r{line:<100}");
            let _ = out.flush();
            true
        }
        _ => {
            let line = match event["event"].as_str() {
                Some("transfer-complete") => format!("{} is here, verified: {}", text("name"), text("path")),
                Some("plugin-panel") => panel_text(event),
                Some("shared") => format!("sharing {} ({})", text("name"), text("id")),
                _ => event["text"].as_str().or(event["message"].as_str()).unwrap_or_default().to_owned(),
            };
            let _ = writeln!(out, "{}{line}", if bar { "\n" } else { "" });
            false
        }
    }
}

fn panel_text(panel: &Value) -> String {
    let mut lines = vec![panel["title"].as_str().unwrap_or_default().to_owned()];
    for e in panel["elements"].as_array().into_iter().flatten() {
        match e["kind"].as_str() {
            Some("heading") => lines.push(format!("\n{}", e["text"].as_str().unwrap_or_default())),
            Some("text") => lines.push(format!("  {}", e["text"].as_str().unwrap_or_default())),
            Some("items") => {
                for item in e["items"].as_array().into_iter().flatten() {
                    lines.push(format!("  {}", item.as_str().unwrap_or_default()));
                }
            }
            Some("progress") => lines.push(format!(
                "  {}",
                progress_line(
                    e["label"].as_str().unwrap_or_default(),
                    e["done"].as_u64().unwrap_or(0),
                    e["total"].as_u64().unwrap_or(0),
                    1
                )
            )),
            _ => {}
        }
    }
    lines.join("\n")
}
