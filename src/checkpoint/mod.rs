//! Checkpoints: one network per safetensors file, under the official
//! PyTorch key names, with metadata saying what network it is (so loading
//! needs no flags), and `.pth` files from PyTorch read without running any
//! pickled code.

mod infer;
mod metadata;
pub mod pickle;
mod pytorch;
mod safetensors;
mod state_dict;

pub use infer::{Unrecognised, infer, normalize};
pub use metadata::{BadMetadata, Direction, NetConfig, NetInfo};
pub use state_dict::{Mismatch, StateDict, set_slot};
pub(crate) use state_dict::abbreviate;

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::Device;

use crate::error::{Error, Result};
use crate::fs;
use crate::nets::{Generator, GeneratorConfig, Initializer, NamedTensors};
use crate::rng::Rng;

/// The raw contents of a checkpoint file of either format.
pub struct RawCheckpoint {
    pub tensors: StateDict,
    /// What the file says about itself; `None` for PyTorch files and foreign safetensors.
    pub info: Option<NetInfo>,
}

/// Read a `.safetensors` or PyTorch file (told apart by content, not extension).
pub fn read_raw(path: &Path) -> Result<RawCheckpoint> {
    decode_raw(path, &fs::read(path)?)
}

/// [`read_raw`] on the bytes of `path`, already read.
pub fn decode_raw(path: &Path, bytes: &[u8]) -> Result<RawCheckpoint> {
    if bytes.is_empty() {
        return Err(Error::checkpoint(path, "file is empty"));
    }
    if safetensors::is_safetensors(bytes) {
        let (tensors, metadata) = safetensors::decode(path, bytes)?;
        let info = NetInfo::from_metadata(&metadata).map_err(|e| Error::checkpoint(path, e))?;
        Ok(RawCheckpoint { tensors, info })
    } else if pytorch::is_pytorch(bytes) {
        Ok(RawCheckpoint { tensors: pytorch::read(path, bytes)?, info: None })
    } else {
        Err(Error::checkpoint(path, "neither a safetensors nor a PyTorch checkpoint"))
    }
}

/// Read a checkpoint and settle which network it holds: from its metadata,
/// else from `config` when given, else inferred from its keys.
/// The network is checked to be one that can be built (see [`NetConfig::validate`]).
pub fn read(path: &Path, config: Option<NetConfig>) -> Result<(StateDict, NetInfo)> {
    let raw = read_raw(path)?;
    let (tensors, info) = match raw.info {
        Some(info) => (raw.tensors, info),
        None => {
            let tensors = normalize(raw.tensors);
            let config = match config {
                Some(c) => c,
                None => infer(&tensors).map_err(|e| Error::checkpoint(path, e))?,
            };
            (tensors, NetInfo { config, direction: None, model: None })
        }
    };
    info.config.validate().map_err(|e| Error::network(path, e))?;
    Ok((tensors, info))
}

/// A generator restored from a file, with what the file says about it.
pub struct LoadedGenerator {
    pub net: Generator,
    pub config: GeneratorConfig,
    /// Which way it translates, where the file records it.
    pub direction: Option<Direction>,
}

/// Load a generator from a `.safetensors` or `.pth` file.
pub fn load_generator(path: &Path, device: &Device) -> Result<LoadedGenerator> {
    let (tensors, info) = read(path, None)?;
    let config = match info.config {
        NetConfig::Generator(config) => config,
        NetConfig::Discriminator(_) => return Err(Error::checkpoint(path, "holds a discriminator, not a generator")),
        NetConfig::PatchSampler(_) => return Err(Error::checkpoint(path, "holds CUT's netF (patch projections), not a generator")),
    };
    let mut net = config.init(&Initializer::ForLoading, &mut Rng::seed_from(0), device);
    tensors
        .load_into(&mut net)
        .map_err(|e| Error::checkpoint(path, format!("does not fit a {} generator: {e}", config.arch.name())))?;
    Ok(LoadedGenerator { net, config, direction: info.direction })
}

/// Save one network with its self-description, atomically.
pub fn save(path: &Path, net: &(impl NamedTensors + Clone), info: &NetInfo) -> Result<()> {
    save_dict(path, &StateDict::from_net(net, ""), info.to_metadata())
}

/// Save tensors under given metadata, atomically.
pub fn save_dict(path: &Path, dict: &StateDict, metadata: HashMap<String, String>) -> Result<()> {
    fs::write_bytes_atomic(path, &safetensors::encode(dict, metadata))
}

/// Read tensors and metadata from a safetensors file (for training state files).
pub fn read_safetensors(path: &Path) -> Result<(StateDict, HashMap<String, String>)> {
    let bytes = fs::read(path)?;
    safetensors::decode(path, &bytes)
}
