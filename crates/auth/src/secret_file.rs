//! The JWT secret `chatd` generates and keeps in its data directory when none is configured.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::RngCore;

/// File name of the generated secret inside the data directory.
pub const SECRET_FILE_NAME: &str = "jwt-secret";

/// Reads the secret kept in `data_dir`, if there is one.
pub fn read_secret(data_dir: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(data_dir.join(SECRET_FILE_NAME)) {
        Ok(s) => Ok(Some(s.trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Returns the kept secret, creating a random one (readable by the owner only) when absent.
/// The bool is true when it was created now.
pub fn load_or_create_secret(data_dir: &Path) -> std::io::Result<(String, PathBuf, bool)> {
    let path = data_dir.join(SECRET_FILE_NAME);
    if let Some(secret) = read_secret(data_dir)? {
        return Ok((secret, path, false));
    }
    // The data directory holds this secret and the database: its owner's only.
    let mut dir = std::fs::DirBuilder::new();
    dir.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        dir.mode(0o700);
    }
    dir.create(data_dir)?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(&path) {
        Ok(mut file) => {
            file.write_all(secret.as_bytes())?;
            file.sync_all()?;
            Ok((secret, path, true))
        }
        // Another process created it between our read and our create: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let secret = read_secret(data_dir)?.unwrap_or_default();
            Ok((secret, path, false))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_then_reads_back() {
        let dir = std::env::temp_dir().join(format!("chat-auth-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (first, _, created) = load_or_create_secret(&dir).unwrap();
        assert!(created);
        assert_eq!(first.len(), 64);
        let (second, _, created_again) = load_or_create_secret(&dir).unwrap();
        assert!(!created_again);
        assert_eq!(first, second);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
