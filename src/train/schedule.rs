//! Learning-rate schedules, stepped once per epoch as in the official
//! `get_scheduler`. The rate for epoch `e` (1-based) is `lr * factor(e)`.

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LrPolicy {
    /// Constant for --n-epochs, then linear decay over --n-epochs-decay (the CycleGAN schedule).
    Linear,
    /// Multiply by 0.1 every --lr-decay-iters epochs.
    Step,
    /// Multiply by 0.2 after 5 epochs without a 1% improvement of the mean generator loss.
    Plateau,
    /// Cosine annealing to 0 over --n-epochs.
    Cosine,
}

/// `LinearDecay`, `StepDecay`, `Plateau`, `Cosine`: the factor applied to the
/// initial rate, and what the plateau policy remembers between epochs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub policy: LrPolicy,
    pub n_epochs: usize,
    pub n_epochs_decay: usize,
    pub decay_every: usize,
    /// Plateau state: the best metric so far, epochs without improvement, current factor.
    pub plateau_best: Option<f64>,
    pub plateau_bad_epochs: usize,
    pub plateau_factor: f64,
}

const STEP_GAMMA: f64 = 0.1;
const PLATEAU_FACTOR: f64 = 0.2;
const PLATEAU_PATIENCE: usize = 5;
const PLATEAU_THRESHOLD: f64 = 0.01;

impl Schedule {
    pub fn new(policy: LrPolicy, n_epochs: usize, n_epochs_decay: usize, decay_every: usize) -> Self {
        Self { policy, n_epochs, n_epochs_decay, decay_every, plateau_best: None, plateau_bad_epochs: 0, plateau_factor: 1.0 }
    }

    /// The factor during epoch `epoch` (1-based).
    pub fn factor(&self, epoch: usize) -> f64 {
        let done = epoch.saturating_sub(1) as f64; // scheduler steps taken before this epoch
        match self.policy {
            // official lambda_rule: 1 - max(0, epoch_index + 1 - n_epochs) / (n_epochs_decay + 1)
            LrPolicy::Linear => {
                1.0 - (done + 1.0 - self.n_epochs as f64).max(0.0) / (self.n_epochs_decay as f64 + 1.0)
            }
            LrPolicy::Step => STEP_GAMMA.powi((epoch.saturating_sub(1) / self.decay_every) as i32),
            LrPolicy::Cosine => {
                let t = self.n_epochs.max(1) as f64;
                (1.0 + (std::f64::consts::PI * done / t).cos()) / 2.0
            }
            LrPolicy::Plateau => self.plateau_factor,
        }
    }

    /// Tell the schedule an epoch ended, with the epoch's mean generator loss
    /// (only the plateau policy uses it).
    pub fn end_epoch(&mut self, metric: f64) {
        if self.policy != LrPolicy::Plateau {
            return;
        }
        // ReduceLROnPlateau(mode="min", threshold_mode="rel")
        let improved = self.plateau_best.is_none_or(|best| metric < best * (1.0 - PLATEAU_THRESHOLD));
        if improved {
            self.plateau_best = Some(metric);
            self.plateau_bad_epochs = 0;
        } else {
            self.plateau_bad_epochs += 1;
            if self.plateau_bad_epochs > PLATEAU_PATIENCE {
                self.plateau_factor *= PLATEAU_FACTOR;
                self.plateau_bad_epochs = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_is_flat_then_decays_to_one_step_above_zero() {
        let s = Schedule::new(LrPolicy::Linear, 100, 100, 50);
        assert_eq!(s.factor(1), 1.0);
        assert_eq!(s.factor(100), 1.0);
        assert!((s.factor(101) - (1.0 - 1.0 / 101.0)).abs() < 1e-12);
        assert!((s.factor(200) - 1.0 / 101.0).abs() < 1e-12);
    }

    #[test]
    fn step_cosine_and_plateau() {
        let s = Schedule::new(LrPolicy::Step, 10, 0, 3);
        assert_eq!([1, 3, 4, 7].map(|e| s.factor(e)), [1.0, 1.0, 0.1, 0.010000000000000002]);
        let c = Schedule::new(LrPolicy::Cosine, 4, 0, 1);
        assert!((c.factor(3) - 0.5).abs() < 1e-12 && c.factor(1) == 1.0);
        let mut p = Schedule::new(LrPolicy::Plateau, 10, 0, 1);
        p.end_epoch(1.0);
        for _ in 0..5 {
            p.end_epoch(0.995); // under 1% better: not an improvement
        }
        assert_eq!(p.factor(7), 1.0);
        p.end_epoch(0.995);
        assert_eq!(p.factor(8), 0.2);
    }
}
