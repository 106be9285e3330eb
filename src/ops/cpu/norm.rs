//! Instance normalisation (no affine, biased variance, `eps` inside the
//! root), forward and backward each in one pass over the data.

use multiversion::multiversion;
use rayon::prelude::*;

use super::min_len;

/// `sum f(a[i], b[i])` in f64, in eight interleaved partial sums: one running
/// sum is a chain of dependent additions (about 4 cycles per value), which
/// made instance norm 9 % of a generator forward; eight let the additions
/// overlap and vectorise, with the same f64 precision.
#[inline(always)]
fn sum2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f64) -> f64 {
    const K: usize = 8;
    let mut acc = [0f64; K];
    let (ca, cb) = (a.chunks_exact(K), b.chunks_exact(K));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for j in 0..K {
            acc[j] += f(x[j], y[j]);
        }
    }
    acc.iter().sum::<f64>() + ra.iter().zip(rb).map(|(x, y)| f(*x, *y)).sum::<f64>()
}

/// Normalise one plane into `out`; returns its `1 / std`.
#[multiversion(targets("x86_64+avx2+fma", "x86_64+avx", "aarch64+neon"))]
fn normalize_plane(src: &[f32], out: &mut [f32], eps: f64) -> f32 {
    let n = src.len() as f64;
    let mean = sum2(src, src, |v, _| v as f64) / n;
    let var = sum2(src, src, |v, _| (v as f64 - mean) * (v as f64 - mean)) / n;
    let rstd = 1.0 / (var + eps).sqrt();
    let (m, r) = (mean as f32, rstd as f32);
    for (o, s) in out.iter_mut().zip(src) {
        *o = (s - m) * r;
    }
    r
}

/// ReLU as burn computes it: zero where `v <= 0` (a NaN passes).
#[inline(always)]
fn relu(v: f32) -> f32 {
    if v <= 0.0 { 0.0 } else { v }
}

/// `out = relu(y)`.
#[multiversion(targets("x86_64+avx2+fma", "x86_64+avx", "aarch64+neon"))]
fn rectify(y: &[f32], out: &mut [f32]) {
    for (o, v) in out.iter_mut().zip(y) {
        *o = relu(*v);
    }
}

/// One plane's input gradient into `out`; with `RELU`, of `relu(y)` rather
/// than `y`: `g` passes only where `y > 0`, as burn's ReLU backward would
/// have masked it (the same values, so the same sums, bit for bit).
#[multiversion(targets("x86_64+avx2+fma", "x86_64+avx", "aarch64+neon"))]
fn backward_plane<const RELU: bool>(g: &[f32], y: &[f32], rstd: f32, out: &mut [f32]) {
    let gate = |a: f32, b: f32| if RELU && b <= 0.0 { 0.0 } else { a };
    let n = g.len() as f64;
    let mean_g = sum2(g, y, |a, b| gate(a, b) as f64) / n;
    let mean_gy = sum2(g, y, |a, b| gate(a, b) as f64 * b as f64) / n;
    let (mg, mgy) = (mean_g as f32, mean_gy as f32);
    for ((o, a), b) in out.iter_mut().zip(g).zip(y) {
        *o = rstd * (gate(*a, *b) - mg - b * mgy);
    }
}

/// Normalise each plane of `plane` elements; returns the output and each plane's `1 / std`.
pub fn forward(x: &[f32], plane: usize, eps: f64) -> (Vec<f32>, Vec<f32>) {
    let mut y = vec![0f32; x.len()];
    let rstd: Vec<f32> = y
        .par_chunks_mut(plane)
        .zip(x.par_chunks(plane))
        .with_min_len(min_len(plane))
        .map(|(out, src)| normalize_plane(src, out, eps))
        .collect();
    (y, rstd)
}

/// [`forward`] then ReLU, each plane rectified while it is in cache: the
/// normalised values (what [`backward_relu`] needs), the rectified ones, and
/// each plane's `1 / std`. As two ops, ReLU was another pass over the
/// activations each way (training 2-3 % slower, BENCHMARKS.md).
pub fn forward_relu(x: &[f32], plane: usize, eps: f64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (mut y, mut r) = (vec![0f32; x.len()], vec![0f32; x.len()]);
    let rstd: Vec<f32> = y
        .par_chunks_mut(plane)
        .zip(r.par_chunks_mut(plane))
        .zip(x.par_chunks(plane))
        .with_min_len(min_len(plane))
        .map(|((out, rect), src)| {
            let s = normalize_plane(src, out, eps);
            rectify(out, rect);
            s
        })
        .collect();
    (y, r, rstd)
}

/// `y = relu(y)` in place (the norm-and-ReLU forward without a backward to keep `y` for).
pub fn rectify_in_place(y: &mut [f32], plane: usize) {
    y.par_chunks_mut(plane).with_min_len(min_len(plane)).for_each(|p| {
        for v in p {
            *v = relu(*v);
        }
    });
}

/// `dx = rstd * (dy - mean(dy) - y * mean(dy * y))` per plane, from the forward's output and `rstd`.
pub fn backward(dy: &[f32], y: &[f32], rstd: &[f32], plane: usize) -> Vec<f32> {
    backward_gated::<false>(dy, y, rstd, plane)
}

/// [`backward`] of [`forward_relu`]: `dy` is the gradient of the rectified
/// output, `y` the normalised one.
pub fn backward_relu(dy: &[f32], y: &[f32], rstd: &[f32], plane: usize) -> Vec<f32> {
    backward_gated::<true>(dy, y, rstd, plane)
}

fn backward_gated<const RELU: bool>(dy: &[f32], y: &[f32], rstd: &[f32], plane: usize) -> Vec<f32> {
    let mut dx = vec![0f32; dy.len()];
    dx.par_chunks_mut(plane).zip(dy.par_chunks(plane).zip(y.par_chunks(plane))).with_min_len(min_len(plane)).enumerate().for_each(
        |(i, (out, (g, yy)))| backward_plane::<RELU>(g, yy, rstd[i], out),
    );
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_differentiates() {
        let x: Vec<f32> = (0..24).map(|i| ((i * 7) % 10) as f32 * 0.3 + (i / 12) as f32).collect();
        let (y, rstd) = forward(&x, 12, 1e-5);
        for p in y.chunks(12) {
            let mean: f32 = p.iter().sum::<f32>() / 12.0;
            let var: f32 = p.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 12.0;
            assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-3, "{mean} {var}");
        }
        // finite differences of sum(y * r)
        let r: Vec<f32> = (0..24).map(|i| ((i * 5) % 7) as f32 - 3.0).collect();
        let dx = backward(&r, &y, &rstd, 12);
        let f = |x: &[f32]| forward(x, 12, 1e-5).0.iter().zip(&r).map(|(a, b)| (*a as f64) * (*b as f64)).sum::<f64>();
        for i in [0, 5, 13, 23] {
            let mut xp = x.clone();
            xp[i] += 1e-2;
            let mut xm = x.clone();
            xm[i] -= 1e-2;
            let d = (f(&xp) - f(&xm)) / 2e-2;
            assert!((d - dx[i] as f64).abs() < 1e-2 * d.abs().max(1.0), "dx[{i}] {} vs {d}", dx[i]);
        }
    }

    /// Norm and ReLU as one op: the same bits as the norm, then ReLU, then
    /// ReLU's backward (the gradient zeroed where the normalised value is
    /// not positive), then the norm's backward.
    #[test]
    fn norm_relu_matches_the_two_ops() {
        let plane = 37; // (a remainder after the eight-way sums)
        let x: Vec<f32> = (0..3 * plane).map(|i| ((i * 7919) % 101) as f32 * 0.03 - 1.4).collect();
        let dy: Vec<f32> = (0..3 * plane).map(|i| ((i * 613) % 53) as f32 * 0.05 - 1.2).collect();
        let (y, rstd) = forward(&x, plane, 1e-5);
        let (y2, r, rstd2) = forward_relu(&x, plane, 1e-5);
        assert_eq!((&y2, &rstd2), (&y, &rstd));
        let want_r: Vec<f32> = y.iter().map(|v| v.max(0.0)).collect();
        assert_eq!(r, want_r);
        assert!(r.contains(&0.0) && r.iter().any(|v| *v > 0.0), "both sides of the ReLU");
        let mut inplace = y.clone();
        rectify_in_place(&mut inplace, plane);
        assert_eq!(inplace, want_r);
        let masked: Vec<f32> = dy.iter().zip(&y).map(|(g, v)| if *v > 0.0 { *g } else { 0.0 }).collect();
        assert_eq!(backward_relu(&dy, &y, &rstd, plane), backward(&masked, &y, &rstd, plane));
    }
}
