//! The one loading path of every configuration file (training, search, service): TOML file,
//! `key=value` overrides in order, deserialisation with unknown keys rejected, then validation.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::config::ConfigError;

/// Reads `path` (if given), applies `key=value` overrides in order, deserialises and runs
/// `validate`; every error names the file or key.
pub(crate) fn load_validated<T: DeserializeOwned>(
    path: Option<&Path>,
    overrides: &[String],
    validate: impl FnOnce(&T) -> Result<(), ConfigError>,
) -> Result<T, ConfigError> {
    let cfg: T = load_document(toml::Table::new(), path, overrides.iter().cloned())?;
    validate(&cfg)?;
    Ok(cfg)
}

/// Reads a TOML file (or starts empty), applies `key=value` overrides in order, and
/// deserialises the result; unknown keys and bad values are errors naming the key.
///
/// `base` holds the defaults the file and overrides are layered on (needed where a nested
/// section's defaults differ from its type's own, as in the service's `training` section).
pub(crate) fn load_document<T: DeserializeOwned>(
    base: toml::Table,
    path: Option<&Path>,
    overrides: impl IntoIterator<Item = String>,
) -> Result<T, ConfigError> {
    let mut doc = base;
    if let Some(p) = path {
        merge(&mut doc, read_table(p)?);
    }
    for o in overrides {
        apply_override(&mut doc, &o)?;
    }
    toml::Value::Table(doc)
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))
}

/// Reads and parses one TOML file; errors name the file.
pub(crate) fn read_table(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })?;
    text.parse::<toml::Table>()
        .map_err(|e| ConfigError::Parse(format!("{}: {e}", path.display())))
}

/// Deep-merges `top` into `base`: tables merge key by key, other values replace.
fn merge(base: &mut toml::Table, top: toml::Table) {
    for (k, v) in top {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => merge(b, t),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Sets `a.b.c = value` in a TOML table; the value is parsed as TOML (number, bool, array,
/// quoted string) and falls back to a bare string.
pub(crate) fn apply_override(doc: &mut toml::Table, item: &str) -> Result<(), ConfigError> {
    let (key, raw) = item
        .split_once('=')
        .ok_or_else(|| ConfigError::Override(item.into()))?;
    let key = key.trim();
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(ConfigError::Override(item.into()));
    }
    let value = format!("v = {}", raw.trim())
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.trim().to_string()));
    let mut table = doc;
    for p in &parts[..parts.len() - 1] {
        let entry = table
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry.as_table_mut().ok_or_else(|| ConfigError::Invalid {
            key: key.into(),
            message: format!("`{p}` is not a section"),
        })?;
    }
    table.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}
