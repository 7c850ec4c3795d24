//! API keys: from `[http] api_keys`, or generated at first start. A generated key is
//! printed once (on standard error) and kept in `{data_dir}/api_key`, readable by its owner
//! only (0600); later starts read it back without printing it. With in-memory storage the
//! key lives for the process only (it is printed at every start).

use std::io::Write;
use std::path::Path;

use rand::RngCore;

/// The file a generated key is kept in, under `data_dir`.
pub const KEY_FILE: &str = "api_key";

/// A fresh key: 32 random bytes, hex.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The keys the API accepts: the configured ones, else the one kept under `data_dir`
/// (created if missing, when `persist`), else a new one for this process.
pub fn load(configured: &[String], data_dir: &Path, persist: bool) -> anyhow::Result<Vec<String>> {
    if !configured.is_empty() {
        return Ok(configured.to_vec());
    }
    let path = data_dir.join(KEY_FILE);
    if persist {
        if let Ok(text) = std::fs::read_to_string(&path) {
            let key = text.trim().to_string();
            if key.len() >= 16 {
                tracing::info!(file = %path.display(), "HTTP API key read from the data directory");
                return Ok(vec![key]);
            }
        }
        let key = generate();
        std::fs::create_dir_all(data_dir)?;
        write_private(&path, &key)?;
        eprintln!("roost: generated an HTTP API key (stored in {}, shown only now): {key}", path.display());
        return Ok(vec![key]);
    }
    let key = generate();
    eprintln!("roost: generated an HTTP API key for this run (storage is in memory, so it is not kept): {key}");
    Ok(vec![key])
}

fn write_private(path: &Path, key: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    writeln!(f, "{key}")?;
    f.sync_all()
}

/// Whether `given` is one of `keys`, in time independent of where they differ.
pub fn matches(keys: &[String], given: &str) -> bool {
    let mut any = false;
    for k in keys {
        let (a, b) = (k.as_bytes(), given.as_bytes());
        let mut diff = a.len() ^ b.len();
        for (i, x) in a.iter().enumerate() {
            diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
        }
        any |= diff == 0;
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_kept_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let first = load(&[], dir.path(), true).unwrap();
        assert_eq!(first[0].len(), 64);
        let again = load(&[], dir.path(), true).unwrap();
        assert_eq!(first, again);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(load(&["k".repeat(16)], dir.path(), true).unwrap(), vec!["k".repeat(16)]);
        assert!(matches(&first, &first[0]) && !matches(&first, "nope") && !matches(&first, &first[0][..63]));
    }
}
