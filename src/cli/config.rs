//! The configuration file (TOML). Unknown keys are refused so that a typo is not silently
//! ignored. See `docs/certgate.example.toml`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::control::ControlError;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Data directory (SQLite store and master key file).
    pub data_dir: Option<PathBuf>,
    /// Store URL: sqlite://PATH or postgres://...
    pub store: Option<String>,
    /// File holding the master key (base64 of 32 bytes).
    pub master_key_file: Option<PathBuf>,
}

impl ConfigFile {
    pub fn read(path: &Path) -> Result<Self, ControlError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ControlError::usage(
                "usage",
                format!("cannot read the config file {}: {e}", path.display()),
                "check the --config path",
            )
        })?;
        toml::from_str(&text).map_err(|e| {
            ControlError::usage(
                "usage",
                format!("the config file {} is not valid: {}", path.display(), e.message()),
                "see docs/certgate.example.toml for the keys certgate knows",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_in_docs_parses_and_sets_every_key() {
        let text = include_str!("../../docs/certgate.example.toml");
        let cfg: ConfigFile = toml::from_str(text).expect("docs/certgate.example.toml must parse");
        assert!(cfg.data_dir.is_some() && cfg.store.is_some() && cfg.master_key_file.is_some());
    }
}
