//! Settings that are a choice among names (`overlay.show`, `overlay.anchor`, `voice.mode`): each
//! is an enum whose serde derive names its choices, and this reads and writes those names the
//! same way for the settings file, the command line and typed commands, so that one definition
//! says what is valid and how a wrong name is reported.

use serde::Serialize;
use serde::de::{DeserializeOwned, IntoDeserializer, value};

/// Reads a choice by name (or one of its aliases), as the settings file would.
pub fn parse<T: DeserializeOwned>(name: &str) -> Result<T, String> {
    T::deserialize(IntoDeserializer::<value::Error>::into_deserializer(name)).map_err(|e| e.to_string())
}

/// The name a choice is written with.
pub fn name<T: Serialize>(choice: &T) -> String {
    serde_json::to_value(choice).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    enum Side {
        TopLeft,
        #[serde(alias = "under")]
        Bottom,
    }

    #[test]
    fn names_and_aliases_read_back_and_a_wrong_name_says_what_is_valid() {
        assert_eq!(super::parse::<Side>("top-left"), Ok(Side::TopLeft));
        assert_eq!(super::parse::<Side>("under"), Ok(Side::Bottom));
        assert_eq!(super::name(&Side::TopLeft), "top-left");
        let e = super::parse::<Side>("middle").unwrap_err();
        assert!(e.contains("`middle`") && e.contains("`top-left`, `bottom`"), "{e}");
    }
}
