//! A method's networks as files: `<official name>.safetensors` each in a
//! checkpoint folder, self-describing, or all in one file under
//! `<name>.` prefixes (`--init`). CycleGAN and CUT save and load through
//! here, each listing its own networks.

use std::path::{Path, PathBuf};

use crate::checkpoint::{self, NetInfo, StateDict};
use crate::error::{Error, Result};
use crate::nets::NamedTensors;

fn file(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.safetensors"))
}

/// Save each `(name, tensors, description)` to `dir/<name>.safetensors`, atomically.
pub fn save(dir: &Path, nets: Vec<(&str, StateDict, NetInfo)>) -> Result<()> {
    for (name, dict, info) in nets {
        checkpoint::save_dict(&file(dir, name), &dict, info.to_metadata())?;
    }
    Ok(())
}

/// Load what [`save`] wrote into each `(name, network, description)`; the
/// file's description must be the one given (the run's options).
pub fn load(dir: &Path, nets: Vec<(&str, &mut dyn NamedTensors, NetInfo)>) -> Result<()> {
    for (name, net, expected) in nets {
        let path = file(dir, name);
        let (tensors, info) = checkpoint::read(&path, None)?;
        if info.config != expected.config {
            return Err(Error::checkpoint(
                &path,
                format!("holds {:?}, but the run's options describe {:?}", info.config, expected.config),
            ));
        }
        tensors.load_into(net).map_err(|e| Error::checkpoint(&path, e))?;
    }
    Ok(())
}

/// Load every network from one file holding them all under `<name>.` prefixes.
pub fn load_combined(path: &Path, nets: Vec<(&str, &mut dyn NamedTensors)>) -> Result<()> {
    let raw = checkpoint::read_raw(path)?;
    let mut tensors = checkpoint::normalize(raw.tensors);
    let prefixes: Vec<String> = nets.iter().map(|(name, _)| format!("{name}.")).collect();
    for (name, net) in nets {
        let part = tensors.take_prefix(name);
        if part.is_empty() {
            return Err(Error::checkpoint(path, format!("has no {name}.* tensors (expected {} prefixes)", prefixes.join(", "))));
        }
        part.load_into(net)
            .map_err(|e| Error::checkpoint(path, format!("{name} does not fit the networks the options describe: {e}")))?;
    }
    if let Some(extra) = tensors.keys().next() {
        return Err(Error::checkpoint(path, format!("unexpected tensor {extra}")));
    }
    Ok(())
}
