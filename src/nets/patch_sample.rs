//! CUT's netF (the official `PatchSampleF`): from each layer's features,
//! the vectors at a set of positions (the same positions in every image of
//! the batch), passed through a two-layer MLP of that layer's own
//! (`mlp_sample`; `sample` keeps them as they are) and scaled to unit length.
//!
//! The official code builds the MLPs at the first forward pass, when it
//! sees how many channels each layer has; here the channels come from the
//! generator's configuration, so netF is built, and its weights drawn, with
//! the other networks. Keys: `mlp_{i}.0.{weight,bias}` and `mlp_{i}.2.*`
//! (`nn.Sequential(Linear, ReLU, Linear)` per layer).

use burn::module::Module;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use super::init::Initializer;
use super::layers::Linear;
use super::named::{NamedTensors, Slot};
use super::{ConfigError, key};
use crate::rng::Rng;

/// The official `Normalize`'s epsilon: `x / (|x| + 1e-7)`.
const NORM_EPS: f64 = 1e-7;
/// Added under the square root of a row's squared length (see [`PatchSampler::forward`]).
const ZERO_ROW_GUARD: f64 = 1e-24;
/// The widest MLP accepted: four times the official default of 256.
pub const MAX_NC: usize = 1024;
/// The most channels a feature layer may have (a ResNet at the widest ngf has 1024).
const MAX_CHANNELS: usize = 4096;
/// The most NCE layers (a ResNet-9 has 32 indices).
const MAX_NCE_LAYERS: usize = 64;

/// How patches become PatchNCE features (`--netF`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ValueEnum)]
pub enum PatchFeatures {
    /// A two-layer MLP (Linear, ReLU, Linear) per layer, then unit length (CUT's default).
    #[value(name = "mlp_sample")]
    #[serde(rename = "mlp_sample")]
    MlpSample,
    /// The features themselves, scaled to unit length.
    #[value(name = "sample")]
    #[serde(rename = "sample")]
    Sample,
}

impl PatchFeatures {
    pub fn name(self) -> &'static str {
        match self {
            Self::MlpSample => "mlp_sample",
            Self::Sample => "sample",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::value_variants().iter().copied().find(|v| v.name() == name)
    }
}

/// Everything needed to rebuild a netF; recorded in its checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchSamplerConfig {
    pub kind: PatchFeatures,
    /// Channels of the features of each NCE layer, in order.
    pub channels: Vec<usize>,
    /// Width of the MLPs (`--netF-nc`).
    pub nc: usize,
}

impl PatchSamplerConfig {
    /// Whether this netF can be built: sizes a crafted file cannot inflate
    /// past a few hundred MB.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_NCE_LAYERS).contains(&self.channels.len()) {
            return Err(ConfigError::Width { what: "the number of NCE layers", n: self.channels.len(), max: MAX_NCE_LAYERS });
        }
        let widths = self.channels.iter().map(|&c| ("a layer's channels", c, MAX_CHANNELS)).chain([("netF_nc", self.nc, MAX_NC)]);
        for (what, n, max) in widths {
            if !(1..=max).contains(&n) {
                return Err(ConfigError::Width { what, n, max });
            }
        }
        Ok(())
    }

    /// Build the network; `self` must have passed [`Self::validate`].
    pub fn init(&self, init: &Initializer, rng: &mut Rng, device: &Device) -> PatchSampler {
        let mlps = match self.kind {
            PatchFeatures::Sample => Vec::new(),
            PatchFeatures::MlpSample => self
                .channels
                .iter()
                .map(|&c| Mlp {
                    first: Linear::new([c, self.nc], init, rng, device),
                    second: Linear::new([self.nc, self.nc], init, rng, device),
                })
                .collect(),
        };
        PatchSampler { mlps }
    }
}

/// `Linear(c, nc)`, ReLU, `Linear(nc, nc)`.
#[derive(Module, Debug)]
pub struct Mlp {
    pub first: Linear,
    pub second: Linear,
}

/// netF: one MLP per NCE layer (none for `sample`).
#[derive(Module, Debug)]
pub struct PatchSampler {
    pub mlps: Vec<Mlp>,
}

impl PatchSampler {
    /// For each layer `l`, the features `feats[l]` (`[n, c, h, w]`) at the
    /// positions `ids[l]` (indices into `h * w`, row-major), as rows
    /// `[n * ids, c']`, image by image: projected, then scaled to unit length.
    pub fn forward(&self, feats: &[Tensor<4>], ids: &[Vec<usize>]) -> Vec<Tensor<2>> {
        feats
            .iter()
            .zip(ids)
            .enumerate()
            .map(|(l, (f, ids))| {
                let [n, c, h, w] = f.dims();
                let device = f.device();
                let index = Tensor::<1, Int>::from_data(TensorData::new(ids.iter().map(|&i| i as i64).collect::<Vec<_>>(), [ids.len()]), &device);
                // [n, c, h w] -> [n, h w, c] -> the chosen positions -> rows
                let rows = f.clone().reshape([n, c, h * w]).swap_dims(1, 2).select(1, index).reshape([n * ids.len(), c]);
                let rows = match self.mlps.get(l) {
                    Some(mlp) => mlp.second.forward(relu(mlp.first.forward(rows))),
                    None => rows,
                };
                // The official `x / (|x| + 1e-7)`, with |x| taken as sqrt(|x|^2 + 1e-24):
                // the same values in f32, but a finite gradient where a row is
                // all zero (the MLP's ReLU can zero a row; the official code
                // then trains on NaN from sqrt's derivative at 0).
                let norm = (rows.clone().square().sum_dim(1) + ZERO_ROW_GUARD).sqrt();
                rows / (norm + NORM_EPS)
            })
            .collect()
    }
}

impl NamedTensors for PatchSampler {
    fn visit_named(&mut self, prefix: &str, f: &mut dyn FnMut(String, Slot<'_>)) {
        for (i, mlp) in self.mlps.iter_mut().enumerate() {
            let m = key(prefix, format!("mlp_{i}"));
            mlp.first.visit_named(&key(&m, 0), f);
            mlp.second.visit_named(&key(&m, 2), f);
        }
    }
}
