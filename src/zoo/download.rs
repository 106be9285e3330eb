//! Fetching one file over HTTP(S) safely: into `<target>.part`, resumed with
//! a Range request after a cut transfer (a few retries with backoff here, and
//! again on the next run, which finds the `.part`), size and SHA-256 checked
//! where published, renamed to `<target>` only when complete and verified.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::Event;
use crate::error::{Error, Result};

/// What the file must be, where that is published.
#[derive(Clone, Copy, Debug, Default)]
pub struct Expected {
    pub size: Option<u64>,
    pub sha256: Option<&'static str>,
}

/// A file fetched and in place.
#[derive(Clone, Debug)]
pub struct Fetched {
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
}

/// Retries after a failed or cut transfer within one run, waiting 0.5, 1, 2 s.
const RETRIES: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// `target` with `.part` appended: where the bytes go until they are verified.
pub fn part_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    target.with_file_name(name)
}

/// Fetch `url` into `target` (see the module's description). A `target`
/// already there was verified when it was put there and is taken as it is.
pub fn fetch(url: &str, target: &Path, expected: Expected, on: &mut dyn FnMut(Event)) -> Result<Fetched> {
    if target.is_file() {
        let (bytes, sha256) = hash_file(target)?;
        return Ok(Fetched { path: target.to_path_buf(), bytes, sha256 });
    }
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let part = part_path(target);
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .build(),
    );
    let mut attempt = 0;
    loop {
        match transfer(&agent, url, &part, expected, on) {
            Ok(()) => break,
            Err(Failure::Final(e)) => return Err(e),
            Err(Failure::Retry(why)) if attempt < RETRIES => {
                attempt += 1;
                on(Event::Retrying { attempt, of: RETRIES, why });
                std::thread::sleep(FIRST_BACKOFF * 2u32.pow(attempt - 1));
            }
            Err(Failure::Retry(why)) => {
                let kept = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
                let resume = if kept > 0 { format!("; {kept} bytes kept in {}, run again to resume", part.display()) } else { String::new() };
                return Err(Error::download(url, format!("{why} (after {} tries){resume}", RETRIES + 1)));
            }
        }
    }
    let (bytes, sha256) = hash_file(&part)?;
    let mismatch = match expected {
        Expected { size: Some(size), .. } if size != bytes => Some(format!("is {bytes} bytes, but {size} are published")),
        Expected { sha256: Some(published), .. } if published != sha256 => {
            Some(format!("has SHA-256 {sha256}, but {published} is published"))
        }
        _ => None,
    };
    if let Some(why) = mismatch {
        let _ = std::fs::remove_file(&part);
        return Err(Error::download(url, format!("{why}; nothing was kept")));
    }
    std::fs::rename(&part, target).map_err(|e| Error::io(target, e))?;
    on(Event::Fetched { url: url.to_string(), bytes, sha256: sha256.clone(), published: expected.sha256.is_some() });
    Ok(Fetched { path: target.to_path_buf(), bytes, sha256 })
}

enum Failure {
    /// Worth another try (a cut connection, a server error).
    Retry(String),
    /// Not (a 404, a size that cannot be right, a local file error).
    Final(Error),
}

/// One request: append what the server sends to `part`, from where it ends.
fn transfer(agent: &ureq::Agent, url: &str, part: &Path, expected: Expected, on: &mut dyn FnMut(Event)) -> Result<(), Failure> {
    let mut have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    if expected.size.is_some_and(|size| have > size) {
        have = 0; // longer than the file can be: start again
    }
    let mut request = agent.get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let response = request.call().map_err(|e| match e {
        // nothing listens there, or no such host: trying again will not help
        ureq::Error::Io(ref io) if io.kind() == std::io::ErrorKind::ConnectionRefused => Failure::Final(Error::download(url, describe(&e))),
        ureq::Error::HostNotFound => Failure::Final(Error::download(url, describe(&e))),
        e => Failure::Retry(describe(&e)),
    })?;
    let status = response.status().as_u16();
    let reason = response.status().canonical_reason().unwrap_or("");
    let length = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let start = match status {
        200 => 0, // the whole file (a server that ignores Range sends it all again)
        206 => {
            let range = response.headers().get("content-range").and_then(|v| v.to_str().ok()).unwrap_or("");
            match parse_content_range_start(range) {
                Some(s) if s == have => have,
                _ => {
                    let _ = std::fs::remove_file(part);
                    return Err(Failure::Retry(format!("the server resumed at another place ({range:?})")));
                }
            }
        }
        416 if have > 0 => {
            // asked past the end: what we have is either all of it or not this file
            return if expected.size.is_none_or(|s| s == have) {
                Ok(())
            } else {
                let _ = std::fs::remove_file(part);
                Err(Failure::Retry("the server refused to resume".into()))
            };
        }
        400..=499 => return Err(Failure::Final(Error::download(url, format!("HTTP {status} {reason}")))),
        _ => return Err(Failure::Retry(format!("HTTP {status} {reason}"))),
    };
    let total = length.map(|l| start + l);
    if let (Some(total), Some(size)) = (total, expected.size)
        && total != size
    {
        let _ = std::fs::remove_file(part);
        return Err(Failure::Final(Error::download(
            url,
            format!("is {total} bytes, but {size} are published; nothing was kept"),
        )));
    }
    let mut file = if start == 0 {
        File::create(part)
    } else {
        OpenOptions::new().append(true).open(part)
    }
    .map_err(|e| Failure::Final(Error::io(part, e)))?;
    on(Event::Downloading { url: url.to_string(), total: total.or(expected.size), resumed_from: start });
    let mut body = response.into_body().into_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut done = start;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => return Err(Failure::Retry(format!("the transfer was cut after {done} bytes ({e})"))),
        };
        file.write_all(&buf[..n]).map_err(|e| Failure::Final(Error::io(part, e)))?;
        done += n as u64;
        on(Event::Progress { done });
    }
    file.sync_all().map_err(|e| Failure::Final(Error::io(part, e)))?;
    match total {
        Some(total) if done < total => Err(Failure::Retry(format!("the transfer was cut after {done} of {total} bytes"))),
        _ => Ok(()),
    }
}

/// `bytes 100-199/200` -> 100.
fn parse_content_range_start(header: &str) -> Option<u64> {
    header.strip_prefix("bytes ")?.split('-').next()?.trim().parse().ok()
}

fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => format!("cannot reach the server ({io})"),
        ureq::Error::HostNotFound => "cannot reach the server (host not found)".into(),
        ureq::Error::ConnectionFailed => "cannot reach the server (connection failed)".into(),
        other => other.to_string(),
    }
}

/// Size and SHA-256 (hex) of a file, read in pieces.
pub fn hash_file(path: &Path) -> Result<(u64, String)> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok((bytes, hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_start() {
        assert_eq!(parse_content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(parse_content_range_start("bytes */200"), None);
        assert_eq!(parse_content_range_start(""), None);
    }

    #[test]
    fn part_file_is_beside_the_target() {
        assert_eq!(part_path(Path::new("/c/models/x.pth")), Path::new("/c/models/x.pth.part"));
    }
}
