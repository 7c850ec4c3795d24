//! The users file (`[auth] password_file`), written by `roost passwd FILE USER` as
//! `mosquitto_passwd` writes Mosquitto's: one `username:hash` line per user, the hash an
//! argon2id PHC string, optionally followed by `:client_id` to bind the user to one client
//! id. Lines starting with `#` are comments.
//!
//! As a chain source: a username in the file with the right password (and client id, if
//! bound) is allowed, with a wrong one denied; a username not in the file is ignored.
//! The file is read again when its modification time changes, so `roost passwd` takes
//! effect without a restart. Hashes are checked on the blocking pool: argon2 is meant to
//! be slow.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use parking_lot::Mutex;

use super::chain::{AuthSource, Verdict};
use super::{AuthDecision, BoxFuture, Credentials};

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: {what}")]
    Syntax { path: PathBuf, line: usize, what: String },
    #[error("username {0:?} must be non-empty and must not contain ':' or a control character")]
    BadUsername(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// One user of the file.
#[derive(Clone)]
pub struct UserEntry {
    pub username: String,
    /// The argon2 PHC string (never logged).
    pub hash: String,
    pub client_id: Option<String>,
}

impl std::fmt::Debug for UserEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserEntry")
            .field("username", &self.username)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Parses the file's text. Hash strings are checked to be PHC strings here, so a broken
/// file is refused at start-up rather than at the first login.
pub fn parse(path: &Path, text: &str) -> Result<Vec<UserEntry>, UsersError> {
    let mut out: Vec<UserEntry> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let syntax = |what: &str| UsersError::Syntax { path: path.to_path_buf(), line: i + 1, what: what.to_string() };
        let mut parts = line.splitn(3, ':');
        let username = parts.next().unwrap_or_default();
        let hash = parts.next().ok_or_else(|| syntax("expected username:hash[:client_id]"))?;
        let client_id = parts.next().filter(|c| !c.is_empty()).map(String::from);
        if username.is_empty() {
            return Err(syntax("empty username"));
        }
        if PasswordHash::new(hash).is_err() {
            return Err(syntax("the hash is not an argon2 PHC string (write it with `roost passwd`)"));
        }
        if out.iter().any(|u| u.username == username) {
            return Err(syntax(&format!("user {username:?} is listed twice")));
        }
        out.push(UserEntry { username: username.to_string(), hash: hash.to_string(), client_id });
    }
    Ok(out)
}

/// Writes entries back in the file's format.
pub fn render(entries: &[UserEntry]) -> String {
    let mut s = String::new();
    for e in entries {
        s.push_str(&e.username);
        s.push(':');
        s.push_str(&e.hash);
        if let Some(c) = &e.client_id {
            s.push(':');
            s.push_str(c);
        }
        s.push('\n');
    }
    s
}

/// An argon2id hash of `password` with a fresh random salt.
pub fn hash_password(password: &[u8]) -> Result<String, UsersError> {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| UsersError::Hash(e.to_string()))?;
    Argon2::default().hash_password(password, &salt).map(|h| h.to_string()).map_err(|e| UsersError::Hash(e.to_string()))
}

/// True if `password` matches the PHC string `hash`.
pub fn verify_password(password: &[u8], hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(h) => Argon2::default().verify_password(password, &h).is_ok(),
        Err(_) => false,
    }
}

/// Adds or updates `username` in the file at `path` (created if missing), keeping the other
/// lines; what `roost passwd` does. `client_id`: `Some` binds the user to it.
pub fn set_user(path: &Path, username: &str, password: &[u8], client_id: Option<&str>) -> Result<(), UsersError> {
    if username.is_empty() || username.contains(':') || username.chars().any(char::is_control) {
        return Err(UsersError::BadUsername(username.to_string()));
    }
    let io = |source| UsersError::Io { path: path.to_path_buf(), source };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(e)),
    };
    let mut entries = parse(path, &text)?;
    let hash = hash_password(password)?;
    match entries.iter_mut().find(|e| e.username == username) {
        Some(e) => {
            e.hash = hash;
            if let Some(c) = client_id {
                e.client_id = Some(c.to_string());
            }
        }
        None => {
            entries.push(UserEntry { username: username.to_string(), hash, client_id: client_id.map(String::from) })
        }
    }
    // Write a sibling file and rename it over, so a reader never sees half a file; the file
    // holds password hashes, so only its owner may read it.
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write as _;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp).map_err(io)?;
        f.write_all(render(&entries).as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    keep_ownership(path, &tmp);
    std::fs::rename(&tmp, path).map_err(io)
}

/// An existing users file keeps its mode, owner and group through the rewrite: a packaged
/// `/etc/roost/users` is `root:roost 0640` so that the service user can read it, and
/// `roost passwd` run as root must not take that away (the gateway would fail to start).
#[cfg(unix)]
fn keep_ownership(old: &Path, new: &Path) {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(meta) = std::fs::metadata(old) else { return };
    let _ = std::fs::set_permissions(new, meta.permissions());
    // Only root may give the file away; anyone else keeps their own ownership, as before.
    let _ = std::os::unix::fs::chown(new, Some(meta.uid()), Some(meta.gid()));
}

#[cfg(not(unix))]
fn keep_ownership(_old: &Path, _new: &Path) {}

struct Loaded {
    modified: Option<SystemTime>,
    users: Arc<HashMap<String, UserEntry>>,
}

/// The users file as a chain source.
pub struct PasswordFile {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

impl PasswordFile {
    /// Reads the file; an unreadable or malformed file is an error (start-up refuses).
    pub fn open(path: &Path) -> Result<PasswordFile, UsersError> {
        let (modified, users) = Self::read(path)?;
        Ok(PasswordFile { path: path.to_path_buf(), loaded: Mutex::new(Loaded { modified, users: Arc::new(users) }) })
    }

    fn read(path: &Path) -> Result<(Option<SystemTime>, HashMap<String, UserEntry>), UsersError> {
        let io = |source| UsersError::Io { path: path.to_path_buf(), source };
        let modified = std::fs::metadata(path).map_err(io)?.modified().ok();
        let text = std::fs::read_to_string(path).map_err(io)?;
        let users = parse(path, &text)?.into_iter().map(|u| (u.username.clone(), u)).collect();
        Ok((modified, users))
    }

    /// The users, re-read if the file changed. A file that became unreadable or malformed
    /// keeps the last good contents (logged).
    fn users(&self) -> Arc<HashMap<String, UserEntry>> {
        let mut loaded = self.loaded.lock();
        let now = std::fs::metadata(&self.path).ok().and_then(|m| m.modified().ok());
        if now.is_some() && now != loaded.modified {
            match Self::read(&self.path) {
                Ok((modified, users)) => {
                    tracing::info!(file = %self.path.display(), users = users.len(), "users file reloaded");
                    *loaded = Loaded { modified, users: Arc::new(users) };
                }
                Err(e) => {
                    tracing::warn!(error = %e, "users file changed but cannot be read; keeping the previous users");
                    loaded.modified = now;
                }
            }
        }
        loaded.users.clone()
    }

    pub fn len(&self) -> usize {
        self.users().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl AuthSource for PasswordFile {
    fn name(&self) -> &str {
        "password_file"
    }

    fn check<'a>(&'a self, creds: &'a Credentials<'a>) -> BoxFuture<'a, Verdict> {
        Box::pin(async move {
            let Some(username) = creds.client.username.as_deref() else { return Verdict::Ignore };
            let users = self.users();
            let Some(user) = users.get(username) else { return Verdict::Ignore };
            let Some(password) = creds.password.cloned() else { return Verdict::Deny(AuthDecision::BadCredentials) };
            let hash = user.hash.clone();
            let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash)).await.unwrap_or(false);
            if !ok {
                return Verdict::Deny(AuthDecision::BadCredentials);
            }
            match &user.client_id {
                Some(bound) if bound != creds.client.client_id.as_str() => {
                    crate::peer_log!(INFO, "login.bound_client_id", creds.client.peer, username, client_id = %creds.client.client_id, "user is bound to another client id");
                    Verdict::Deny(AuthDecision::NotAuthorized)
                }
                _ => Verdict::Allow,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_parse_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        set_user(&path, "alice", b"secret", None).unwrap();
        set_user(&path, "bob", b"pw", Some("bob-device")).unwrap();
        set_user(&path, "alice", b"new", None).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("secret") && !text.contains(":new"), "{text}");
        let users = parse(&path, &text).unwrap();
        assert_eq!(users.len(), 2);
        assert!(verify_password(b"new", &users[0].hash));
        assert!(!verify_password(b"secret", &users[0].hash));
        assert_eq!(users[1].client_id.as_deref(), Some("bob-device"));
        assert!(set_user(&path, "a:b", b"x", None).is_err());
        assert!(parse(&path, "x:plain\n").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_rewrite_keeps_the_files_mode() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        set_user(&path, "alice", b"secret", None).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
        // A new file is still private to its owner.
        let fresh = dir.path().join("fresh");
        set_user(&fresh, "bob", b"pw", None).unwrap();
        assert_eq!(std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
