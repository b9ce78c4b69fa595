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
pub use partyline::plugin::types::{Event, HttpResponse, Member, PeerMessage, UiAction};
pub use partyline::plugin::{http, log, messaging, notify, party, storage, timers, ui};

/// A value of the plugin's `[config]`.
pub fn config<'a>(config: &'a [(String, String)], key: &str) -> Option<&'a str> {
    config.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
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
