//! A plugin's panel as the host draws it, from the elements the plugin declared. The plugin
//! chooses the words; the host keeps what is the user's to say: an input the plugin fills with
//! the path of something here is shown empty, so that sharing a path is always typed (and then
//! confirmed, see `cli::session::asks`) by the user, never one press on what the plugin chose.

use super::bindings::partyline::plugin::ui;
use crate::events::PanelElement;

pub(super) fn element(e: ui::Element) -> PanelElement {
    match e {
        ui::Element::Text(t) => PanelElement::Text(t),
        ui::Element::Heading(t) => PanelElement::Heading(t),
        ui::Element::Button(b) => PanelElement::Button { id: b.id, label: b.label },
        ui::Element::Input(i) => {
            let value = if names_a_path(&i.value) { String::new() } else { i.value };
            PanelElement::Input { id: i.id, placeholder: i.placeholder, value }
        }
        ui::Element::Items(items) => PanelElement::Items(items),
        ui::Element::Progress(p) => PanelElement::Progress { label: p.label, done: p.done, total: p.total },
        ui::Element::Qr(t) => PanelElement::Qr(t),
        ui::Element::Image(i) => PanelElement::Image { width: i.width, height: i.height, rgba: i.rgba },
    }
}

/// A panel element as plugins are handed it (another plugin's panel, for the companion page).
pub(super) fn to_plugin(e: &PanelElement) -> ui::Element {
    match e.clone() {
        PanelElement::Text(t) => ui::Element::Text(t),
        PanelElement::Heading(t) => ui::Element::Heading(t),
        PanelElement::Button { id, label } => ui::Element::Button(ui::Button { id, label }),
        PanelElement::Input { id, placeholder, value } => {
            ui::Element::Input(ui::Input { id, placeholder, value })
        }
        PanelElement::Items(items) => ui::Element::Items(items),
        PanelElement::Progress { label, done, total } => {
            ui::Element::Progress(ui::Progress { label, done, total })
        }
        PanelElement::Qr(t) => ui::Element::Qr(t),
        PanelElement::Image { width, height, rgba } => ui::Element::Image(ui::Image { width, height, rgba }),
    }
}

/// Whether a text reads as a path on this machine: absolute, from home (`~`), or with a folder in
/// it (`..`, `x/y`, and the same with `\`).
fn names_a_path(text: &str) -> bool {
    let text = text.trim();
    std::path::Path::new(text).is_absolute() || text.starts_with('~') || text.contains(['/', '\\'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(value: &str) -> PanelElement {
        element(ui::Element::Input(ui::Input {
            id: "path".into(),
            placeholder: "Path of a file".into(),
            value: value.into(),
        }))
    }

    #[test]
    fn a_plugin_cannot_fill_an_input_with_a_path() {
        for path in ["/home/me/.ssh", " /etc/passwd", "~/.config", "../../secrets", "docs/tax.pdf", "C:\\x"] {
            assert_eq!(
                input(path),
                PanelElement::Input {
                    id: "path".into(),
                    placeholder: "Path of a file".into(),
                    value: String::new(),
                }
            );
        }
        let PanelElement::Input { value, .. } = input("alice") else { unreachable!() };
        assert_eq!(value, "alice", "other words stay");
    }
}
