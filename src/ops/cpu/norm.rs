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

/// One plane's input gradient into `out`.
#[multiversion(targets("x86_64+avx2+fma", "x86_64+avx", "aarch64+neon"))]
fn backward_plane(g: &[f32], y: &[f32], rstd: f32, out: &mut [f32]) {
    let n = g.len() as f64;
    let mean_g = sum2(g, g, |a, _| a as f64) / n;
    let mean_gy = sum2(g, y, |a, b| a as f64 * b as f64) / n;
    let (mg, mgy) = (mean_g as f32, mean_gy as f32);
    for ((o, a), b) in out.iter_mut().zip(g).zip(y) {
        *o = rstd * (a - mg - b * mgy);
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

/// `dx = rstd * (dy - mean(dy) - y * mean(dy * y))` per plane, from the forward's output and `rstd`.
pub fn backward(dy: &[f32], y: &[f32], rstd: &[f32], plane: usize) -> Vec<f32> {
    let mut dx = vec![0f32; dy.len()];
    dx.par_chunks_mut(plane).zip(dy.par_chunks(plane).zip(y.par_chunks(plane))).with_min_len(min_len(plane)).enumerate().for_each(
        |(i, (out, (g, yy)))| backward_plane(g, yy, rstd[i], out),
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
}
