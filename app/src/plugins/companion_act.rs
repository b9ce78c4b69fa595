//! What a plugin granted `companion` asks of the player's devices and voice (the session does
//! it): its own module, so that the host functions and the outputs they make depend one way.

/// What a plugin asks of the player's devices and voice.
#[derive(Debug, Clone, PartialEq)]
pub enum CompanionAct {
    /// Text to a connected device by name (`None`: every connected device).
    Send {
        device: Option<String>,
        text: String,
    },
    /// The push-to-talk key went down (`true`) or up.
    PushToTalk(bool),
    Muted(bool),
    Deafened(bool),
    /// A member's volume, by name: 1.0 as sent, up to 2.
    Volume {
        name: String,
        volume: f32,
    },
    Chat(String),
    /// A connected device becomes the headset (`on`), or the voice goes back to this machine.
    Headset {
        device: String,
        on: bool,
    },
    /// A button of another plugin's panel pressed (or its input submitted), as on the overlay.
    Press {
        plugin: String,
        id: String,
        value: Option<String>,
    },
}
