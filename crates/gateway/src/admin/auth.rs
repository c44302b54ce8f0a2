//! Who may use the admin page: the password (an argon2 hash), sessions with their CSRF
//! tokens, and the login rate limit.
//!
//! - The password is either set in the configuration as an argon2 PHC string
//!   (`admin_password_hash`) or generated at first start: 16 random letters and digits
//!   (about 95 bits), logged once (`admin password (shown once): …`) and stored only as an
//!   argon2id hash in `<state_dir>/admin.hash` (mode 0600). To get a new one, delete that
//!   file and restart.
//! - A session is a random 256-bit cookie value (`plugline_session`, HttpOnly,
//!   SameSite=Strict, Path=/) with its own random CSRF token; it ends after
//!   [`SESSION_IDLE`] without a request or [`SESSION_MAX_AGE`] in all, and at most
//!   [`MAX_SESSIONS`] live at once (the least recently used goes first).
//! - Failed logins are counted per client address: [`LOGIN_FAILURES`] in [`LOGIN_WINDOW`]
//!   and further attempts are answered 429 until the window has moved on. At most
//!   [`VERIFY_CONCURRENCY`] argon2 verifications run at once, so a flood of attempts cannot
//!   take every core.
//!
//! Random bytes come from `/dev/urandom` (the kernel CSPRNG).

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read};
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use super::settings::write_atomically;

/// File name of the generated password's hash inside the state directory.
pub const HASH_FILE: &str = "admin.hash";
/// Length of a generated password.
pub const GENERATED_PASSWORD_LEN: usize = 16;
/// A session unused this long ends.
pub const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after login, used or not.
pub const SESSION_MAX_AGE: Duration = Duration::from_secs(12 * 3600);
/// Sessions alive at once.
pub const MAX_SESSIONS: usize = 16;
/// Failed logins per client address within [`LOGIN_WINDOW`] before 429.
pub const LOGIN_FAILURES: usize = 5;
/// The window of the login rate limit.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(60);
/// Client addresses whose failures are remembered.
pub const MAX_TRACKED_CLIENTS: usize = 1024;
/// Password verifications running at once (argon2 is deliberately costly).
pub const VERIFY_CONCURRENCY: usize = 2;
/// Name of the session cookie.
pub const COOKIE_NAME: &str = "plugline_session";

const PASSWORD_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `n` bytes from the kernel's CSPRNG.
pub fn random_bytes(n: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf)
}

/// A 256-bit random token, hex.
pub fn random_token() -> io::Result<String> {
    Ok(random_bytes(32)?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// A new password of [`GENERATED_PASSWORD_LEN`] letters and digits, unbiased (rejection
/// sampling).
pub fn generate_password() -> io::Result<String> {
    let mut out = String::with_capacity(GENERATED_PASSWORD_LEN);
    // 248 = 4 * 62: bytes at or above it would favour the first letters.
    while out.len() < GENERATED_PASSWORD_LEN {
        for b in random_bytes(32)? {
            if b < 248 && out.len() < GENERATED_PASSWORD_LEN {
                out.push(char::from(PASSWORD_ALPHABET[usize::from(b) % 62]));
            }
        }
    }
    Ok(out)
}

/// The argon2id PHC string of `password` (default parameters: 19 MiB, 2 passes), with a
/// random 128-bit salt. What `admin_password_hash` in the configuration takes.
pub fn hash_password(password: &str) -> io::Result<String> {
    let salt =
        SaltString::encode_b64(&random_bytes(16)?).map_err(|e| io::Error::other(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| io::Error::other(e.to_string()))
}

/// Whether `text` is a PHC string argon2 can verify against.
pub fn is_valid_hash(text: &str) -> bool {
    PasswordHash::new(text).is_ok()
}

/// Whether `password` matches the PHC string `hash` (constant-time comparison inside).
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .and_then(|h| Argon2::default().verify_password(password.as_bytes(), &h))
        .is_ok()
}

/// Why the password could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The stored hash file is unreadable or not a PHC string.
    #[error("{path}: {message}")]
    Stored {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Generating or storing a new password failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// The password hash in force: the configuration's, else the stored one, else a new
/// password is generated, logged once and its hash stored (mode 0600).
pub fn bootstrap(configured: Option<&str>, state_dir: &Path) -> Result<String, BootstrapError> {
    if let Some(hash) = configured {
        return Ok(hash.trim().to_owned());
    }
    let path = state_dir.join(HASH_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let hash = text.trim().to_owned();
            if is_valid_hash(&hash) {
                return Ok(hash);
            }
            return Err(BootstrapError::Stored {
                path: path.display().to_string(),
                message: "not an argon2 hash (delete the file to get a new password)".into(),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(BootstrapError::Stored {
                path: path.display().to_string(),
                message: e.to_string(),
            })
        }
    }
    let password = generate_password()?;
    let hash = hash_password(&password)?;
    write_atomically(&path, format!("{hash}\n").as_bytes(), 0o600)?;
    tracing::warn!("admin password (shown once): {password}");
    Ok(hash)
}

/// Compare two secrets in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug)]
struct Session {
    csrf: String,
    created: Instant,
    last_used: Instant,
}

/// The live sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Open a session: (cookie value, CSRF token).
    pub fn open(&self) -> io::Result<(String, String)> {
        let (id, csrf) = (random_token()?, random_token()?);
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| alive(s, now));
        while map.len() >= MAX_SESSIONS {
            let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Session {
                csrf: csrf.clone(),
                created: now,
                last_used: now,
            },
        );
        Ok((id, csrf))
    }

    /// The CSRF token of the live session `id` (and mark it used).
    pub fn check(&self, id: &str) -> Option<String> {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let session = map.get_mut(id)?;
        if !alive(session, now) {
            map.remove(id);
            return None;
        }
        session.last_used = now;
        Some(session.csrf.clone())
    }

    /// End the session `id`.
    pub fn close(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

fn alive(s: &Session, now: Instant) -> bool {
    now.duration_since(s.last_used) < SESSION_IDLE
        && now.duration_since(s.created) < SESSION_MAX_AGE
}

/// Failed logins per client address.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<Ipv4Addr, VecDeque<Instant>>>,
}

impl LoginLimiter {
    /// `Err(seconds to wait)` when `client` has used up its failures.
    pub fn check(&self, client: Ipv4Addr) -> Result<(), u64> {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let Some(times) = map.get_mut(&client) else {
            return Ok(());
        };
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= LOGIN_WINDOW)
        {
            times.pop_front();
        }
        if times.len() < LOGIN_FAILURES {
            if times.is_empty() {
                map.remove(&client);
            }
            return Ok(());
        }
        let wait = times
            .front()
            .map(|t| LOGIN_WINDOW.saturating_sub(now.duration_since(*t)))
            .unwrap_or_default();
        Err(wait.as_secs().max(1))
    }

    /// Count a failed login of `client`.
    pub fn failed(&self, client: Ipv4Addr) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_TRACKED_CLIENTS && !map.contains_key(&client) {
            map.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < LOGIN_WINDOW)
            });
            if map.len() >= MAX_TRACKED_CLIENTS {
                // Still full of recent failures: forget the one that failed longest ago.
                if let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, t)| t.back().copied())
                    .map(|(ip, _)| *ip)
                {
                    map.remove(&oldest);
                }
            }
        }
        let times = map.entry(client).or_default();
        times.push_back(now);
        while times.len() > LOGIN_FAILURES {
            times.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_alphanumeric_and_differ() {
        let a = generate_password().unwrap();
        let b = generate_password().unwrap();
        assert_eq!(a.len(), GENERATED_PASSWORD_LEN);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn hash_and_verify() {
        let hash = hash_password("secret").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(is_valid_hash(&hash));
        assert!(verify_password(&hash, "secret"));
        assert!(!verify_password(&hash, "Secret"));
        assert!(!verify_password("not a hash", "secret"));
    }

    #[test]
    fn bootstrap_generates_once_and_keeps_the_hash() {
        let dir = std::env::temp_dir().join(format!("pl-auth-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let first = bootstrap(None, &dir).unwrap();
        let again = bootstrap(None, &dir).unwrap();
        assert_eq!(first, again);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(HASH_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(bootstrap(Some(" $x "), &dir).unwrap(), "$x");
        std::fs::write(dir.join(HASH_FILE), "garbage").unwrap();
        assert!(bootstrap(None, &dir).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sessions_open_check_close() {
        let s = Sessions::default();
        let (id, csrf) = s.open().unwrap();
        assert_eq!(s.check(&id), Some(csrf));
        assert_eq!(s.check("nope"), None);
        s.close(&id);
        assert_eq!(s.check(&id), None);
        for _ in 0..MAX_SESSIONS + 3 {
            s.open().unwrap();
        }
        assert!(s.map.lock().unwrap().len() <= MAX_SESSIONS);
    }

    #[test]
    fn limiter_blocks_after_the_failures() {
        let l = LoginLimiter::default();
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        for _ in 0..LOGIN_FAILURES {
            assert_eq!(l.check(ip), Ok(()));
            l.failed(ip);
        }
        assert!(l.check(ip).is_err());
        assert_eq!(l.check(Ipv4Addr::new(10, 0, 0, 2)), Ok(()));
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
