//! One face for every training method, so that the session (epochs,
//! checkpoints, logs, evaluation) knows none of them: [`Trainer`] holds the
//! method's networks, optimisers and pools, takes one optimisation step,
//! and saves and restores all of it. What a step reports is method-neutral
//! and lives in [`super::step`], which the methods share without knowing this face.

use std::path::Path;

use burn::tensor::{Device, Tensor};

use super::cut::CutTrainer;
use super::cyclegan::CycleGanTrainer;
use super::method::Method;
use super::net_files::NamedNets;
use super::options::ValidOptions;
use super::state::TrainState;
use super::step::{GeneratorView, StepOutput};
use crate::error::Result;
use crate::nets::Initializer;
use crate::rng::Rng;

/// The networks, optimisers and pools of the method the options name.
pub enum Trainer {
    CycleGan(CycleGanTrainer),
    Cut(CutTrainer),
}

impl Trainer {
    /// Fresh networks with weights from `init` (drawn from `rng` in the official order).
    pub fn new(opts: &ValidOptions, init: &Initializer, rng: &mut Rng, device: &Device) -> Self {
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
