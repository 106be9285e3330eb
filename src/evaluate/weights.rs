//! Finding pytorch-fid's Inception weights (`pt_inception-2015-12-05-6726825d.pth`,
//! 91 MB, the file pytorch-fid and torch-fidelity download), in this order:
//! `--inception FILE`, `$CYCLEGAN_INCEPTION`, this program's cache folder
//! (`$CYCLEGAN_HOME`, else `$XDG_CACHE_HOME/cyclegan`, else `~/.cache/cyclegan`),
//! torch hub's cache (where pytorch-fid leaves it); else downloading it from
//! pytorch-fid's release into the cache, checked by its SHA-256. The file is
//! read by the restricted pickle reader, like any `.pth`.

use std::io::Read;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use sha2::{Digest, Sha256};

use super::inception::Inception;
use crate::checkpoint;
use crate::error::{Error, Result};

pub const FILE_NAME: &str = "pt_inception-2015-12-05-6726825d.pth";
/// pytorch-fid's `FID_WEIGHTS_URL`; `$CYCLEGAN_INCEPTION_URL` overrides it (a mirror).
pub const URL: &str = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth";
/// The start of the file's SHA-256, as its name records it.
pub const SHA256_PREFIX: &str = "6726825d";

/// Where the weights were found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `--inception FILE`
    Flag,
    /// `$CYCLEGAN_INCEPTION`
    Environment,
    /// this program's cache folder
    Cache,
    /// torch hub's cache, where pytorch-fid and torch-fidelity keep it
    TorchHub,
    /// fetched just now into the cache
    Downloaded,
}

/// The network, with where it came from and anything worth a warning.
pub struct LoadedInception {
    pub net: Inception,
    pub path: PathBuf,
    pub origin: Origin,
    /// Set when a file named by the user has another SHA-256 than the official one.
    pub warning: Option<String>,
}

/// Find (or fetch) the weights and build the network on `device`.
pub fn load(explicit: Option<&Path>, device: &Device) -> Result<LoadedInception> {
    let (path, origin) = locate(explicit)?;
    let bytes = crate::fs::read(&path)?;
    let dict = checkpoint::decode_raw(&path, &bytes)?.tensors;
    let net = Inception::from_state_dict(dict, device).map_err(|why| Error::checkpoint(&path, why))?;
    let warning = match origin {
        Origin::Flag | Origin::Environment => {
            let hash = sha256_hex(&bytes);
            (!hash.starts_with(SHA256_PREFIX)).then(|| {
                format!(
                    "{}: SHA-256 {}... is not that of pytorch-fid's file ({SHA256_PREFIX}...); its keys and shapes fit, \
                     but FID values are comparable to others' only with the official weights",
                    path.display(),
                    &hash[..16]
                )
            })
        }
        _ => None,
    };
    Ok(LoadedInception { net, path, origin, warning })
}

fn locate(explicit: Option<&Path>) -> Result<(PathBuf, Origin)> {
    if let Some(p) = explicit {
        return existing(p).map(|p| (p, Origin::Flag));
    }
    if let Some(p) = std::env::var_os("CYCLEGAN_INCEPTION") {
        return existing(Path::new(&p)).map(|p| (p, Origin::Environment));
    }
    let cache = cache_dir().map(|d| d.join(FILE_NAME));
    if let Some(p) = cache.as_ref().filter(|p| p.is_file()) {
        return Ok((p.clone(), Origin::Cache));
    }
    if let Some(p) = torch_hub_dir().map(|d| d.join(FILE_NAME)).filter(|p| p.is_file()) {
        return Ok((p, Origin::TorchHub));
    }
    let Some(target) = cache else { return Err(missing("no cache folder ($HOME is not set)")) };
    let url = std::env::var("CYCLEGAN_INCEPTION_URL").unwrap_or_else(|_| URL.to_string());
    download(&url, &target).map_err(|why| missing(&why))?;
    Ok((target, Origin::Downloaded))
}

fn existing(p: &Path) -> Result<PathBuf> {
    if p.is_file() {
        Ok(p.to_path_buf())
    } else {
        Err(Error::io(p, std::io::Error::new(std::io::ErrorKind::NotFound, "no such file (Inception weights)")))
    }
}

fn missing(why: &str) -> Error {
    Error::Usage(format!(
        "no Inception weights ({why}): download {URL} and pass it with --inception FILE \
         (or set CYCLEGAN_INCEPTION, or put it in {})",
        cache_dir().map_or("~/.cache/cyclegan".into(), |d| d.display().to_string())
    ))
}

/// This program's cache folder (see [`crate::zoo::home`]).
pub fn cache_dir() -> Option<PathBuf> {
    crate::zoo::home()
}

/// torch hub's checkpoint folder: `$TORCH_HOME/hub/checkpoints`, else `<cache>/torch/hub/checkpoints`.
fn torch_hub_dir() -> Option<PathBuf> {
    let home = std::env::var_os("TORCH_HOME").map(PathBuf::from).or_else(|| crate::zoo::user_cache().map(|c| c.join("torch")));
    home.map(|h| h.join("hub").join("checkpoints"))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Fetch `url` into `target`: whole and with the official hash, or not at all.
fn download(url: &str, target: &Path) -> std::result::Result<(), String> {
    /// A little over the 91 MB file: a server sending more is not sending it.
    const LIMIT: u64 = 128 << 20;
    let config = ureq::Agent::config_builder().timeout_connect(Some(std::time::Duration::from_secs(15))).build();
    let agent = ureq::Agent::new_with_config(config);
    let response = agent.get(url).call().map_err(|e| format!("downloading {url} failed: {e}"))?;
    let mut bytes = Vec::new();
    response
        .into_body()
        .into_reader()
        .take(LIMIT)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("downloading {url} failed: {e}"))?;
    let hash = sha256_hex(&bytes);
    if !hash.starts_with(SHA256_PREFIX) {
        return Err(format!("{url} sent a file whose SHA-256 is {}..., not {SHA256_PREFIX}...; nothing was kept", &hash[..16]));
    }
    let dir = target.parent().expect("cache file has a folder");
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    crate::fs::write_bytes_atomic(target, &bytes).map_err(|e| e.to_string())
}
