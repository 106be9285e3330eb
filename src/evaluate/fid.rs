//! The Fréchet Inception Distance between two sets of features, as
//! pytorch-fid computes it: each set summarised by its mean and covariance
//! (f64, N-1 normalisation), then
//! `|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr(sqrt(S1 S2))`.
//!
//! pytorch-fid takes `tr(sqrt(S1 S2))` from scipy's `sqrtm`. S1 S2 is not
//! symmetric, but it is similar to `sqrt(S1) S2 sqrt(S1)`, which is
//! (symmetric, positive semi-definite): the trace is the sum of the square
//! roots of that matrix's eigenvalues. Two symmetric eigendecompositions,
//! stable also when the covariances are rank-deficient, where scipy's Schur
//! route returns noise-sized imaginary parts that pytorch-fid drops.
//!
//! With fewer vectors than dimensions in one set (a test set of 100-200
//! images against 2048 features, the usual case) there is a cheaper route to
//! the same number: with `A` that set's centred vectors (n x d), S1 S2 =
//! A^T A S2 / (n-1) has the nonzero eigenvalues of `A S2 A^T / (n-1)`, an
//! n x n symmetric matrix. No d x d eigendecomposition is needed then.

use faer::{Mat, Side};

/// A set's mean and covariance.
pub struct Gaussian {
    pub mean: Vec<f64>,
    pub cov: Mat<f64>,
}

/// Rows are processed this many at a time, so a large set's centred copy
/// (50,000 x 2048 in f64 would be 800 MB) is never held whole.
const CHUNK: usize = 2048;

impl Gaussian {
    /// Mean and covariance of `n` feature vectors of length `dims` stored row by row.
    /// Needs at least two vectors.
    pub fn of(features: &[f32], dims: usize) -> Self {
        let n = features.len() / dims;
        assert!(n >= 2 && features.len() == n * dims, "need at least two feature vectors of length {dims}");
        let mut mean = vec![0f64; dims];
        for row in features.chunks_exact(dims) {
            mean.iter_mut().zip(row).for_each(|(m, v)| *m += *v as f64);
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut cov = Mat::<f64>::zeros(dims, dims);
        for block in features.chunks(CHUNK * dims) {
            let rows = block.len() / dims;
            let centred = Mat::from_fn(rows, dims, |i, j| block[i * dims + j] as f64 - mean[j]);
            faer::linalg::matmul::matmul(
                cov.as_mut(),
                faer::Accum::Add,
                centred.transpose(),
                centred.as_ref(),
                1.0,
                faer::Par::rayon(0),
            );
        }
        let scale = 1.0 / (n - 1) as f64;
        let cov = Mat::from_fn(dims, dims, |i, j| cov[(i, j)] * scale);
        Self { mean, cov }
    }
}

/// FID between two sets of feature vectors (rows of length `dims`, at least two in each).
pub fn fid(a: &[f32], b: &[f32], dims: usize) -> f64 {
    // FID is symmetric: let `small` be the set with fewer vectors
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let n = small.len() / dims;
    if n >= dims {
        return frechet_distance(&Gaussian::of(small, dims), &Gaussian::of(large, dims));
    }
    let large = Gaussian::of(large, dims);
    let mut mean = vec![0f64; dims];
    for row in small.chunks_exact(dims) {
        mean.iter_mut().zip(row).for_each(|(m, v)| *m += *v as f64);
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let centred = Mat::from_fn(n, dims, |i, j| small[i * dims + j] as f64 - mean[j]);
    let scale = 1.0 / (n - 1) as f64;
    let trace_small = (0..n).map(|i| (0..dims).map(|j| centred[(i, j)].powi(2)).sum::<f64>()).sum::<f64>() * scale;
    let trace_large = (0..dims).map(|i| large.cov[(i, i)]).sum::<f64>();
    let inner = &(&centred * &large.cov) * centred.transpose();
    let inner = Mat::from_fn(n, n, |i, j| 0.5 * (inner[(i, j)] + inner[(j, i)]) * scale);
    let tr_sqrt = match inner.self_adjoint_eigenvalues(Side::Lower) {
        Ok(mu) => mu.iter().map(|m| m.max(0.0).sqrt()).sum::<f64>(),
        Err(_) => return frechet_distance(&Gaussian::of(small, dims), &large),
    };
    let diff: f64 = mean.iter().zip(&large.mean).map(|(x, y)| (x - y).powi(2)).sum();
    diff + trace_small + trace_large - 2.0 * tr_sqrt
}

/// FID between two Gaussians of the same dimension.
pub fn frechet_distance(a: &Gaussian, b: &Gaussian) -> f64 {
    let diff: f64 = a.mean.iter().zip(&b.mean).map(|(x, y)| (x - y).powi(2)).sum();
    let trace = |m: &Mat<f64>| (0..m.nrows()).map(|i| m[(i, i)]).sum::<f64>();
    let mut tr_sqrt = trace_sqrt_product(&a.cov, &b.cov);
    if !tr_sqrt.is_finite() {
        // pytorch-fid's fallback for a singular product: a little on the diagonals
        const EPS: f64 = 1e-6;
        let offset = |m: &Mat<f64>| Mat::from_fn(m.nrows(), m.ncols(), |i, j| m[(i, j)] + if i == j { EPS } else { 0.0 });
        tr_sqrt = trace_sqrt_product(&offset(&a.cov), &offset(&b.cov));
    }
    diff + trace(&a.cov) + trace(&b.cov) - 2.0 * tr_sqrt
}

/// `tr(sqrt(S1 S2))` for symmetric positive semi-definite S1, S2.
fn trace_sqrt_product(s1: &Mat<f64>, s2: &Mat<f64>) -> f64 {
    let Ok(e1) = s1.self_adjoint_eigen(Side::Lower) else { return f64::NAN };
    let (u, lambda) = (e1.U(), e1.S().column_vector());
    let n = s1.nrows();
    // sqrt(S1) = U diag(sqrt(max(lambda, 0))) U^T; rounding can leave tiny negative eigenvalues
    let scaled = Mat::from_fn(n, n, |i, j| u[(i, j)] * lambda[j].max(0.0).sqrt());
    let root = &scaled * u.transpose();
    let inner = &(&root * s2) * &root;
    // symmetrise what rounding left unsymmetric before the symmetric solver reads one triangle
    let inner = Mat::from_fn(n, n, |i, j| 0.5 * (inner[(i, j)] + inner[(j, i)]));
    match inner.self_adjoint_eigenvalues(Side::Lower) {
        Ok(mu) => mu.iter().map(|m| m.max(0.0).sqrt()).sum(),
        Err(_) => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_dimension_is_the_closed_form() {
        // N(m1, v1) vs N(m2, v2): (m1 - m2)^2 + v1 + v2 - 2 sqrt(v1 v2)
        let a = Gaussian::of(&[1.0, 3.0], 1); // mean 2, var 2
        let b = Gaussian::of(&[0.0, 8.0, 4.0], 1); // mean 4, var 16
        let want = 4.0 + 2.0 + 16.0 - 2.0 * (32f64).sqrt();
        assert!((frechet_distance(&a, &b) - want).abs() < 1e-12);
        assert!(frechet_distance(&a, &a).abs() < 1e-12);
    }

    #[test]
    fn the_route_for_small_sets_gives_the_full_routes_number() {
        // 5 and 7 vectors in 8 dimensions: rank-deficient both
        let a: Vec<f32> = (0..40).map(|i| ((i * 37) % 17) as f32 / 7.0).collect();
        let b: Vec<f32> = (0..56).map(|i| ((i * 53) % 19) as f32 / 5.0 - 1.0).collect();
        let full = frechet_distance(&Gaussian::of(&a, 8), &Gaussian::of(&b, 8));
        for got in [fid(&a, &b, 8), fid(&b, &a, 8)] {
            assert!((got - full).abs() < 1e-7 * full, "{got} vs {full}");
        }
    }

    #[test]
    fn diagonal_covariances_match_the_closed_form() {
        // independent axes: the distance is the sum over axes
        let a = Gaussian { mean: vec![0.0, 1.0], cov: Mat::from_fn(2, 2, |i, j| if i == j { [1.0, 4.0][i] } else { 0.0 }) };
        let b = Gaussian { mean: vec![1.0, 1.0], cov: Mat::from_fn(2, 2, |i, j| if i == j { [9.0, 0.0][i] } else { 0.0 }) };
        let want = 1.0 + (1.0 + 9.0 - 2.0 * 3.0) + (4.0 + 0.0 - 0.0);
        assert!((frechet_distance(&a, &b) - want).abs() < 1e-9, "{}", frechet_distance(&a, &b));
    }
}
