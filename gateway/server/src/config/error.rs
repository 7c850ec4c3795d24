//! [`ConfigError`]: what is wrong with a config file, always naming the dotted key at fault.
//!
//! toml reports type errors with a byte span, not a key (it tracks keys internally but does
//! not expose them), so [`ConfigError::from_toml`] finds the key whose name or value covers
//! the span in the parsed document. That keeps one dependency (toml) and gives messages like
//! `mqtt.max_packet_size: invalid type: string "big", expected an integer`.

use std::fmt;
use std::path::PathBuf;

use toml::de::{DeTable, DeValue};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The text is not TOML.
    #[error("{}", SyntaxDisplay { position: *position, message })]
    Syntax {
        /// 1-based line and column, when toml knows them.
        position: Option<(usize, usize)>,
        message: String,
    },
    /// A key has a wrong type or value, or is not a key of the schema.
    #[error("{key}: {message}")]
    Invalid {
        /// Dotted path, e.g. `mqtt.max_packet_size` or `mqtt.bind[1]`.
        key: String,
        message: String,
    },
}

impl ConfigError {
    /// The dotted key the error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            ConfigError::Read { .. } | ConfigError::Syntax { .. } => None,
        }
    }

    /// Turns a toml error on `text` into an error naming its key, or a syntax error at a
    /// line and column when no key covers it.
    pub(super) fn from_toml(text: &str, error: &toml::de::Error) -> ConfigError {
        let message = tidy(error.message());
        let Some(span) = error.span() else {
            return ConfigError::Syntax { position: None, message };
        };
        // A document with a syntax error has no keys to find; the first parse already failed
        // the same way, so this parse only succeeds for errors found while deserializing.
        if let Ok(document) = DeTable::parse(text)
            && let Some(key) = key_at(document.get_ref(), "", span.start)
        {
            return ConfigError::Invalid { key, message };
        }
        ConfigError::Syntax { position: Some(line_column(text, span.start)), message }
    }
}

struct SyntaxDisplay<'a> {
    position: Option<(usize, usize)>,
    message: &'a str,
}

impl fmt::Display for SyntaxDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, column)) => write!(f, "TOML syntax error at line {line}, column {column}: {}", self.message),
            None => write!(f, "TOML syntax error: {}", self.message),
        }
    }
}

/// serde speaks of fields and variants; the file has keys and values. The key is already in
/// front of the message, so an unknown key's name is not repeated.
fn tidy(message: &str) -> String {
    let message = message.trim_end();
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((_, after)) = rest.split_once('`')
    {
        return format!("unknown key{after}");
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        return format!("unknown value {rest}");
    }
    message.to_string()
}

/// The innermost key whose name or value covers byte `pos`, as a dotted path.
fn key_at(table: &DeTable<'_>, prefix: &str, pos: usize) -> Option<String> {
    for (key, value) in table {
        let path = join(prefix, key.get_ref());
        if let Some(inner) = inside(value.get_ref(), &path, pos) {
            return Some(inner);
        }
        if covers(key.span(), pos) || covers(value.span(), pos) {
            return Some(path);
        }
    }
    None
}

fn inside(value: &DeValue<'_>, path: &str, pos: usize) -> Option<String> {
    match value {
        DeValue::Table(table) => key_at(table, path, pos),
        DeValue::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let path = format!("{path}[{i}]");
            inside(item.get_ref(), &path, pos).or_else(|| covers(item.span(), pos).then_some(path))
        }),
        _ => None,
    }
}

fn covers(span: std::ops::Range<usize>, pos: usize) -> bool {
    span.contains(&pos) || span.start == pos
}

fn join(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if bare { key.to_string() } else { format!("{key:?}") };
    if prefix.is_empty() { key } else { format!("{prefix}.{key}") }
}

/// 1-based line and column (in characters) of byte `pos`.
fn line_column(text: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(text.len());
    let before = text.get(..pos).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}
