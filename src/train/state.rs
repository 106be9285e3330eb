//! The counters and small state of a training run, saved beside the
//! networks as `state.json`: either fresh from the options or read back
//! from a checkpoint on `--resume`.

use serde::{Deserialize, Serialize};

use super::options::TrainOptions;
use super::schedule::Schedule;
use crate::rng::{Rng, RngState};

/// Counters and small state saved beside the networks (`state.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// The epoch in progress (1-based).
    pub epoch: usize,
    /// Samples of this epoch already trained on.
    pub epoch_samples: usize,
    /// Optimisation steps taken in the whole run.
    pub iteration: u64,
    pub schedule: Schedule,
    pub opt_g_steps: u64,
    pub opt_d_steps: u64,
    /// CUT's netF optimiser.
    #[serde(default)]
    pub opt_f_steps: u64,
    /// The generator behind image-pool swaps and penalty interpolation.
    pub step_rng: RngState,
    /// Sum and count of the generator loss this epoch (for the plateau schedule).
    pub epoch_g_loss: f64,
    pub epoch_steps: u64,
    /// The lowest mean FID evaluated so far, kept in `checkpoints/best` (with --eval-a/--eval-b).
    #[serde(default)]
    pub best: Option<Best>,
}

/// An optimiser, by the networks it steps (their key prefix in the optimiser file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Optimiser {
    /// The generators' (CycleGAN's G_A and G_B together, CUT's G).
    G,
    /// The discriminators'.
    D,
    /// CUT's netF's.
    F,
}

impl Optimiser {
    pub fn prefix(self) -> &'static str {
        match self {
            Self::G => "G",
            Self::D => "D",
            Self::F => "F",
        }
    }
}

/// Where `checkpoints/best` stands.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Best {
    pub fid_mean: f64,
    pub iteration: u64,
}

impl TrainState {
    /// The state before the first iteration; `step_rng` is the generator of
    /// the image pools and the gradient penalty.
    pub fn fresh(opts: &TrainOptions, step_rng: &Rng) -> Self {
        Self {
            epoch: 1,
            epoch_samples: 0,
            iteration: 0,
            schedule: Schedule::new(opts.lr_policy, opts.n_epochs(), opts.n_epochs_decay(), opts.lr_decay_iters),
            opt_g_steps: 0,
            opt_d_steps: 0,
            opt_f_steps: 0,
            step_rng: step_rng.state(),
            epoch_g_loss: 0.0,
            epoch_steps: 0,
            best: None,
        }
    }

    /// The steps `which` had taken when this state was saved.
    pub fn optimiser_steps(&self, which: Optimiser) -> u64 {
        match which {
            Optimiser::G => self.opt_g_steps,
            Optimiser::D => self.opt_d_steps,
            Optimiser::F => self.opt_f_steps,
        }
    }

    pub fn set_optimiser_steps(&mut self, which: Optimiser, steps: u64) {
        match which {
            Optimiser::G => self.opt_g_steps = steps,
            Optimiser::D => self.opt_d_steps = steps,
            Optimiser::F => self.opt_f_steps = steps,
        }
    }

    /// Close the epoch in progress: step the schedule on its mean generator
    /// loss (returned) and move to the next.
    pub fn end_epoch(&mut self) -> f64 {
        let mean_g = self.epoch_g_loss / self.epoch_steps.max(1) as f64;
        self.schedule.end_epoch(mean_g);
        self.epoch += 1;
        self.epoch_samples = 0;
        self.epoch_g_loss = 0.0;
        self.epoch_steps = 0;
        mean_g
    }
}
