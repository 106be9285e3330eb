//! Weight initialisation as the official `init_weights` does it
//! (`--init-type`, `--init-gain`): conv weights from the chosen scheme, conv
//! biases zero, batch-norm scales from N(1, gain) and shifts zero.

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use crate::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum InitType {
    /// N(0, gain).
    Normal,
    /// Xavier/Glorot normal, scaled by gain.
    Xavier,
    /// Kaiming/He normal (fan-in, ReLU gain; `--init-gain` is not used, as in PyTorch).
    Kaiming,
    /// A (semi-)orthogonal matrix, scaled by gain.
    Orthogonal,
}

/// How a network's weights start out.
#[derive(Clone, Debug)]
pub enum Initializer {
    /// Drawn as `--init-type` and `--init-gain` say.
    Random { kind: InitType, gain: f64 },
    /// Zeros, for a network whose weights are loaded next: no random draws
    /// (which cost a fifth of a one-image translate) and nothing taken from the generator.
    ForLoading,
}

impl Default for Initializer {
    /// The official default: N(0, 0.02).
    fn default() -> Self {
        Self::Random { kind: InitType::Normal, gain: 0.02 }
    }
}

impl Initializer {
    pub fn new(kind: InitType, gain: f64) -> Self {
        Self::Random { kind, gain }
    }

    /// A convolution kernel. `shape` is as stored (`[out, in, k, k]`, or
    /// `[in, out, k, k]` for a transposed conv); PyTorch computes fans from the
    /// stored shape, dimension 1 being "fan in", and so do we.
    pub fn conv_weight(&self, shape: [usize; 4], rng: &mut Rng, device: &Device) -> Param<Tensor<4>> {
        let values = self.draw(&shape, rng);
        Param::from_tensor(Tensor::from_data(TensorData::new(values, shape), device))
    }

    /// A linear layer's `[out, in]` matrix, drawn as a 1x1 convolution's kernel would be.
    pub fn linear_weight(&self, shape: [usize; 2], rng: &mut Rng, device: &Device) -> Param<Tensor<2>> {
        let values = self.draw(&shape, rng);
        Param::from_tensor(Tensor::from_data(TensorData::new(values, shape), device))
    }

    /// The values of a weight of `shape` (`[out, in, ...]` as PyTorch stores
    /// it), drawn as `--init-type` says; zeros for [`Self::ForLoading`].
    fn draw(&self, shape: &[usize], rng: &mut Rng) -> Vec<f32> {
        let n = shape.iter().product::<usize>();
        let Self::Random { kind, gain } = *self else { return vec![0.0; n] };
        let receptive = shape[2..].iter().product::<usize>();
        let fan_in = shape[1] * receptive;
        let fan_out = shape[0] * receptive;
        match kind {
            InitType::Normal => (0..n).map(|_| rng.normal(0.0, gain) as f32).collect(),
            InitType::Xavier => {
                let std = gain * (2.0 / (fan_in + fan_out) as f64).sqrt();
                (0..n).map(|_| rng.normal(0.0, std) as f32).collect()
            }
            InitType::Kaiming => {
                let std = (2.0f64).sqrt() / (fan_in as f64).sqrt();
                (0..n).map(|_| rng.normal(0.0, std) as f32).collect()
            }
            InitType::Orthogonal => orthogonal(shape[0], n / shape[0], gain, rng),
        }
    }

    pub fn bias(&self, channels: usize, device: &Device) -> Param<Tensor<1>> {
        Param::from_tensor(Tensor::zeros([channels], device))
    }

    /// A norm layer's scale: N(1, gain) as the official code draws batch-norm weights.
    pub fn norm_weight(&self, channels: usize, rng: &mut Rng, device: &Device) -> Param<Tensor<1>> {
        let Self::Random { gain, .. } = *self else { return Param::from_tensor(Tensor::zeros([channels], device)) };
        let values: Vec<f32> = (0..channels).map(|_| rng.normal(1.0, gain) as f32).collect();
        Param::from_tensor(Tensor::from_data(TensorData::new(values, [channels]), device))
    }
}

/// `torch.nn.init.orthogonal_` on a `rows x cols` matrix: QR of a Gaussian
/// matrix (of the transpose when there are fewer rows than columns), with the
/// signs of R's diagonal folded into Q so the result is uniformly distributed.
fn orthogonal(rows: usize, cols: usize, gain: f64, rng: &mut Rng) -> Vec<f32> {
    let transpose = rows < cols;
    let (m, n) = if transpose { (cols, rows) } else { (rows, cols) };
    // Columns of an m x n Gaussian matrix (m >= n), made orthonormal by
    // modified Gram-Schmidt, which is the Q of a QR with R's diagonal positive.
    let mut q: Vec<Vec<f64>> = (0..n).map(|_| (0..m).map(|_| rng.normal(0.0, 1.0)).collect()).collect();
    for j in 0..n {
        for k in 0..j {
            let (done, rest) = q.split_at_mut(j);
            let dot: f64 = done[k].iter().zip(&rest[0]).map(|(a, b)| a * b).sum();
            rest[0].iter_mut().zip(&done[k]).for_each(|(v, u)| *v -= dot * u);
        }
        let norm = q[j].iter().map(|v| v * v).sum::<f64>().sqrt();
        q[j].iter_mut().for_each(|v| *v /= norm);
    }
    let mut out = vec![0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            let v = if transpose { q[r][c] } else { q[c][r] };
            out[r * cols + c] = (gain * v) as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orthogonal_rows_are_orthonormal() {
        let mut rng = Rng::seed_from(3);
        for (rows, cols) in [(8, 27), (27, 8), (16, 16)] {
            let w = orthogonal(rows, cols, 1.0, &mut rng);
            // the smaller side's vectors are orthonormal
            let (a, b) = (rows.min(cols), rows.max(cols));
            let get = |i: usize, k: usize| if rows <= cols { w[i * cols + k] as f64 } else { w[k * cols + i] as f64 };
            for i in 0..a {
                for j in 0..a {
                    let dot: f64 = (0..b).map(|k| get(i, k) * get(j, k)).sum();
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!((dot - want).abs() < 1e-5, "{rows}x{cols} ({i},{j}): {dot}");
                }
            }
        }
    }
}
