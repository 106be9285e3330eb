//! The Kernel Inception Distance as torch-fidelity computes it: the unbiased
//! MMD^2 with the polynomial kernel `(x.y / d + 1)^3`, averaged over random
//! subsets (100 of 1000 by default; the size capped at the smaller set, where
//! torch-fidelity refuses), drawn as torch-fidelity draws them (numpy's
//! `RandomState(2020)`), with the population standard deviation.
//!
//! Bińkowski et al., "Demystifying MMD GANs", ICLR 2018.

use faer::Mat;

use super::numpy_rng::RandomState;

/// torch-fidelity's `rng_seed`.
pub const SEED: u32 = 2020;

/// How KID samples its subsets.
#[derive(Clone, Copy, Debug)]
pub struct KidOptions {
    pub subsets: usize,
    pub subset_size: usize,
}

impl Default for KidOptions {
    fn default() -> Self {
        Self { subsets: 100, subset_size: 1000 }
    }
}

/// Mean and standard deviation of MMD^2 over the subsets, and the subset size used.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Kid {
    pub mean: f64,
    pub std: f64,
    pub subset_size: usize,
}

/// KID between feature sets `a` and `b` (rows of length `dims`; at least two each).
pub fn kid(a: &[f32], b: &[f32], dims: usize, options: KidOptions) -> Kid {
    let (na, nb) = (a.len() / dims, b.len() / dims);
    let m = options.subset_size.min(na).min(nb);
    assert!(m >= 2, "KID needs at least two feature vectors on each side");
    let mut rng = RandomState::new(SEED);
    let mmds: Vec<f64> = (0..options.subsets)
        .map(|_| {
            let ia = rng.choice_without_replacement(na, m);
            let ib = rng.choice_without_replacement(nb, m);
            let pick = |set: &[f32], idx: &[usize]| Mat::from_fn(m, dims, |i, j| set[idx[i] * dims + j] as f64);
            mmd2(&pick(a, &ia), &pick(b, &ib))
        })
        .collect();
    let n = mmds.len().max(1) as f64;
    let mean = mmds.iter().sum::<f64>() / n;
    let std = (mmds.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    Kid { mean, std, subset_size: m }
}

/// The polynomial kernel matrix `(X Y^T / d + 1)^3`.
fn kernel(x: &Mat<f64>, y: &Mat<f64>) -> Mat<f64> {
    let gamma = 1.0 / x.ncols() as f64;
    let dot = x * y.transpose();
    Mat::from_fn(dot.nrows(), dot.ncols(), |i, j| (dot[(i, j)] * gamma + 1.0).powi(3))
}

/// Unbiased MMD^2 of two equal-sized samples (torch-fidelity's `mmd2`, `unbiased`).
fn mmd2(x: &Mat<f64>, y: &Mat<f64>) -> f64 {
    let m = x.nrows() as f64;
    let (kxx, kyy, kxy) = (kernel(x, x), kernel(y, y), kernel(x, y));
    let sum = |k: &Mat<f64>| (0..k.ncols()).map(|j| (0..k.nrows()).map(|i| k[(i, j)]).sum::<f64>()).sum::<f64>();
    let diag = |k: &Mat<f64>| (0..k.nrows()).map(|i| k[(i, i)]).sum::<f64>();
    (sum(&kxx) - diag(&kxx) + sum(&kyy) - diag(&kyy)) / (m * (m - 1.0)) - 2.0 * sum(&kxy) / (m * m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_subsets_are_the_whole_set_and_shifted_sets_score_higher() {
        let a: Vec<f32> = (0..40).map(|i| ((i * 7) % 11) as f32 / 11.0).collect(); // 10 x 4
        let k = kid(&a, &a, 4, KidOptions { subsets: 3, subset_size: 100 });
        assert_eq!(k.subset_size, 10);
        // the same full set every time (subsets capped): the unbiased estimate of a set against itself
        assert!(k.std.abs() < 1e-15);
        let b: Vec<f32> = a.iter().map(|v| v + 1.0).collect();
        assert!(kid(&a, &b, 4, KidOptions::default()).mean > 0.1);
    }
}
