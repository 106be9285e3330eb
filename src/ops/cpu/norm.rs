//! Instance normalisation (no affine, biased variance, `eps` inside the
//! root), forward and backward each in one pass over the data.

use rayon::prelude::*;

use super::min_len;

/// Normalise each plane of `plane` elements; returns the output and each plane's `1 / std`.
pub fn forward(x: &[f32], plane: usize, eps: f64) -> (Vec<f32>, Vec<f32>) {
    let mut y = vec![0f32; x.len()];
    let rstd: Vec<f32> = y
        .par_chunks_mut(plane)
        .zip(x.par_chunks(plane))
        .with_min_len(min_len(plane))
        .map(|(out, src)| {
            let n = src.len() as f64;
            let mean = src.iter().map(|v| *v as f64).sum::<f64>() / n;
            let var = src.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / n;
            let rstd = 1.0 / (var + eps).sqrt();
            let (m, r) = (mean as f32, rstd as f32);
            for (o, s) in out.iter_mut().zip(src) {
                *o = (s - m) * r;
            }
            r
        })
        .collect();
    (y, rstd)
}

/// `dx = rstd * (dy - mean(dy) - y * mean(dy * y))` per plane, from the forward's output and `rstd`.
pub fn backward(dy: &[f32], y: &[f32], rstd: &[f32], plane: usize) -> Vec<f32> {
    let mut dx = vec![0f32; dy.len()];
    dx.par_chunks_mut(plane).zip(dy.par_chunks(plane).zip(y.par_chunks(plane))).with_min_len(min_len(plane)).enumerate().for_each(
        |(i, (out, (g, yy)))| {
            let n = g.len() as f64;
            let mean_g = g.iter().map(|v| *v as f64).sum::<f64>() / n;
            let mean_gy = g.iter().zip(yy).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>() / n;
            let (mg, mgy, r) = (mean_g as f32, mean_gy as f32, rstd[i]);
            for ((o, a), b) in out.iter_mut().zip(g).zip(yy) {
                *o = r * (a - mg - b * mgy);
            }
        },
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
