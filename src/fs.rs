//! Writing files so that a crash, a full disk or Ctrl-C never leaves a
//! half-written one: write a temporary file beside the target, flush it to
//! disk, then rename it over the target (atomic on POSIX filesystems).
//! The file gets the permissions a plain `File::create` would give it (or
//! keeps those of the file it replaces), not the temporary file's private 0600.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Write `path` atomically with what `fill` writes.
pub fn write_atomic(path: &Path, fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    let (dir, prefix) = temporary_beside(path);
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // 0666 is narrowed by the umask at creation, as for any new file.
        let permissions = std::fs::metadata(path).map(|m| m.permissions()).unwrap_or_else(|_| std::fs::Permissions::from_mode(0o666));
        builder.permissions(permissions);
    }
    let mut tmp = builder.tempfile_in(dir).map_err(|e| Error::io(path, without_temporary_path(e)))?;
    {
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        fill(&mut w).map_err(|e| Error::io(path, e))?;
        w.flush().map_err(|e| Error::io(path, e))?;
    }
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Where a temporary stand-in for `path` goes, and its name's prefix: the
/// same folder (so that renaming it over `path` is atomic), a hidden
/// `.NAME.` start (so that it shows what it is for).
pub fn temporary_beside(path: &Path) -> (PathBuf, String) {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    (dir, format!(".{}.", path.file_name().and_then(|n| n.to_str()).unwrap_or("out")))
}

/// tempfile's errors end in ` at path ".x.png.Ab12Cd.tmp"`: the user named the
/// target, which the error already shows, not a file they never asked for.
fn without_temporary_path(e: std::io::Error) -> std::io::Error {
    let message = e.to_string();
    match message.split_once(" at path ") {
        Some((reason, _)) => std::io::Error::new(e.kind(), reason.to_string()),
        None => e,
    }
}

/// Write `bytes` to `path` atomically.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |w| w.write_all(bytes))
}

/// Read a whole file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}
