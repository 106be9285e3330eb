//! The zoo: the official pretrained generators and datasets by name.
//!
//! - [`catalogue`]: every name, where it lives, what is published about it;
//! - [`download`]: one file over HTTP(S), resumed, verified, renamed into place;
//! - [`archive`]: zip and tar unpacked without trusting their contents.
//!
//! A model is fetched once, imported with the restricted pickle reader into
//! a self-describing `.safetensors` in the cache (`$CYCLEGAN_HOME/models`),
//! and read from there afterwards without the network. A dataset is unpacked
//! beside its target folder and renamed into place when complete.

pub mod archive;
pub mod catalogue;
pub mod download;

use std::path::{Path, PathBuf};

pub use catalogue::{DATASETS, DatasetEntry, MODELS, ModelEntry, ModelKind};
pub use download::{Expected, Fetched};

use crate::checkpoint::{self, Direction, NetConfig, NetInfo, StateDict};
use crate::error::{Error, Result};
use crate::nets::{GeneratorArch, Initializer};
use crate::train::method::Method;

/// What a download is doing, for a progress display.
#[derive(Clone, Debug)]
pub enum Event {
    /// A request is answered; `total` bytes where known; `resumed_from` > 0 after a cut.
    Downloading { url: String, total: Option<u64>, resumed_from: u64 },
    /// Bytes of the file on disk so far.
    Progress { done: u64 },
    /// A transfer failed and is tried again.
    Retrying { attempt: u32, of: u32, why: String },
    /// The file is complete; `published` when its SHA-256 was checked against a published one.
    Fetched { url: String, bytes: u64, sha256: String, published: bool },
    /// Unpacking or importing a downloaded file.
    Unpacking { what: String },
}

/// Where the zoo's files go: `$CYCLEGAN_HOME`, else `$XDG_CACHE_HOME/cyclegan`,
/// else `~/.cache/cyclegan`.
pub fn home() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("CYCLEGAN_HOME").filter(|v| !v.is_empty()) {
        return Some(home.into());
    }
    user_cache().map(|d| d.join("cyclegan"))
}

/// The user's cache folder: `$XDG_CACHE_HOME`, else `~/.cache` (torch hub's lives there too).
pub(crate) fn user_cache() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
}

/// Where to download from: the official host, or a mirror with the same paths.
#[derive(Clone, Debug, Default)]
pub struct Source {
    /// `http(s)://host[:port][/prefix]`, without a trailing slash; `None` for the official host.
    pub mirror: Option<String>,
}

impl Source {
    /// `--mirror` (or `CYCLEGAN_MIRROR`), checked: an http or https URL.
    pub fn new(mirror: Option<&str>) -> Result<Self> {
        let Some(m) = mirror.map(str::trim).filter(|m| !m.is_empty()) else { return Ok(Self::default()) };
        if !(m.starts_with("http://") || m.starts_with("https://")) {
            return Err(Error::Usage(format!("--mirror {m}: not an http:// or https:// URL")));
        }
        Ok(Self { mirror: Some(m.trim_end_matches('/').to_string()) })
    }

    fn url(&self, official_host: &str, path: &str) -> String {
        format!("{}{path}", self.mirror.as_deref().unwrap_or(official_host))
    }
}

/// The cached file of a model name, if it is a zoo name: `None` for anything else.
pub fn cached_model_path(name: &str) -> Option<Result<PathBuf>> {
    catalogue::model(name)?;
    Some(home().map(|h| h.join("models").join(format!("{name}.safetensors"))).ok_or_else(no_home))
}

fn no_home() -> Error {
    Error::Usage("no cache folder for downloaded models: set CYCLEGAN_HOME (or HOME)".into())
}

/// Whether `arg` (a `--model` argument) names a zoo model rather than a file:
/// nothing exists at that path and the catalogue has the name.
pub fn is_model_name(arg: &Path) -> bool {
    !arg.exists() && arg.to_str().is_some_and(|s| catalogue::model(s).is_some())
}

/// The generator `name` as a self-describing `.safetensors` in the cache:
/// there already, or downloaded and imported now.
pub fn model(name: &str, source: &Source, on: &mut dyn FnMut(Event)) -> Result<PathBuf> {
    let entry = catalogue::model(name).ok_or_else(|| unknown("model", name))?;
    let target = cached_model_path(name).expect("a zoo name")?;
    if target.is_file() {
        return Ok(target);
    }
    let home = home().ok_or_else(no_home)?;
    let downloads = home.join("downloads");
    let url = source.url(catalogue::MODEL_HOST, &entry.path());
    match entry.kind {
        ModelKind::CycleGan => {
            let fetched = download::fetch(&url, &downloads.join(format!("{name}.pth")), Expected::default(), on)?;
            on(Event::Unpacking { what: format!("importing {name}") });
            let bytes = crate::fs::read(&fetched.path)?;
            // What does not import is removed, so the next run downloads afresh.
            let _ = std::fs::remove_file(&fetched.path);
            import(entry, &fetched.path, &bytes, &url, &fetched.sha256, &target)?;
        }
        ModelKind::Cut | ModelKind::FastCut => {
            let fetched = download::fetch(&url, &downloads.join("CUT_pretrained_models.tar"), Expected::default(), on)?;
            on(Event::Unpacking { what: "reading the CUT archive".into() });
            // Every CUT generator in the archive is imported at once: the archive
            // holds all six and is removed afterwards.
            let cut: Vec<&ModelEntry> = MODELS.iter().filter(|m| m.kind != ModelKind::CycleGan).collect();
            let suffixes: Vec<String> = cut.iter().map(|m| m.member_suffix()).collect();
            // six resnet_9blocks generators are some 270 MB: 1 GiB is ample, and bounds memory
            let members = archive::tar_members(&fetched.path, &suffixes, 1 << 30);
            let _ = std::fs::remove_file(&fetched.path);
            for (suffix, bytes) in members.map_err(|e| name_the_url(e, &url))? {
                let member = cut.iter().find(|m| m.member_suffix() == suffix).expect("asked for");
                let member_target = cached_model_path(member.name).expect("a zoo name")?;
                let shown = fetched.path.join(&suffix);
                if member.name == name {
                    import(member, &shown, &bytes, &url, &fetched.sha256, &member_target)?;
                } else if !member_target.is_file() {
                    // another name's failure is its own: it is tried again when asked for
                    let _ = import(member, &shown, &bytes, &url, &fetched.sha256, &member_target);
                }
            }
            if !target.is_file() {
                return Err(Error::download(&url, format!("the archive has no member ending in {}", entry.member_suffix())));
            }
        }
    }
    Ok(target)
}

/// Read a downloaded `.pth` with the restricted reader, check it is the
/// network the catalogue promises, and save it self-described at `target`.
fn import(entry: &ModelEntry, shown: &Path, bytes: &[u8], url: &str, sha256: &str, target: &Path) -> Result<()> {
    let raw = checkpoint::decode_raw(shown, bytes)?;
    let tensors = checkpoint::normalize(raw.tensors);
    let config = match checkpoint::infer(&tensors).map_err(|e| Error::checkpoint(shown, e))? {
        NetConfig::Generator(g) => g,
        _ => return Err(Error::checkpoint(shown, "is not a generator; it was removed")),
    };
    let cut = entry.kind != ModelKind::CycleGan;
    let expected = config.arch == GeneratorArch::Resnet9Blocks
        && config.ngf == 64
        && config.input_nc == 3
        && config.output_nc == 3
        && config.antialias == cut
        && config.antialias_up == cut;
    if !expected {
        return Err(Error::checkpoint(
            shown,
            format!(
                "holds a {} generator (ngf {}, {} -> {} channels{}), not the {} resnet_9blocks (ngf 64) {name} is; it was removed",
                config.arch.name(),
                config.ngf,
                config.input_nc,
                config.output_nc,
                if config.antialias { ", anti-aliased" } else { "" },
                entry.kind.name(),
                name = entry.name,
            ),
        ));
    }
    let device = burn::tensor::Device::flex();
    let mut net = config.init(&Initializer::ForLoading, &mut crate::rng::Rng::seed_from(0), &device);
    tensors
        .load_into(&mut net)
        .map_err(|e| Error::checkpoint(shown, format!("does not fit a resnet_9blocks generator: {e}; it was removed")))?;
    let method = match entry.kind {
        ModelKind::CycleGan => Method::CycleGan,
        ModelKind::Cut => Method::Cut,
        ModelKind::FastCut => Method::Fastcut,
    };
    let info = NetInfo { config: NetConfig::Generator(config), direction: Some(Direction::A2B), model: Some(method) };
    let mut metadata = info.to_metadata();
    metadata.insert("zoo".into(), entry.name.into());
    metadata.insert("translates".into(), format!("{} -> {}", entry.from, entry.to));
    metadata.insert("source".into(), url.into());
    metadata.insert("source_sha256".into(), sha256.into());
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    checkpoint::save_dict(target, &StateDict::from_net(&net, ""), metadata)
}

/// What [`dataset`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatasetOutcome {
    Downloaded,
    /// The folder is there and not empty: nothing was downloaded.
    AlreadyThere,
}

/// Download dataset `name` and unpack it as the folder `dir` (trainA, trainB,
/// testA, testB). `dir` appears only when complete.
pub fn dataset(name: &str, dir: &Path, source: &Source, on: &mut dyn FnMut(Event)) -> Result<DatasetOutcome> {
    if let Some((_, why)) = catalogue::NOT_REDISTRIBUTED.iter().find(|(n, _)| *n == name) {
        return Err(Error::Usage(format!("dataset {name}: {why}")));
    }
    let entry = catalogue::dataset_entry(name).ok_or_else(|| unknown("dataset", name))?;
    // A folder is only ever put in place complete; an empty one (made by hand) is filled.
    if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
        return Ok(DatasetOutcome::AlreadyThere);
    }
    if dir.is_dir() {
        std::fs::remove_dir(dir).map_err(|e| Error::io(dir, e))?;
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let leaf = dir.file_name().ok_or_else(|| Error::Usage(format!("--dir {}: not a folder name", dir.display())))?;
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    let url = source.url(catalogue::DATASET_HOST, &entry.path());
    let zip = parent.join(format!(".{}.zip", leaf.to_string_lossy()));
    let expected = Expected { size: entry.published.map(|p| p.0), sha256: entry.published.map(|p| p.1) };
    let fetched = download::fetch(&url, &zip, expected, on)?;
    on(Event::Unpacking { what: format!("unpacking {name}") });
    let unpacking = parent.join(format!(".{}.unpacking", leaf.to_string_lossy()));
    let _ = std::fs::remove_dir_all(&unpacking);
    // Images do not compress: four times the archive (and 64 MiB for small ones) is ample.
    let limit = fetched.bytes.saturating_mul(4).max(64 << 20);
    let unpacked = archive::extract_zip(&fetched.path, &unpacking, limit);
    let _ = std::fs::remove_file(&fetched.path);
    unpacked.map_err(|e| name_the_url(e, &url))?;
    // The zips hold one folder named after the dataset: that folder becomes `dir`.
    let inner = unpacking.join(name);
    let top = if inner.is_dir() && std::fs::read_dir(&unpacking).map(|d| d.count()).unwrap_or(0) == 1 { inner } else { unpacking.clone() };
    let placed = std::fs::rename(&top, dir).map_err(|e| Error::io(dir, e));
    let _ = std::fs::remove_dir_all(&unpacking);
    placed?;
    Ok(DatasetOutcome::Downloaded)
}

/// An archive's errors name the URL it came from, not the temporary file it was kept in.
fn name_the_url(e: Error, url: &str) -> Error {
    match e {
        Error::Archive { reason, .. } => Error::download(url, reason),
        other => other,
    }
}

fn unknown(kind: &str, name: &str) -> Error {
    Error::Usage(format!("no {kind} named {name:?}; `cyclegan download --list` shows them all"))
}
