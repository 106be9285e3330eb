//! One face for every training method, so that the session (epochs,
//! checkpoints, logs, evaluation) knows none of them: [`Trainer`] holds the
//! method's networks, optimisers and pools, takes one optimisation step,
//! and saves and restores all of it. What a step reports is method-neutral:
//! [`Losses`] under the official names, and [`Visuals`] for the sample grid.

use std::fmt;
use std::path::Path;

use burn::tensor::{Device, Tensor};
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::cut::CutTrainer;
use super::cyclegan::CycleGanTrainer;
use super::method::Method;
use super::options::TrainOptions;
use super::state::TrainState;
use crate::checkpoint::Direction;
use crate::error::Result;
use crate::nets::{Generator, GeneratorConfig, Initializer};
use crate::rng::Rng;

/// A step's losses under their official names, in the official order (the
/// keys of `losses.jsonl`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Losses(pub Vec<(String, f64)>);

impl Losses {
    pub fn from_pairs(pairs: &[(&str, f64)]) -> Self {
        Self(pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect())
    }

    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }
}

impl Serialize for Losses {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Losses {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = Losses;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("losses by name")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Losses, M::Error> {
                let mut pairs = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, f64>()? {
                    pairs.push((k, v));
                }
                Ok(Losses(pairs))
            }
        }
        d.deserialize_map(InOrder)
    }
}

/// The images of one step for the sample grid: rows of panels (first image
/// of the batch), a panel left empty where the method has no such image.
pub struct Visuals {
    pub rows: Vec<Vec<Option<Tensor<4>>>>,
}

/// What one optimisation step gives back.
pub struct StepOutput {
    pub losses: Losses,
    /// The generators' total loss (the plateau schedule watches its epoch mean).
    pub generator_loss: f64,
    pub visuals: Visuals,
}

/// Several one-element losses read back in one transfer (each read is a
/// round trip on a GPU).
pub(super) fn scalars(losses: Vec<Tensor<1>>) -> Vec<f64> {
    let data = Tensor::cat(losses, 0).detach().into_data();
    data.iter::<f32>().map(f64::from).collect()
}

/// A generator in training, for evaluating its translations.
pub struct GeneratorView<'a> {
    pub direction: Direction,
    pub net: &'a Generator,
    pub config: &'a GeneratorConfig,
}

/// The networks, optimisers and pools of the method the options name.
pub enum Trainer {
    CycleGan(CycleGanTrainer),
    Cut(CutTrainer),
}

impl Trainer {
    /// Fresh networks with weights from `init` (drawn from `rng` in the official order).
    pub fn new(opts: &TrainOptions, init: &Initializer, rng: &mut Rng, device: &Device) -> Self {
        match opts.model {
            Method::CycleGan => Self::CycleGan(CycleGanTrainer::new(opts, init, rng, device)),
            Method::Cut | Method::Fastcut => Self::Cut(CutTrainer::new(opts, init, rng, device)),
        }
    }

    /// One optimisation step on a batch of each domain; `rng` draws what the
    /// step draws (image pool swaps, penalty points, patches, flips).
    pub fn step(&mut self, real_a: Tensor<4>, real_b: Tensor<4>, lr: f64, rng: &mut Rng) -> StepOutput {
        match self {
            Self::CycleGan(t) => t.step(real_a, real_b, lr, rng),
            Self::Cut(t) => t.step(real_a, real_b, lr, rng),
        }
    }

    /// The generators, with the way each translates.
    pub fn generators(&self) -> Vec<GeneratorView<'_>> {
        match self {
            Self::CycleGan(t) => t.generators(),
            Self::Cut(t) => t.generators(),
        }
    }

    /// Write the networks, optimiser moments and pools into `dir`; the
    /// optimisers' step counts go into `state`.
    pub fn save(&self, dir: &Path, state: &mut TrainState) -> Result<()> {
        match self {
            Self::CycleGan(t) => t.save(dir, state),
            Self::Cut(t) => t.save(dir, state),
        }
    }

    /// Restore what [`Self::save`] wrote.
    pub fn load(&mut self, dir: &Path, state: &TrainState, beta1: f64, device: &Device) -> Result<()> {
        match self {
            Self::CycleGan(t) => t.load(dir, state, beta1, device),
            Self::Cut(t) => t.load(dir, state, beta1, device),
        }
    }

    /// Start from the weights of one file holding every network under its
    /// official name as prefix (`--init`).
    pub fn load_combined(&mut self, path: &Path) -> Result<()> {
        match self {
            Self::CycleGan(t) => t.nets.load_combined(path),
            Self::Cut(t) => t.nets.load_combined(path),
        }
    }
}
