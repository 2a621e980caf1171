//! The database's files readable by their owner only: the directory is created 0700 and
//! the database file 0600 before SQLite opens it. SQLite gives the `-wal` and `-shm` files
//! the database file's mode, so every message and push token stays private to the
//! server's user. An existing database that others could read is tightened.

use std::path::Path;

use crate::error::{StoreError, StoreResult};

#[cfg(unix)]
pub(super) fn prepare(db: &Path) -> StoreResult<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let failed = |what: &str, path: &Path, e: std::io::Error| {
        StoreError::Unavailable(format!("{what} {}: {e}", path.display()))
    };
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| failed("create", dir, e))?;
    }
    // Created here (not by SQLite, which would follow the umask), or left as it is.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(db)
    {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(failed("create", db, e)),
    }
    for suffix in ["", "-wal", "-shm"] {
        let path = db.with_file_name(format!(
            "{}{suffix}",
            db.file_name().unwrap_or_default().to_string_lossy()
        ));
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "database file was readable by others; made 0600");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| failed("restrict", &path, e))?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
pub(super) fn prepare(db: &Path) -> StoreResult<()> {
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Unavailable(format!("create {}: {e}", dir.display())))?;
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_database_and_its_directory_are_private_and_an_old_one_is_tightened() {
        let root = tempfile::tempdir().unwrap();
        let db = root.path().join("data").join("chat.db");
        prepare(&db).unwrap();
        assert_eq!(mode(db.parent().unwrap()), 0o700);
        assert_eq!(mode(&db), 0o600);

        let old = root.path().join("old.db");
        let wal = root.path().join("old.db-wal");
        for path in [&old, &wal] {
            std::fs::write(path, b"").unwrap();
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        prepare(&old).unwrap();
        assert_eq!((mode(&old), mode(&wal)), (0o600, 0o600));
    }
}
