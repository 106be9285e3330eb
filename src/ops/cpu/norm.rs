//! Instance normalisation (no affine, biased variance, `eps` inside the
//! root), forward and backward each in one pass over the data.

use std::mem::MaybeUninit;

use multiversion::multiversion;
use rayon::prelude::*;

use super::{assume_written, min_len, written};

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
fn normalize_plane(src: &[f32], out: &mut [MaybeUninit<f32>], eps: f64) -> f32 {
    let n = src.len() as f64;
    let mean = sum2(src, src, |v, _| v as f64) / n;
    let var = sum2(src, src, |v, _| (v as f64 - mean) * (v as f64 - mean)) / n;
    let rstd = 1.0 / (var + eps).sqrt();
    let (m, r) = (mean as f32, rstd as f32);
    assert_eq!(out.len(), src.len());
    for (o, s) in out.iter_mut().zip(src) {
        o.write((s - m) * r);
    }
    r
}

/// The activation a norm may be followed by in one op ([`forward_act`],
/// [`backward_act`]), computed as burn's flex computes it on its own.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// Zero where `v <= 0` (a NaN passes).
    Relu,
    /// `v * slope` where `v < 0` (a NaN passes).
    LeakyRelu(f32),
}

impl Activation {
    #[inline(always)]
    fn apply(self, v: f32) -> f32 {
        match self {
            Activation::Relu => if v <= 0.0 { 0.0 } else { v },
            Activation::LeakyRelu(slope) => if v < 0.0 { v * slope } else { v },
        }
    }

    /// The gradient through it, from the gradient `g` of its output at
    /// input `v`: what its backward alone passes (a NaN input passes `g`).
    #[inline(always)]
    fn backward(self, g: f32, v: f32) -> f32 {
        match self {
            Activation::Relu => if v <= 0.0 { 0.0 } else { g },
            Activation::LeakyRelu(slope) => if v < 0.0 { g * slope } else { g },
        }
    }
}

/// `out = act(y)`.
#[multiversion(targets("x86_64+avx2+fma", "x86_64+avx", "aarch64+neon"))]
fn activate(y: &[f32], out: &mut [MaybeUninit<f32>], act: Activation) {
    assert_eq!(out.len(), y.len());
    for (o, v) in out.iter_mut().zip(y) {
        o.write(act.apply(*v));
    }
}

/// What [`backward_plane`] takes its output gradient through (a constant,
/// so that each is its own loop).
const PLAIN: u8 = 0;
const RELU: u8 = 1;
const LEAKY: u8 = 2;

/// One plane's input gradient into `out`; with `RELU` or `LEAKY`, of
/// `act(y)` rather than `y`: `g` as [`Activation::backward`] alone would
/// have passed it, the same values, so the same sums, bit for bit.
#[multiversion(targets("x86_64+avx2+fma", "x86_64+avx", "aarch64+neon"))]
fn backward_plane<const KIND: u8>(g: &[f32], y: &[f32], rstd: f32, slope: f32, out: &mut [MaybeUninit<f32>]) {
    let act = match KIND {
        RELU => Some(Activation::Relu),
        LEAKY => Some(Activation::LeakyRelu(slope)),
        _ => None,
    };
    let gate = |a: f32, b: f32| act.map_or(a, |act| act.backward(a, b));
    let n = g.len() as f64;
    let mean_g = sum2(g, y, |a, b| gate(a, b) as f64) / n;
    let mean_gy = sum2(g, y, |a, b| gate(a, b) as f64 * b as f64) / n;
    let (mg, mgy) = (mean_g as f32, mean_gy as f32);
    assert!(out.len() == g.len() && out.len() == y.len());
    for ((o, a), b) in out.iter_mut().zip(g).zip(y) {
        o.write(rstd * (gate(*a, *b) - mg - b * mgy));
    }
}

/// Normalise each plane of `plane` elements; returns the output and each plane's `1 / std`.
pub fn forward(x: &[f32], plane: usize, eps: f64) -> (Vec<f32>, Vec<f32>) {
    // SAFETY: the planes of `y` and `x` pair up one to one, and
    // `normalize_plane` writes every value of its plane.
    unsafe { written(x.len(), |y| y.par_chunks_mut(plane).zip(x.par_chunks(plane)).with_min_len(min_len(plane)).map(|(out, src)| normalize_plane(src, out, eps)).collect()) }
}

/// [`forward`] then `act`, each plane activated while it is in cache: the
/// normalised values (what [`backward_act`] needs), the activated ones, and
/// each plane's `1 / std`. As two ops, the activation was another pass over
/// the activations each way (training 2-3 % slower, BENCHMARKS.md).
pub fn forward_act(x: &[f32], plane: usize, eps: f64, act: Activation) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    // SAFETY: the planes of `y`, `a` and `x` pair up one to one;
    // `normalize_plane` writes every value of its plane of `y` (which
    // `activate` then reads) and `activate` every value of `a`'s.
    let (y, (a, rstd)) = unsafe {
        written(x.len(), |y| {
            written(x.len(), |a| {
                y.par_chunks_mut(plane)
                    .zip(a.par_chunks_mut(plane))
                    .zip(x.par_chunks(plane))
                    .with_min_len(min_len(plane))
                    .map(|((out, activated), src)| {
                        let s = normalize_plane(src, out, eps);
                        activate(assume_written(out), activated, act);
                        s
                    })
                    .collect()
            })
        })
    };
    (y, a, rstd)
}

/// `y = act(y)` in place (the forward without a backward to keep `y` for).
pub fn activate_in_place(y: &mut [f32], plane: usize, act: Activation) {
    y.par_chunks_mut(plane).with_min_len(min_len(plane)).for_each(|p| {
        for v in p {
            *v = act.apply(*v);
        }
    });
}

/// `act(x)` alone, plane by plane: an activation with no norm before it
/// (a discriminator's first layer), one pass instead of burn's comparison,
/// product and selection.
pub fn activation(x: &[f32], plane: usize, act: Activation) -> Vec<f32> {
    let plane = plane.max(1); // (a tensor with empty planes has no values either)
    // SAFETY: the planes pair up one to one; `activate` writes every value.
    unsafe { written(x.len(), |y| y.par_chunks_mut(plane).zip(x.par_chunks(plane)).with_min_len(min_len(plane)).for_each(|(out, src)| activate(src, out, act))) }.0
}

/// The gradient through [`activation`] from that of its output `y`: `dy`
/// where `y` passed, `act`'s slope of it where not. `y`'s sign is its
/// input's (ReLU, a positive slope), so `Activation::backward` reads it as
/// it would the input; only a negative input so small that its product
/// with the slope rounds to zero would read otherwise.
pub fn activation_backward(dy: &[f32], y: &[f32], plane: usize, act: Activation) -> Vec<f32> {
    assert_eq!(dy.len(), y.len());
    let plane = plane.max(1); // (a tensor with empty planes has no values either)
    // SAFETY: the planes pair up one to one; `gradient_through` writes every value.
    unsafe { written(y.len(), |dx| dx.par_chunks_mut(plane).zip(dy.par_chunks(plane).zip(y.par_chunks(plane))).with_min_len(min_len(plane)).for_each(|(out, (g, v))| gradient_through(g, v, out, act))) }.0
}

/// `out = act'(v) g`, value by value.
#[multiversion(targets("x86_64+avx2+fma", "x86_64+avx", "aarch64+neon"))]
fn gradient_through(g: &[f32], v: &[f32], out: &mut [MaybeUninit<f32>], act: Activation) {
    assert!(out.len() == g.len() && out.len() == v.len());
    for ((o, g), v) in out.iter_mut().zip(g).zip(v) {
        o.write(act.backward(*g, *v));
    }
}

/// `dx = rstd * (dy - mean(dy) - y * mean(dy * y))` per plane, from the forward's output and `rstd`.
pub fn backward(dy: &[f32], y: &[f32], rstd: &[f32], plane: usize) -> Vec<f32> {
    backward_gated::<PLAIN>(dy, y, rstd, plane, 0.0)
}

/// [`backward`] of [`forward_act`]: `dy` is the gradient of the activated
/// output, `y` the normalised one.
pub fn backward_act(dy: &[f32], y: &[f32], rstd: &[f32], plane: usize, act: Activation) -> Vec<f32> {
    match act {
        Activation::Relu => backward_gated::<RELU>(dy, y, rstd, plane, 0.0),
        Activation::LeakyRelu(slope) => backward_gated::<LEAKY>(dy, y, rstd, plane, slope),
    }
}

fn backward_gated<const KIND: u8>(dy: &[f32], y: &[f32], rstd: &[f32], plane: usize, slope: f32) -> Vec<f32> {
    assert_eq!(dy.len(), y.len());
    // SAFETY: the planes pair up one to one; `backward_plane` writes every value.
    let (dx, ()) = unsafe {
        written(dy.len(), |dx| {
            dx.par_chunks_mut(plane).zip(dy.par_chunks(plane).zip(y.par_chunks(plane))).with_min_len(min_len(plane)).enumerate().for_each(
                |(i, (out, (g, yy)))| backward_plane::<KIND>(g, yy, rstd[i], slope, out),
            )
        })
    };
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

    /// Norm and activation as one op: the same bits as the norm, then the
    /// activation as burn computes it, then the activation's backward, then
    /// the norm's backward.
    #[test]
    fn norm_and_activation_match_the_two_ops() {
        let plane = 37; // (a remainder after the eight-way sums)
        let x: Vec<f32> = (0..3 * plane).map(|i| ((i * 7919) % 101) as f32 * 0.03 - 1.4).collect();
        let dy: Vec<f32> = (0..3 * plane).map(|i| ((i * 613) % 53) as f32 * 0.05 - 1.2).collect();
        let (y, rstd) = forward(&x, plane, 1e-5);
        assert!(y.iter().any(|v| *v < 0.0) && y.iter().any(|v| *v > 0.0), "both sides of the activation");
        for act in [Activation::Relu, Activation::LeakyRelu(0.2)] {
            // burn-flex's relu and leaky_relu, and their gradients (autodiff's
            // leaky_relu is mask_where(x < 0, x * slope) and its backward)
            let fwd = |v: f32| match act {
                Activation::Relu => if v.is_nan() || v > 0.0 { v } else { 0.0 },
                Activation::LeakyRelu(_) => if v >= 0.0 { v } else { 0.2 * v },
            };
            let bwd = |g: f32, v: f32| match act {
                Activation::Relu => if v > 0.0 { g } else { 0.0 },
                Activation::LeakyRelu(_) => if v < 0.0 { g * 0.2 } else { g },
            };
            let (y2, a, rstd2) = forward_act(&x, plane, 1e-5, act);
            assert_eq!((&y2, &rstd2), (&y, &rstd), "{act:?}");
            let want: Vec<f32> = y.iter().map(|v| fwd(*v)).collect();
            assert_eq!(a, want, "{act:?}");
            let mut inplace = y.clone();
            activate_in_place(&mut inplace, plane, act);
            assert_eq!(inplace, want, "{act:?}");
            let gated: Vec<f32> = dy.iter().zip(&y).map(|(g, v)| bwd(*g, *v)).collect();
            assert_eq!(backward_act(&dy, &y, &rstd, plane, act), backward(&gated, &y, &rstd, plane), "{act:?}");
            // and alone, with no norm before it
            assert_eq!(activation(&y, plane, act), want, "{act:?} alone");
            assert_eq!(activation_backward(&dy, &want, plane, act), gated, "{act:?} alone, backward from the output");
        }
    }
}
