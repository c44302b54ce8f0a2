//! The live settings: the switches and limits of the gateway configuration that are safe to
//! change while it runs (secure mode, the table limits, the longest lease, the UPnP switch).
//!
//! The admin page validates them here, the control thread persists them to
//! `<state_dir>/settings.toml` (write to a temporary file, fsync, rename, fsync the
//! directory: a crash leaves the old file or the new one, never half of one) and applies
//! them to the table; at start they are loaded over the configuration file's values.
//! Lowering a limit does not evict existing mappings: it applies to new ones (as
//! `gateway_core::Limits` says), and a shorter lease maximum applies to new leases.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::GatewayConfig;

/// File name of the persisted settings inside the state directory.
pub const SETTINGS_FILE: &str = "settings.toml";
/// Largest `max_mappings` / `max_mappings_per_host`: one mapping per port and protocol.
pub const MAX_TABLE_LIMIT: usize = 2 * 65_535;
/// Largest `max_lease_seconds` (IGD:2's maximum, one week).
pub const MAX_LEASE_LIMIT: u32 = 604_800;

/// The settings the admin page may change live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveSettings {
    /// A LAN host may map ports only to itself.
    pub secure_mode: bool,
    /// Most mappings in the table (1..=131070).
    pub max_mappings: usize,
    /// Most mappings per internal client (1..=131070).
    pub max_mappings_per_host: usize,
    /// Longest lease granted, seconds (1..=604800); longer requests are clamped.
    pub max_lease_seconds: u32,
    /// UPnP IGD control on; off, every WANIPConnection action is answered 501 ActionFailed
    /// (UDA: "the current state of the service prevents invoking that action"), while the
    /// descriptions, SSDP and GENA stay up so that clients see the change.
    pub upnp_enabled: bool,
}

/// A setting out of range, with its name and a sentence for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SettingsError {
    /// The setting's name (the form field).
    pub field: &'static str,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl LiveSettings {
    /// The values of a configuration (UPnP on).
    pub fn from_config(config: &GatewayConfig) -> LiveSettings {
        LiveSettings {
            secure_mode: config.secure_mode,
            max_mappings: config.max_mappings,
            max_mappings_per_host: config.max_mappings_per_host,
            max_lease_seconds: config.max_lease_seconds,
            upnp_enabled: true,
        }
    }

    /// Write these values into a configuration (the UPnP switch has no config setting).
    pub fn apply_to(&self, config: &mut GatewayConfig) {
        config.secure_mode = self.secure_mode;
        config.max_mappings = self.max_mappings;
        config.max_mappings_per_host = self.max_mappings_per_host;
        config.max_lease_seconds = self.max_lease_seconds;
    }

    /// Check every range.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let table_limit = |field, value: usize| {
            if (1..=MAX_TABLE_LIMIT).contains(&value) {
                Ok(())
            } else {
                Err(SettingsError {
                    field,
                    message: format!("must be a whole number from 1 to {MAX_TABLE_LIMIT}"),
                })
            }
        };
        table_limit("max_mappings", self.max_mappings)?;
        table_limit("max_mappings_per_host", self.max_mappings_per_host)?;
        if !(1..=MAX_LEASE_LIMIT).contains(&self.max_lease_seconds) {
            return Err(SettingsError {
                field: "max_lease_seconds",
                message: format!("must be a whole number from 1 to {MAX_LEASE_LIMIT}"),
            });
        }
        Ok(())
    }

    /// Read `path`: `Ok(None)` when it does not exist; an unreadable, unparsable or
    /// out-of-range file is an error (the caller decides whether to start without it).
    pub fn load(path: &Path) -> Result<Option<LiveSettings>, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let settings: LiveSettings = toml::from_str(&text).map_err(|e| e.to_string())?;
        settings.validate().map_err(|e| e.to_string())?;
        Ok(Some(settings))
    }

    /// Write to `path` atomically and durably: temporary file, fsync, rename, fsync of
    /// the directory.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let text = toml::to_string(self).map_err(io::Error::other)?;
        let body = format!(
            "# Written by the Plugline admin page; loaded over the config file at start.\n{text}"
        );
        write_atomically(path, body.as_bytes(), 0o644)
    }
}

/// Replace `path` with `data` so that a crash leaves either the old or the new content:
/// write a temporary file beside it (with `mode`), fsync it, rename it over `path`, fsync
/// the directory.
pub(crate) fn write_atomically(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LiveSettings {
        LiveSettings {
            secure_mode: false,
            max_mappings: 100,
            max_mappings_per_host: 7,
            max_lease_seconds: 3600,
            upnp_enabled: false,
        }
    }

    #[test]
    fn round_trip_through_the_file() {
        let dir = std::env::temp_dir().join(format!("pl-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(SETTINGS_FILE);
        let _ = std::fs::remove_file(&path);
        assert_eq!(LiveSettings::load(&path), Ok(None));
        sample().save(&path).unwrap();
        assert_eq!(LiveSettings::load(&path), Ok(Some(sample())));
        std::fs::write(&path, "max_mappings = 0\n").unwrap();
        assert!(LiveSettings::load(&path).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn ranges_are_checked_with_the_field_name() {
        sample().validate().unwrap();
        let bad = LiveSettings {
            max_mappings_per_host: 0,
            ..sample()
        };
        assert_eq!(bad.validate().unwrap_err().field, "max_mappings_per_host");
        let bad = LiveSettings {
            max_lease_seconds: 604_801,
            ..sample()
        };
        assert_eq!(bad.validate().unwrap_err().field, "max_lease_seconds");
        let bad = LiveSettings {
            max_mappings: MAX_TABLE_LIMIT + 1,
            ..sample()
        };
        assert_eq!(bad.validate().unwrap_err().field, "max_mappings");
    }
}
