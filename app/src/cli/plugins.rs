//! `partyline plugins …`: install, list, enable, disable, grant, revoke and remove plugins. A
//! running Partyline picks the changes up when it starts next.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use super::output::Printer;
use crate::paths::Dirs;
use crate::plugins::{Grant, Installed, Permission};

#[derive(Subcommand, Debug)]
pub(crate) enum PluginsCommand {
    /// The installed plugins: enabled or not, what each asks for and was granted.
    List,
    /// Install (or update) a plugin from its folder or its plugin.toml.
    Install {
        path: PathBuf,
        /// The component, if not the only .wasm file beside plugin.toml.
        #[arg(long, value_name = "FILE")]
        wasm: Option<PathBuf>,
        /// Permissions to grant, comma-separated, or `all` it asks for (default: none).
        #[arg(long, value_name = "PERMS")]
        grant: Option<String>,
    },
    Enable {
        id: String,
    },
    Disable {
        id: String,
    },
    /// Grant permissions the plugin asks for (comma-separated).
    Grant {
        id: String,
        permissions: String,
    },
    /// Take permissions back (comma-separated).
    Revoke {
        id: String,
        permissions: String,
    },
    /// Change a setting of the plugin (its `[config]`), e.g. `set game-store feed URL`; a URL
    /// lets it reach that host.
    Set {
        id: String,
        key: String,
        value: String,
    },
    /// Uninstall, forgetting its storage and grants.
    Remove {
        id: String,
    },
}

fn permissions(list: &str) -> Result<Vec<Permission>> {
    list.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::parse).collect()
}

pub(crate) fn run(dirs: &Dirs, command: PluginsCommand, printer: Printer) -> Result<ExitCode> {
    let mut installed = Installed::open(dirs)?;
    for problem in installed.ensure_bundled() {
        printer.error(&problem);
    }
    match command {
        PluginsCommand::List => printer.plugins(&installed.list()?),
        PluginsCommand::Install { path, wasm, grant } => {
            let grant = match grant.as_deref() {
                Some("all") => Grant::All,
                Some(list) => Grant::Only(permissions(list)?),
                None => Grant::Only(Vec::new()),
            };
            let plugin = installed.install(&path, wasm.as_deref(), &grant)?;
            printer.plugins(std::slice::from_ref(&plugin));
            let missing: Vec<String> = plugin
                .manifest
                .permissions
                .iter()
                .filter(|p| !plugin.granted.contains(p))
                .map(ToString::to_string)
                .collect();
            if !missing.is_empty() {
                printer.help(&format!(
                    "not granted: {} (its calls needing them are refused); `partyline plugins grant {} PERMS`",
                    missing.join(", "),
                    plugin.manifest.id
                ));
            }
        }
        PluginsCommand::Enable { id } => installed.set_enabled(&id, true)?,
        PluginsCommand::Disable { id } => installed.set_enabled(&id, false)?,
        PluginsCommand::Grant { id, permissions: list } => {
            installed.change_grants(&id, &permissions(&list)?, true)?;
            printer.plugins(&[installed.get(&id)?]);
        }
        PluginsCommand::Revoke { id, permissions: list } => {
            installed.change_grants(&id, &permissions(&list)?, false)?;
            printer.plugins(&[installed.get(&id)?]);
        }
        PluginsCommand::Set { id, key, value } => {
            let plugin = installed.set_config(&id, &key, &value)?;
            printer.plugins(std::slice::from_ref(&plugin));
        }
        PluginsCommand::Remove { id } => installed.remove(&id)?,
    }
    Ok(ExitCode::SUCCESS)
}
