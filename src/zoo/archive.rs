//! Unpacking what was downloaded, without trusting it: a zip member may not
//! leave the folder it is unpacked into (no `..`, no absolute path, no link),
//! and the bytes written are counted against a bound, so a zip bomb stops
//! with an error instead of filling the disk. From a tar only named files
//! are read, into memory, each within a bound; nothing is written by a
//! member's name.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// Most members a dataset zip may have (maps, the largest, has about 4,400).
const MAX_MEMBERS: usize = 1_000_000;

/// Unpack `zip` into the folder `into` (which must not exist yet), writing at
/// most `limit` bytes. On error `into` is removed again.
pub fn extract_zip(zip: &Path, into: &Path, limit: u64) -> Result<()> {
    let result = unpack(zip, into, limit);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(into);
    }
    result
}

fn unpack(zip: &Path, into: &Path, limit: u64) -> Result<()> {
    let bad = |why: String| Error::archive(zip, why);
    let file = File::open(zip).map_err(|e| Error::io(zip, e))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| bad(format!("not a readable zip archive ({e})")))?;
    if archive.len() > MAX_MEMBERS {
        return Err(bad(format!("has {} members, more than a dataset has", archive.len())));
    }
    // Every member is checked before anything is written.
    for i in 0..archive.len() {
        let member = archive.by_index_raw(i).map_err(|e| bad(format!("member {i} is unreadable ({e})")))?;
        let name = member.name().map(|n| n.into_owned()).unwrap_or_else(|_| format!("member {i}"));
        if escapes(&name) || member.enclosed_name().is_none() {
            return Err(bad(format!("member {name:?} would be written outside the folder; nothing was unpacked")));
        }
        if member.is_symlink() {
            return Err(bad(format!("member {name:?} is a link; nothing was unpacked")));
        }
    }
    std::fs::create_dir_all(into).map_err(|e| Error::io(into, e))?;
    let mut left = limit;
    for i in 0..archive.len() {
        let mut member = archive.by_index(i).map_err(|e| bad(format!("member {i} is unreadable ({e})")))?;
        let relative = member.enclosed_name().expect("checked above");
        let path = into.join(&relative);
        if member.is_dir() {
            std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
            continue;
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut out = File::create(&path).map_err(|e| Error::io(&path, e))?;
        // Counted as written, not as the header claims.
        let copied = copy_bounded(&mut member, &mut out, left)
            .map_err(|e| bad(format!("member {:?}: {e}", relative.display())))?;
        match copied {
            Some(n) => left -= n,
            None => {
                return Err(bad(format!(
                    "unpacks to more than {limit} bytes (a zip bomb, or not this dataset); nothing was kept"
                )));
            }
        }
    }
    Ok(())
}

/// Whether a member's name, as stored, is absolute (`/x`, `\\x`, `C:x`) or
/// climbs (`..` anywhere): refused even where the zip reader would make it
/// relative, since the archive was not made for this folder.
fn escapes(name: &str) -> bool {
    let absolute = name.starts_with(['/', '\\']) || name.as_bytes().get(1) == Some(&b':');
    absolute || name.split(['/', '\\']).any(|part| part == "..")
}

/// Copy at most `limit` bytes; `None` when there was more.
fn copy_bounded(from: &mut impl Read, to: &mut impl Write, limit: u64) -> std::io::Result<Option<u64>> {
    let n = std::io::copy(&mut from.take(limit.saturating_add(1)), to)?;
    Ok((n <= limit).then_some(n))
}

/// The files of a tar archive whose paths end in one of `suffixes`, read
/// into memory, at most `limit` bytes all together: `(suffix, bytes)` in archive order.
pub fn tar_members(tar: &Path, suffixes: &[String], limit: u64) -> Result<Vec<(String, Vec<u8>)>> {
    let bad = |why: String| Error::archive(tar, why);
    let file = File::open(tar).map_err(|e| Error::io(tar, e))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let mut found = Vec::new();
    let mut left = limit;
    let entries = archive.entries().map_err(|e| bad(format!("not a readable tar archive ({e})")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("truncated or corrupt tar archive ({e})")))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(|e| bad(format!("a member's name is unreadable ({e})")))?.to_string_lossy().into_owned();
        let Some(suffix) = suffixes.iter().find(|s| path == **s || path.ends_with(&format!("/{s}"))) else { continue };
        let size = entry.size();
        let mut bytes = Vec::new();
        match copy_bounded(&mut entry, &mut bytes, left) {
            Ok(Some(n)) if n == size => left -= n,
            Ok(Some(n)) => return Err(bad(format!("truncated tar archive (member {path:?} has {n} of {size} bytes)"))),
            Ok(None) => return Err(bad(format!("its generators hold more than {limit} bytes; nothing was kept"))),
            Err(e) => return Err(bad(format!("truncated or corrupt tar archive ({e})"))),
        }
        found.push((suffix.clone(), bytes));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::escapes;

    #[test]
    fn names_that_leave_the_folder() {
        for bad in ["/etc/passwd", "\\windows\\x", "C:evil", "../x", "a/../../x", "a/..", "a\\..\\..\\x"] {
            assert!(escapes(bad), "{bad}");
        }
        for good in ["horse2zebra/trainA/1.jpg", "a..b/c", "..hidden", "x/y/"] {
            assert!(!escapes(good), "{good}");
        }
    }
}
