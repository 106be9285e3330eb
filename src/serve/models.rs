//! The models a server offers: each `--model [NAME=]PATH` opened as
//! `translate` opens it (a run folder gives each direction it has, a
//! generator file the one it translates), under a name.

use std::path::PathBuf;

use burn::tensor::Device;
use serde::Serialize;

use crate::checkpoint::{Direction, NetConfig, NetInfo};
use crate::error::{Error, Result};
use crate::translate::{self, Tiling, Translator};

/// One `--model` argument: `NAME=PATH`, or `PATH` (named after its file or folder).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelSpec {
    pub name: String,
    pub path: PathBuf,
}

impl std::str::FromStr for ModelSpec {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (name, path) = match s.split_once('=') {
            Some((name, path)) if !name.is_empty() && !name.contains(['/', '\\']) => (name.to_string(), PathBuf::from(path)),
            _ => {
                let path = PathBuf::from(s);
                let stem = path.file_stem().or(path.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                (stem, path)
            }
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(format!("'{s}': a model's name is letters, digits, '-', '_' and '.' (NAME=PATH)"));
        }
        Ok(Self { name, path })
    }
}

/// A generator a request can ask for.
pub struct Served {
    pub model: String,
    pub direction: Direction,
    pub translator: Translator,
    /// `--tile`, rounded to what this generator takes.
    pub tiling: Option<Tiling>,
}

/// What `GET /v1/models` says of one model.
#[derive(Clone, Debug, Serialize)]
pub struct ModelListing {
    pub name: String,
    pub directions: Vec<Direction>,
    pub arch: String,
    pub input_nc: usize,
    pub output_nc: usize,
    /// The checkpoint's metadata, as `cyclegan=1 net=generator arch=...`.
    pub metadata: std::collections::BTreeMap<String, String>,
    pub source: PathBuf,
}

/// Open every model of `specs` on `device`, to be translated with `tiling`.
pub fn open(specs: &[ModelSpec], device: &Device, tiling: Option<Tiling>) -> Result<(Vec<Served>, Vec<ModelListing>)> {
    let mut served = Vec::new();
    let mut listings: Vec<ModelListing> = Vec::new();
    for spec in specs {
        if listings.iter().any(|l| l.name == spec.name) {
            return Err(Error::Usage(format!("--model {}: two models are named '{}'; name them with NAME=PATH", spec.path.display(), spec.name)));
        }
        let mut listing: Option<ModelListing> = None;
        for (direction, translator) in translate::open_generators(&spec.path, device)? {
            let info = NetInfo { config: NetConfig::Generator(translator.config.clone()), direction: Some(direction), model: None };
            let l = listing.get_or_insert_with(|| ModelListing {
                name: spec.name.clone(),
                directions: Vec::new(),
                arch: translator.config.arch.name().into(),
                input_nc: translator.config.input_nc,
                output_nc: translator.config.output_nc,
                metadata: info.to_metadata().into_iter().filter(|(k, _)| k != "direction").collect(),
                source: translator.source.clone(),
            });
            l.directions.push(direction);
            let tiling = tiling.map(|t| t.check(translator.config.arch.size_multiple())).transpose()?;
            served.push(Served { model: spec.name.clone(), direction, translator, tiling });
        }
        listings.extend(listing);
    }
    Ok((served, listings))
}

