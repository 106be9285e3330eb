//! A method's networks and optimisers as files, written once for every
//! method: a method lists its networks under their official names
//! ([`NamedNets`]) and its optimisers by the networks they step; saving,
//! loading, `--init` and the optimiser state are done here. Where each file
//! goes is the run folder's business ([`RunDir`]).

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::Device;

use super::adam::Adam;
use super::run_dir::RunDir;
use super::state::{Optimiser, TrainState};
use crate::checkpoint::{self, NetInfo, StateDict};
use crate::error::{Error, Result};
use crate::nets::NamedTensors;

/// A method's networks, each under its official name (`G_A`, ... or `G`, `D`, `F`).
pub trait NamedNets {
    /// Each network in the official order: its name, its tensors (shared,
    /// not copied) and what its checkpoint says about it.
    fn described(&self) -> Vec<(&'static str, StateDict, NetInfo)>;

    /// Each network by name, in the same order, to load weights into.
    fn nets_mut(&mut self) -> Vec<(&'static str, &mut dyn NamedTensors)>;

    /// Save each network to its own self-describing file in `dir`, atomically.
    fn save(&self, dir: &Path) -> Result<()> {
        for (name, dict, info) in self.described() {
            checkpoint::save_dict(&RunDir::net_file(dir, name), &dict, info.to_metadata())?;
        }
        Ok(())
    }

    /// Load what [`Self::save`] wrote; each file must describe the network
    /// the run's options describe.
    fn load(&mut self, dir: &Path) -> Result<()> {
        let expected: Vec<NetInfo> = self.described().into_iter().map(|(_, _, info)| info).collect();
        for ((name, net), expected) in self.nets_mut().into_iter().zip(expected) {
            let path = RunDir::net_file(dir, name);
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

    /// Load every network from one file holding them all under `<name>.`
    /// prefixes (`--init`, the layout of `cyclegan_ref.py make-init`).
    fn load_combined(&mut self, path: &Path) -> Result<()> {
        let raw = checkpoint::read_raw(path)?;
        let mut tensors = checkpoint::normalize(raw.tensors);
        let nets = self.nets_mut();
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
}

/// Save each optimiser's moments into one file in `dir`, under its
/// networks' prefix, and its step count into `state`.
pub fn save_optimisers(dir: &Path, optimisers: &[(Optimiser, &Adam)], state: &mut TrainState) -> Result<()> {
    let mut moments = StateDict::default();
    for (which, adam) in optimisers {
        state.set_optimiser_steps(*which, adam.steps());
        moments.extend(adam.state().prefixed(which.prefix()));
    }
    checkpoint::save_dict(&RunDir::optimizer_file(dir), &moments, HashMap::new())
}

/// Restore what [`save_optimisers`] wrote.
pub fn load_optimisers(dir: &Path, optimisers: &mut [(Optimiser, &mut Adam)], state: &TrainState, beta1: f64, device: &Device) -> Result<()> {
    let path = RunDir::optimizer_file(dir);
    let (mut moments, _) = checkpoint::read_safetensors(&path)?;
    let inner = device.clone().inner();
    for (which, adam) in optimisers.iter_mut() {
        let steps = state.optimiser_steps(*which);
        **adam = Adam::restore(beta1, steps, moments.take_prefix(which.prefix()), &inner).map_err(|e| Error::checkpoint(&path, e))?;
    }
    Ok(())
}
