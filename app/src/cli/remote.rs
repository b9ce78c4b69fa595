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

use super::output::{Printer, progress_line};
use crate::event_json::{Element, Event, Outcome};
use crate::ipc::{self, Answer, Request};
use crate::paths::Dirs;
use crate::session::{FILE_TRANSFER, GAME_STORE};

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
            run(dirs, "/games", printer, |e| match e {
                Event::PluginPanel { plugin, .. } if plugin == GAME_STORE => Step::Done(ExitCode::SUCCESS),
                _ => Step::Ignore,
            })
            .await
        }
        GamesCommand::Share { path } => {
            let path = absolute(&path)?;
            let line = format!("/share {}", path.display());
            run(dirs, &line, printer, move |e| match e {
                Event::Shared { path: shared, .. } if *shared == path => Step::Done(ExitCode::SUCCESS),
                Event::PluginToast { plugin, outcome: Some(Outcome::Failed), .. } if plugin == GAME_STORE => {
                    Step::Done(ExitCode::FAILURE)
                }
                _ => Step::Ignore,
            })
            .await
        }
        GamesCommand::Get { game } => {
            let mut complete: Option<std::time::Instant> = None;
            run(dirs, &format!("/get {game}"), printer, move |e| {
                if complete.is_some_and(|at| at.elapsed() > AFTER_COMPLETE) {
                    return Step::Done(ExitCode::SUCCESS);
                }
                let ours = |label: &str| label.eq_ignore_ascii_case(&game);
                match e {
                    Event::Transfer { label, .. } if ours(label) => Step::Show,
                    Event::TransferComplete { label, .. } if ours(label) => {
                        complete = Some(std::time::Instant::now());
                        Step::Show
                    }
                    Event::TransferFailed { label, .. } if ours(label) => Step::Done(ExitCode::FAILURE),
                    Event::PluginToast { plugin, outcome: Some(outcome), .. } if plugin == GAME_STORE => {
                        ended(*outcome)
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
    run(dirs, &line, printer, |e| match e {
        Event::PluginToast { plugin, outcome: Some(outcome), .. } if plugin == FILE_TRANSFER => {
            ended(*outcome)
        }
        _ => Step::Ignore,
    })
    .await
}

/// What a plugin's report of the request means for the command.
fn ended(outcome: Outcome) -> Step {
    match outcome {
        Outcome::Working => Step::Show,
        Outcome::Done => Step::Done(ExitCode::SUCCESS),
        Outcome::Failed => Step::Done(ExitCode::FAILURE),
    }
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
    mut step: impl FnMut(&Event) -> Step,
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
        let Some(event) = Event::from_line(&text) else { continue };
        let what =
            if matches!(event, Event::Error { .. }) { Step::Done(ExitCode::FAILURE) } else { step(&event) };
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
fn show(event: &Event, printer: Printer, bar: bool) -> bool {
    if printer.is_json() {
        printer.raw(&event.to_line());
        return false;
    }
    let mut out = std::io::stdout().lock();
    let line = match event {
        Event::Transfer { name, done, total, peers, .. } => {
            let line = progress_line(name, *done, *total, *peers);
            let _ = write!(out, "\r{line:<100}");
            let _ = out.flush();
            return true;
        }
        Event::TransferComplete { name, path, .. } => format!("{name} is here, verified: {}", path.display()),
        Event::PluginPanel { title, elements, .. } => panel_text(title, elements),
        Event::Shared { name, id, .. } => format!("sharing {name} ({id})"),
        Event::PluginToast { text, .. } => text.clone(),
        Event::TransferFailed { message, .. } | Event::Error { message, .. } => message.clone(),
        _ => String::new(),
    };
    let _ = writeln!(out, "{}{line}", if bar { "\n" } else { "" });
    false
}

fn panel_text(title: &str, elements: &[Element]) -> String {
    let mut lines = vec![title.to_owned()];
    for e in elements {
        match e {
            Element::Heading { text } => lines.push(format!("\n{text}")),
            Element::Text { text } => lines.push(format!("  {text}")),
            Element::Items { items } => lines.extend(items.iter().map(|item| format!("  {item}"))),
            Element::Progress { label, done, total } => {
                lines.push(format!("  {}", progress_line(label, *done, *total, 1)))
            }
            _ => {}
        }
    }
    lines.join("\n")
}
