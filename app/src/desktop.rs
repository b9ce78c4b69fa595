//! Desktop integration on Linux: a `.desktop` entry that makes Partyline the handler of
//! `partyline://` links, so a link clicked in a browser or chat opens (or is handed to) Partyline.

use std::path::PathBuf;

use anyhow::{Context, Result};

/// The entry's file name; also the id `xdg-mime` knows it by.
const ENTRY: &str = "partyline.desktop";

/// The entry for this executable. `%u` is the clicked link.
pub fn entry(exe: &std::path::Path) -> String {
    let exe = exe.display().to_string().replace('\\', "\\\\").replace(' ', "\\s");
    format!(
        "[Desktop Entry]\n\
         Type=Application\n\
         Name=Partyline\n\
         Comment=Peer-to-peer party voice for games\n\
         Exec={exe} %u\n\
         Terminal=false\n\
         Categories=Network;Chat;Game;\n\
         MimeType=x-scheme-handler/partyline;\n"
    )
}

/// Writes the entry into `$XDG_DATA_HOME/applications` and makes it the `partyline://` handler
/// (with `xdg-mime` when installed; otherwise in `mimeapps.list` directly). Returns the file.
pub fn install() -> Result<PathBuf> {
    let dirs = directories::BaseDirs::new().context("no home directory")?;
    let apps = dirs.data_dir().join("applications");
    std::fs::create_dir_all(&apps).with_context(|| format!("cannot create {}", apps.display()))?;
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let file = apps.join(ENTRY);
    std::fs::write(&file, entry(&exe)).with_context(|| format!("cannot write {}", file.display()))?;
    let registered = std::process::Command::new("xdg-mime")
        .args(["default", ENTRY, "x-scheme-handler/partyline"])
        .status()
        .is_ok_and(|s| s.success());
    if !registered {
        register_in_mimeapps(&dirs.config_dir().join("mimeapps.list"))?;
    }
    Ok(file)
}

/// Adds (or replaces) the handler line under `[Default Applications]`, keeping everything else.
fn register_in_mimeapps(path: &std::path::Path) -> Result<()> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, with_handler(&text)).with_context(|| format!("cannot write {}", path.display()))
}

fn with_handler(text: &str) -> String {
    const KEY: &str = "x-scheme-handler/partyline=";
    let mut out = String::new();
    let mut added = false;
    for line in text.lines().filter(|l| !l.starts_with(KEY)) {
        out.push_str(line);
        out.push('\n');
        if line.trim() == "[Default Applications]" {
            out.push_str(&format!("{KEY}{ENTRY}\n"));
            added = true;
        }
    }
    if !added {
        out.push_str(&format!("[Default Applications]\n{KEY}{ENTRY}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_handles_the_scheme_and_escapes_the_path() {
        let e = entry(std::path::Path::new("/opt/my apps/partyline"));
        assert!(e.contains("MimeType=x-scheme-handler/partyline;"));
        assert!(e.contains("Exec=/opt/my\\sapps/partyline %u"));
    }

    #[test]
    fn mimeapps_keeps_other_lines_and_replaces_ours() {
        let before =
            "[Default Applications]\ntext/html=firefox.desktop\nx-scheme-handler/partyline=old.desktop\n";
        let after = with_handler(before);
        assert_eq!(after.matches("x-scheme-handler/partyline=").count(), 1);
        assert!(after.contains("x-scheme-handler/partyline=partyline.desktop"));
        assert!(after.contains("text/html=firefox.desktop"));
        assert!(with_handler("").starts_with("[Default Applications]\n"));
    }
}
