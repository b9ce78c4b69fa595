//! Writing Partyline plugins: the bindings of the `partyline:plugin` WIT API, and a few helpers.
//!
//! A plugin implements [`Guest`] and exports it with [`export!`]:
//!
//! ```ignore
//! use partyline_plugin_sdk::{Event, Guest, export};
//! struct Hello;
//! impl Guest for Hello {
//!     fn init(_config: Vec<(String, String)>) -> Result<(), String> { Ok(()) }
//!     fn handle(event: Event) -> Result<(), String> { Ok(()) }
//! }
//! export!(Hello);
//! ```
//! Host functions need permissions (see PLUGINS.md); calls without one return an error.

wit_bindgen::generate!({
    world: "plugin",
    path: "../wit",
    pub_export_macro: true,
    default_bindings_module: "partyline_plugin_sdk",
});

pub use exports::partyline::plugin::guest::Guest;
pub use partyline::plugin::types::{
    BlobAnswer, Content, DeviceMessage, Event, HttpResponse, Member, PeerMessage, TransferProgress, UiAction,
    VoiceState,
};
pub use partyline::plugin::{blobs, companion, http, log, messaging, notify, party, storage, timers, ui};

/// A value of the plugin's `[config]`.
pub fn config<'a>(config: &'a [(String, String)], key: &str) -> Option<&'a str> {
    config.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// `n` bytes for people: "512 B", "3.2 MiB", "4.0 GiB".
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// Messages between a plugin's copies as lines of tab-separated fields: `line(&["offer", id])`
/// and [`fields`] back. Tabs and line breaks inside a field become spaces.
pub fn line(fields: &[&str]) -> String {
    fields.iter().map(|f| f.replace(['\t', '\n', '\r'], " ")).collect::<Vec<_>>().join("\t")
}

/// The fields of a message made by [`line`].
pub fn fields(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes).split('\t').map(str::to_owned).collect()
}

/// A line in Partyline's log (needs `log`; without it the line is dropped).
pub fn info(message: &str) {
    let _ = log::write(log::Level::Info, message);
}

/// A panel for the overlay, built element by element, then shown with [`Panel::show`] (needs `ui`).
#[derive(Default)]
pub struct Panel {
    title: String,
    elements: Vec<ui::Element>,
}

impl Panel {
    pub fn new(title: &str) -> Self {
        Self { title: title.to_owned(), elements: Vec::new() }
    }

    pub fn heading(mut self, text: &str) -> Self {
        self.elements.push(ui::Element::Heading(text.to_owned()));
        self
    }

    pub fn text(mut self, text: &str) -> Self {
        self.elements.push(ui::Element::Text(text.to_owned()));
        self
    }

    pub fn button(mut self, id: &str, label: &str) -> Self {
        self.elements.push(ui::Element::Button(ui::Button { id: id.to_owned(), label: label.to_owned() }));
        self
    }

    pub fn input(mut self, id: &str, placeholder: &str, value: &str) -> Self {
        let input =
            ui::Input { id: id.to_owned(), placeholder: placeholder.to_owned(), value: value.to_owned() };
        self.elements.push(ui::Element::Input(input));
        self
    }

    pub fn items(mut self, items: Vec<String>) -> Self {
        self.elements.push(ui::Element::Items(items));
        self
    }

    pub fn progress(mut self, label: &str, done: u64, total: u64) -> Self {
        self.elements.push(ui::Element::Progress(ui::Progress { label: label.to_owned(), done, total }));
        self
    }

    pub fn qr(mut self, text: &str) -> Self {
        self.elements.push(ui::Element::Qr(text.to_owned()));
        self
    }

    pub fn show(self) -> Result<(), String> {
        ui::set_panel(&self.title, &self.elements)
    }
}
