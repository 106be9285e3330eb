//! The one random generator behind weight init, data order, augmentation and
//! the image pool: seeded, and small enough to save in a checkpoint so that a
//! resumed run draws exactly what an uninterrupted one would.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A saved generator whose position is not a number.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad random-state position {0:?}")]
pub struct BadRngState(pub String);

/// A seeded ChaCha8 stream.
#[derive(Clone, Debug)]
pub struct Rng(ChaCha8Rng);

/// Where an [`Rng`] stands: enough to continue its stream exactly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    pub seed: [u8; 32],
    pub stream: u64,
    /// Position in the stream, as a decimal string (a u128 does not fit TOML/JSON numbers).
    pub word_pos: String,
}

impl Rng {
    pub fn seed_from(seed: u64) -> Self {
        Self(ChaCha8Rng::seed_from_u64(seed))
    }

    /// An independent generator for a named purpose, derived from this one's seed,
    /// so that adding draws in one place does not shift another's.
    pub fn fork(&self, stream: u64) -> Self {
        let mut inner = ChaCha8Rng::from_seed(self.0.get_seed());
        inner.set_stream(stream);
        Self(inner)
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        self.0.random::<f64>()
    }

    /// Uniform integer in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        self.0.random_range(0..n)
    }

    /// A fair coin.
    pub fn coin(&mut self) -> bool {
        self.0.random::<bool>()
    }

    /// A draw from N(mean, std), by Box-Muller.
    pub fn normal(&mut self, mean: f64, std: f64) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]: keeps ln finite
        let u2 = self.uniform();
        mean + std * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    pub fn state(&self) -> RngState {
        RngState {
            seed: self.0.get_seed(),
            stream: self.0.get_stream(),
            word_pos: self.0.get_word_pos().to_string(),
        }
    }

    pub fn from_state(state: &RngState) -> Result<Self, BadRngState> {
        let pos: u128 = state.word_pos.parse().map_err(|_| BadRngState(state.word_pos.clone()))?;
        let mut inner = ChaCha8Rng::from_seed(state.seed);
        inner.set_stream(state.stream);
        inner.set_word_pos(pos);
        Ok(Self(inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trip_continues_the_stream() {
        let mut a = Rng::seed_from(7);
        for _ in 0..5 {
            a.uniform();
        }
        let mut b = Rng::from_state(&a.state()).unwrap();
        let xs: Vec<f64> = (0..10).map(|_| a.normal(0.0, 1.0)).collect();
        let ys: Vec<f64> = (0..10).map(|_| b.normal(0.0, 1.0)).collect();
        assert_eq!(xs, ys);
    }

    #[test]
    fn normal_has_the_asked_moments() {
        let mut r = Rng::seed_from(1);
        let xs: Vec<f64> = (0..20000).map(|_| r.normal(1.0, 0.02)).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!((mean - 1.0).abs() < 1e-3, "{mean}");
        assert!((var.sqrt() - 0.02).abs() < 1e-3, "{}", var.sqrt());
    }
}
