//! Whether a display can be reached, so that the overlay can open: asked by the settings
//! (`overlay.show = "auto"`) before any window exists.

/// Whether a display can be reached: `DISPLAY`'s X server socket, or the Wayland socket.
pub fn available() -> bool {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(display) = var("DISPLAY") {
        // ":N" or ":N.S" is a local server with a socket we can try; other forms we trust.
        return match display.strip_prefix(':').and_then(|d| d.split('.').next()) {
            Some(n) => std::os::unix::net::UnixStream::connect(format!("/tmp/.X11-unix/X{n}")).is_ok(),
            None => true,
        };
    }
    match (var("WAYLAND_DISPLAY"), var("XDG_RUNTIME_DIR")) {
        (Some(w), Some(dir)) => std::path::Path::new(&dir).join(w).exists(),
        _ => false,
    }
}
