//! 2-D convolution (square kernel, equal strides, symmetric zero padding,
//! one group: every conv of the CycleGAN networks), its input gradient and
//! its weight gradient. Transposed convolutions are the input gradient of a
//! convolution, and their gradients are a forward convolution and a weight
//! gradient with the roles of input and output swapped.

use multiversion::multiversion;
use rayon::prelude::*;

use super::{Geometry, Nchw, Products, bf16, min_len};
use super::direct;
use super::gemm::{Mat, Threads, matmul};
use super::scratch::Scratch;
use super::winograd::{self, Filters};

/// How a convolution is computed; chosen by shape alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Winograd,
    Direct,
    Gemm,
}

/// Channel counts at or below which direct loops beat im2col + GEMM.
const FEW_CHANNELS: usize = 4;
/// Channel counts from which Winograd's transforms pay for themselves.
const WINOGRAD_CHANNELS: usize = 16;

fn method(ci: usize, co: usize, g: Geometry) -> Method {
    if g.stride == 1 && (ci <= FEW_CHANNELS || co <= FEW_CHANNELS) {
        Method::Direct
    } else if g.k == 3 && g.stride == 1 && g.pad <= 2 && ci >= WINOGRAD_CHANNELS && co >= WINOGRAD_CHANNELS {
        Method::Winograd
    } else {
        Method::Gemm
    }
}

/// `y = conv(x, w) + bias`; `w` is `[co, ci, k, k]`. The matrix products
/// compute in `products` (the direct loops for few channels in f32 always).
pub fn forward(x: &[f32], xs: Nchw, w: &[f32], co: usize, bias: Option<&[f32]>, g: Geometry, products: Products) -> (Vec<f32>, Nchw) {
    let ys = g.out_shape(xs, co);
    assert_eq!(x.len(), xs.len());
    assert_eq!(w.len(), co * xs.c * g.k * g.k);
    let mut y = match method(xs.c, co, g) {
        // the output transform adds the bias while the tile is in registers
        Method::Winograd => return (winograd::conv3x3(x, xs, Filters::new(w, xs.c), co, bias, g.pad, products), ys),
        Method::Direct => direct::conv(x, xs, w, co, g),
        Method::Gemm => gemm_forward(x, xs, w, co, g, ys, products),
    };
    if let Some(b) = bias {
        y.par_chunks_mut(ys.plane()).with_min_len(min_len(ys.plane())).enumerate().for_each(|(i, plane)| {
            let v = b[i % co];
            plane.iter_mut().for_each(|p| *p += v);
        });
    }
    (y, ys)
}

/// `y = conv(x, w)` for a `kh x kw` kernel, stride 1 and zero padding
/// `[ph, pw]` (Inception's 1x7, 7x1, 1x3 and 3x1 layers): im2col and GEMM.
/// Inference only; `w` is `[co, ci, kh, kw]`.
pub fn forward_rect(x: &[f32], xs: Nchw, w: &[f32], co: usize, kernel: [usize; 2], padding: [usize; 2]) -> (Vec<f32>, Nchw) {
    let ([kh, kw], [ph, pw]) = (kernel, padding);
    let ys = Nchw::new(xs.n, co, xs.h + 2 * ph + 1 - kh, xs.w + 2 * pw + 1 - kw);
    assert_eq!(x.len(), xs.len());
    assert_eq!(w.len(), co * xs.c * kh * kw);
    let (kk, plane) = (xs.c * kh * kw, ys.plane());
    let mut y = vec![0f32; ys.len()];
    let mut col = Scratch::take(kk * plane);
    for b in 0..xs.n {
        let src = &x[b * xs.c * xs.plane()..(b + 1) * xs.c * xs.plane()];
        im2col_rect(src, Nchw::new(1, xs.c, xs.h, xs.w), kernel, 1, padding, ys.h, ys.w, &mut col);
        let out = &mut y[b * co * plane..(b + 1) * co * plane];
        matmul(co, plane, kk, Mat::rows(w, kk), Mat::rows(&col, plane), out, false, Threads::All);
    }
    (y, ys)
}

/// The gradient with respect to the input `x` (of shape `xs`) given the
/// gradient `dy` of the output (of shape `ys`).
pub fn backward_input(dy: &[f32], ys: Nchw, w: &[f32], xs: Nchw, g: Geometry, products: Products) -> Vec<f32> {
    assert_eq!(dy.len(), ys.len());
    let (ci, co, k) = (xs.c, ys.c, g.k);
    match method(ci, co, g) {
        // For stride 1 the input gradient is a convolution of dy, zero-padded
        // by k - 1 - pad, with the kernel flipped and its channels swapped
        // (still a Winograd shape: k = 3, pad 2 - pad).
        Method::Winograd if xs.h + 2 * g.pad + 1 == ys.h + k && xs.w + 2 * g.pad + 1 == ys.w + k => {
            winograd::conv3x3(dy, ys, Filters::flipped(w, co), ci, None, k - 1 - g.pad, products)
        }
        Method::Direct if xs.h + 2 * g.pad + 1 == ys.h + k && xs.w + 2 * g.pad + 1 == ys.w + k => {
            let wt = flip_transpose(w, co, ci, k);
            let gt = Geometry::new(k, 1, k - 1 - g.pad);
            let (dx, _) = forward(dy, ys, &wt, ci, None, gt, products);
            dx
        }
        _ => gemm_backward_input(dy, ys, w, xs, g, products),
    }
}

/// The gradient with respect to the weight `[co, ci, k, k]`.
pub fn backward_weight(x: &[f32], xs: Nchw, dy: &[f32], ys: Nchw, g: Geometry) -> Vec<f32> {
    assert_eq!(x.len(), xs.len());
    assert_eq!(dy.len(), ys.len());
    match method(xs.c, ys.c, g) {
        Method::Winograd => winograd::weight_grad3x3(x, xs, dy, ys, g.pad),
        Method::Direct => direct::weight_grad(x, xs, dy, ys, g),
        _ => gemm_backward_weight(x, xs, dy, ys, g),
    }
}

/// `w[co][ci][ky][kx]` -> `w'[ci][co][k-1-ky][k-1-kx]`: each k x k filter
/// reversed as a whole, in parallel over the input channels.
fn flip_transpose(w: &[f32], co: usize, ci: usize, k: usize) -> Vec<f32> {
    let kk = k * k;
    let mut out = vec![0f32; w.len()];
    out.par_chunks_mut(co * kk).with_min_len(min_len(co * kk)).enumerate().for_each(|(i, dst)| {
        for (o, filter) in dst.chunks_exact_mut(kk).enumerate() {
            for (d, s) in filter.iter_mut().zip(w[(o * ci + i) * kk..][..kk].iter().rev()) {
                *d = *s;
            }
        }
    });
    out
}

/// The im2col matrix of one image: row `(c * k + ky) * k + kx`, column
/// `oy * ow + ox`, holding `x[c][oy * s + ky - p][ox * s + kx - p]` (0 outside).
fn im2col(x: &[f32], xs: Nchw, g: Geometry, oh: usize, ow: usize, col: &mut [f32]) {
    im2col_rect(x, xs, [g.k, g.k], g.stride, [g.pad, g.pad], oh, ow, col);
}

/// [`im2col`] for a `kh x kw` kernel with its own padding per axis
/// (Inception's 1x7 and 7x1 layers; the generators' layers are square).
#[allow(clippy::too_many_arguments)]
fn im2col_rect(x: &[f32], xs: Nchw, [kh, kw]: [usize; 2], s: usize, [ph, pw]: [usize; 2], oh: usize, ow: usize, col: &mut [f32]) {
    let (h, w) = (xs.h, xs.w);
    let rows_per_channel = kh * kw * oh * ow;
    col.par_chunks_mut(rows_per_channel).with_min_len(min_len(rows_per_channel)).enumerate().for_each(|(c, dst)| {
        let src = &x[c * h * w..(c + 1) * h * w];
        for ky in 0..kh {
            for kx in 0..kw {
                let row = &mut dst[(ky * kw + kx) * oh * ow..(ky * kw + kx + 1) * oh * ow];
                for oy in 0..oh {
                    let out = &mut row[oy * ow..(oy + 1) * ow];
                    let iy = (oy * s + ky) as isize - ph as isize;
                    if iy < 0 || iy >= h as isize {
                        out.fill(0.0);
                        continue;
                    }
                    let line = &src[iy as usize * w..(iy as usize + 1) * w];
                    let (lo, hi) = inside(ow, w, s, kx, pw);
                    out[..lo].fill(0.0);
                    out[hi..].fill(0.0);
                    if lo == hi {
                        continue;
                    }
                    let from = &line[lo * s + kx - pw..];
                    match s {
                        1 => out[lo..hi].copy_from_slice(&from[..hi - lo]),
                        2 => every_other(&from[..2 * (hi - lo) - 1], &mut out[lo..hi]),
                        _ => {
                            for (o, v) in out[lo..hi].iter_mut().zip(from.chunks(s)) {
                                *o = v[0];
                            }
                        }
                    }
                }
            }
        }
    });
}

/// The outputs `lo..hi` of `0..ow` whose input column `ox * s + kx - p`
/// lies inside `0..w` (`lo == hi` when none does). Testing each element
/// instead was 7 % of a small training step.
fn inside(ow: usize, w: usize, s: usize, kx: usize, p: usize) -> (usize, usize) {
    let lo = if p > kx { (p - kx).div_ceil(s) } else { 0 }.min(ow);
    let hi = if w + p > kx { ((w - 1 + p - kx) / s + 1).min(ow) } else { 0 };
    (lo, hi.max(lo))
}

/// `out[j] = from[2 * j]`: a stride-2 layer's im2col row. Its own
/// function so that it is compiled for AVX2, where the compiler turns it
/// into whole-vector loads and shuffles (one value at a time before).
#[multiversion(targets("x86_64+avx2+fma", "x86_64+avx", "aarch64+neon"))]
fn every_other(from: &[f32], out: &mut [f32]) {
    assert!(from.len() + 1 >= 2 * out.len());
    let pairs = from.len() / 2;
    for (o, v) in out.iter_mut().zip(from.chunks_exact(2)) {
        *o = v[0];
    }
    if out.len() > pairs {
        out[pairs] = from[2 * pairs];
    }
}

/// Add an im2col matrix back into image positions (the adjoint of [`im2col`]).
fn col2im(col: &[f32], xs: Nchw, g: Geometry, oh: usize, ow: usize, x: &mut [f32]) {
    if (g.k, g.stride, g.pad) == (3, 2, 1) {
        col2im_3x3_stride2(col, xs, oh, ow, x)
    } else {
        col2im_any(col, xs, g, oh, ow, x)
    }
}

/// [`col2im`] for any geometry, one kernel tap at a time.
fn col2im_any(col: &[f32], xs: Nchw, g: Geometry, oh: usize, ow: usize, x: &mut [f32]) {
    let (h, w, k, s, p) = (xs.h, xs.w, g.k, g.stride, g.pad);
    let rows_per_channel = k * k * oh * ow;
    x.par_chunks_mut(h * w).with_min_len(min_len(rows_per_channel)).enumerate().for_each(|(c, dst)| {
        let src = &col[c * rows_per_channel..(c + 1) * rows_per_channel];
        for ky in 0..k {
            for kx in 0..k {
                let row = &src[(ky * k + kx) * oh * ow..(ky * k + kx + 1) * oh * ow];
                for oy in 0..oh {
                    let iy = (oy * s + ky) as isize - p as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    let line = &mut dst[iy as usize * w..(iy as usize + 1) * w];
                    let (lo, hi) = inside(ow, w, s, kx, p);
                    if lo == hi {
                        continue;
                    }
                    let to = &mut line[lo * s + kx - p..];
                    for (t, v) in to.chunks_mut(s).zip(&row[oy * ow + lo..oy * ow + hi]) {
                        t[0] += v;
                    }
                }
            }
        }
    });
}

/// [`col2im`] for the networks' stride-2 layers (3x3, padding 1): the
/// three taps of a kernel row go into one output row in one pass, output
/// columns in pairs (tap 1 into the even one, taps 0 then 2 into the odd
/// one), which the compiler vectorises; one strided add per tap before was
/// 6 % of a forward pass. Each value receives its terms in the same order as
/// the general loop (by kernel row, then column): the same bits.
fn col2im_3x3_stride2(col: &[f32], xs: Nchw, oh: usize, ow: usize, x: &mut [f32]) {
    let (h, w) = (xs.h, xs.w);
    let rows_per_channel = 9 * oh * ow;
    x.par_chunks_mut(h * w).with_min_len(min_len(rows_per_channel)).enumerate().for_each(|(c, dst)| {
        let src = &col[c * rows_per_channel..(c + 1) * rows_per_channel];
        for ky in 0..3 {
            for oy in 0..oh {
                // input row 2 * oy + ky - 1
                let Some(iy) = (2 * oy + ky).checked_sub(1).filter(|&iy| iy < h) else { continue };
                let tap = |kx: usize| &src[((ky * 3 + kx) * oh + oy) * ow..][..ow];
                add_taps_stride2(&mut dst[iy * w..(iy + 1) * w], [tap(0), tap(1), tap(2)]);
            }
        }
    });
}

/// One output row of [`col2im_3x3_stride2`]: `line[2j] += t1[j]`,
/// `line[2j + 1] += t0[j + 1]` then `+= t2[j]`, each where the index exists.
#[multiversion(targets("x86_64+avx2+fma", "x86_64+avx", "aarch64+neon"))]
fn add_taps_stride2(line: &mut [f32], [t0, t1, t2]: [&[f32]; 3]) {
    let ow = t1.len();
    if ow == 0 {
        return;
    }
    // pairs whose three terms all exist
    let n = (line.len() / 2).min(ow.saturating_sub(1));
    let (body, t0b, t1b, t2b) = (&mut line[..2 * n], &t0[1..=n], &t1[..n], &t2[..n]);
    for (((pair, a), b), c) in body.chunks_exact_mut(2).zip(t1b).zip(t0b).zip(t2b) {
        pair[0] += a;
        pair[1] = pair[1] + b + c;
    }
    for (ix, v) in line.iter_mut().enumerate().skip(2 * n) {
        let j = ix / 2;
        if ix % 2 == 0 {
            if j < ow {
                *v += t1[j];
            }
        } else {
            if j + 1 < ow {
                *v += t0[j + 1];
            }
            if j < ow {
                *v += t2[j];
            }
        }
    }
}

/// `c = a * b` in `products`.
#[allow(clippy::too_many_arguments)]
fn product(m: usize, n: usize, k: usize, a: Mat, b: Mat, c: &mut [f32], products: Products) {
    match products {
        Products::F32 => matmul(m, n, k, a, b, c, false, Threads::All),
        Products::Bf16 => bf16::matmul(m, n, k, a, b, c, false, Threads::All),
    }
}

fn gemm_forward(x: &[f32], xs: Nchw, w: &[f32], co: usize, g: Geometry, ys: Nchw, products: Products) -> Vec<f32> {
    let kk = xs.c * g.k * g.k;
    let plane = ys.plane();
    let mut y = vec![0f32; ys.len()];
    if g.k == 1 && g.stride == 1 && g.pad == 0 {
        // a 1x1 convolution's im2col matrix is the input itself
        for b in 0..xs.n {
            let out = &mut y[b * co * plane..(b + 1) * co * plane];
            let input = &x[b * xs.c * plane..(b + 1) * xs.c * plane];
            product(co, plane, kk, Mat::rows(w, kk), Mat::rows(input, plane), out, products);
        }
        return y;
    }
    let mut col = Scratch::take(kk * plane);
    for b in 0..xs.n {
        im2col(&x[b * xs.c * xs.plane()..(b + 1) * xs.c * xs.plane()], xs, g, ys.h, ys.w, &mut col);
        let out = &mut y[b * co * plane..(b + 1) * co * plane];
        product(co, plane, kk, Mat::rows(w, kk), Mat::rows(&col, plane), out, products);
    }
    y
}

fn gemm_backward_input(dy: &[f32], ys: Nchw, w: &[f32], xs: Nchw, g: Geometry, products: Products) -> Vec<f32> {
    let kk = xs.c * g.k * g.k;
    let plane = ys.plane();
    let co = ys.c;
    let mut dx = vec![0f32; xs.len()];
    let mut col = Scratch::take(kk * plane);
    for b in 0..xs.n {
        // col = W^T dy: (ci k k) x P
        let g_out = &dy[b * co * plane..(b + 1) * co * plane];
        product(kk, plane, co, Mat::transposed(w, kk), Mat::rows(g_out, plane), &mut col, products);
        col2im(&col, xs, g, ys.h, ys.w, &mut dx[b * xs.c * xs.plane()..(b + 1) * xs.c * xs.plane()]);
    }
    dx
}

fn gemm_backward_weight(x: &[f32], xs: Nchw, dy: &[f32], ys: Nchw, g: Geometry) -> Vec<f32> {
    let kk = xs.c * g.k * g.k;
    let plane = ys.plane();
    let co = ys.c;
    let mut dw = vec![0f32; co * kk];
    let mut col = Scratch::take(kk * plane);
    for b in 0..xs.n {
        im2col(&x[b * xs.c * xs.plane()..(b + 1) * xs.c * xs.plane()], xs, g, ys.h, ys.w, &mut col);
        let g_out = &dy[b * co * plane..(b + 1) * co * plane];
        // dW += dy col^T: co x (ci k k), summing over the P output positions
        matmul(co, kk, plane, Mat::rows(g_out, plane), Mat::transposed(&col, plane), &mut dw, b > 0, Threads::All);
    }
    dw
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Deterministic pseudo-random values in [-1, 1).
    pub fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(12345);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    pub fn naive_forward(x: &[f32], xs: Nchw, w: &[f32], co: usize, g: Geometry) -> Vec<f32> {
        let ys = g.out_shape(xs, co);
        let mut y = vec![0f32; ys.len()];
        for b in 0..xs.n {
            for o in 0..co {
                for oy in 0..ys.h {
                    for ox in 0..ys.w {
                        let mut acc = 0f64;
                        for i in 0..xs.c {
                            for ky in 0..g.k {
                                for kx in 0..g.k {
                                    let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                                    let ix = (ox * g.stride + kx) as isize - g.pad as isize;
                                    if iy >= 0 && ix >= 0 && (iy as usize) < xs.h && (ix as usize) < xs.w {
                                        let xv = x[((b * xs.c + i) * xs.h + iy as usize) * xs.w + ix as usize];
                                        acc += xv as f64 * w[((o * xs.c + i) * g.k + ky) * g.k + kx] as f64;
                                    }
                                }
                            }
                        }
                        y[((b * co + o) * ys.h + oy) * ys.w + ox] = acc as f32;
                    }
                }
            }
        }
        y
    }

    pub fn close(got: &[f32], want: &[f32], tol: f32, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= tol * scale, "{what}[{i}]: {g} vs {w}");
        }
    }

    /// bf16 products: what each convolution method loses against f32 stays
    /// at bf16's rounding (8 significant bits), and is not zero (the bf16
    /// path ran). Measured rms: im2col 0.21 %, Winograd F2 0.40 %. Winograd
    /// F4 (64x64 outputs and larger) stays f32 (`winograd::conv3x3`).
    #[test]
    fn bf16_products_lose_only_bf16_rounding() {
        if !bf16::available() {
            return;
        }
        let cases = [
            (Nchw::new(1, 32, 14, 14), 48, Geometry::new(3, 1, 1), "Winograd F2", 1e-4, 6e-3),
            (Nchw::new(1, 24, 20, 20), 40, Geometry::new(3, 2, 1), "im2col", 1e-4, 3e-3),
            (Nchw::new(1, 32, 64, 64), 32, Geometry::new(3, 1, 1), "Winograd F4, kept f32", 0.0, 1e-5),
        ];
        for (xs, co, g, what, low, high) in cases {
            let x = values(xs.len(), 1);
            let w = values(co * xs.c * 9, 2);
            let (want, ys) = forward(&x, xs, &w, co, None, g, Products::F32);
            let (got, _) = forward(&x, xs, &w, co, None, g, Products::Bf16);
            let rel = relative_rms(&got, &want);
            assert!(rel >= low && rel < high, "{what}: rms error {rel:.2e} of the output's rms");
            close(&got, &want, 10.0 * high as f32, what);
            // the transposed convolution (input gradient) of the same shape
            let dy = values(ys.len(), 3);
            let want = backward_input(&dy, ys, &w, xs, g, Products::F32);
            let got = backward_input(&dy, ys, &w, xs, g, Products::Bf16);
            let rel = relative_rms(&got, &want);
            assert!(rel >= low && rel < high, "{what} transposed: rms error {rel:.2e}");
        }
    }

    fn relative_rms(got: &[f32], want: &[f32]) -> f64 {
        let err: f64 = got.iter().zip(want).map(|(g, w)| ((g - w) as f64).powi(2)).sum();
        let norm: f64 = want.iter().map(|w| (*w as f64).powi(2)).sum();
        (err / norm).sqrt()
    }

    /// The gradients of `sum(conv(x, w) * r)` by the adjoint identities:
    /// <conv(x, w), r> = <x, dX(r)> = <w, dW(x, r)>.
    fn check(xs: Nchw, co: usize, g: Geometry, expect: Method) {
        assert_eq!(method(xs.c, co, g), expect, "{xs:?} {co} {g:?}");
        let x = values(xs.len(), 1);
        let w = values(co * xs.c * g.k * g.k, 2);
        let bias = values(co, 3);
        let (y, ys) = forward(&x, xs, &w, co, Some(&bias), g, Products::F32);
        let mut want = naive_forward(&x, xs, &w, co, g);
        for (i, v) in want.iter_mut().enumerate() {
            *v += bias[(i / ys.plane()) % co];
        }
        close(&y, &want, 1e-5, &format!("{expect:?} forward"));

        let r = values(ys.len(), 4);
        let dx = backward_input(&r, ys, &w, xs, g, Products::F32);
        let dw = backward_weight(&x, xs, &r, ys, g);
        // check each gradient entry against a naive derivative of the naive forward
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| *p as f64 * *q as f64).sum::<f64>();
        let base = dot(&naive_forward(&x, xs, &w, co, g), &r);
        for (idx, step) in [(0usize, 0.5f32), (xs.len() / 2, 0.5), (xs.len() - 1, 0.5)] {
            let mut x2 = x.clone();
            x2[idx] += step;
            let d = (dot(&naive_forward(&x2, xs, &w, co, g), &r) - base) / step as f64;
            assert!((d - dx[idx] as f64).abs() < 1e-3 * d.abs().max(1.0), "{expect:?} dx[{idx}]: {} vs {d}", dx[idx]);
        }
        for idx in [0usize, w.len() / 3, w.len() - 1] {
            let mut w2 = w.clone();
            w2[idx] += 0.5;
            let d = (dot(&naive_forward(&x, xs, &w2, co, g), &r) - base) / 0.5;
            assert!((d - dw[idx] as f64).abs() < 1e-3 * d.abs().max(1.0), "{expect:?} dw[{idx}]: {} vs {d}", dw[idx]);
        }
        // and the whole gradients by the adjoint identity
        let lhs = dot(&naive_forward(&x, xs, &w, co, g), &r);
        assert!((lhs - dot(&x, &dx)).abs() < 1e-3 * lhs.abs().max(1.0), "{expect:?}: <x, dX> {} vs {lhs}", dot(&x, &dx));
        assert!((lhs - dot(&w, &dw)).abs() < 1e-3 * lhs.abs().max(1.0), "{expect:?}: <w, dW> {} vs {lhs}", dot(&w, &dw));
    }

    #[test]
    fn rectangular_kernels_match_a_naive_convolution() {
        for (kernel, padding) in [([1, 7], [0, 3]), ([7, 1], [3, 0]), ([3, 1], [1, 0]), ([1, 3], [0, 2])] {
            let xs = Nchw::new(2, 3, 9, 11);
            let co = 4;
            let x: Vec<f32> = (0..xs.len()).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
            let w: Vec<f32> = (0..co * 3 * kernel[0] * kernel[1]).map(|i| ((i * 53 % 89) as f32 - 44.0) / 30.0).collect();
            let (y, ys) = forward_rect(&x, xs, &w, co, kernel, padding);
            let at = |n: usize, c: usize, yy: isize, xx: isize| {
                if yy < 0 || xx < 0 || yy >= xs.h as isize || xx >= xs.w as isize { 0.0 } else { x[((n * xs.c + c) * xs.h + yy as usize) * xs.w + xx as usize] }
            };
            for n in 0..2 {
                for o in 0..co {
                    for oy in 0..ys.h {
                        for ox in 0..ys.w {
                            let mut want = 0f32;
                            for c in 0..3 {
                                for ky in 0..kernel[0] {
                                    for kx in 0..kernel[1] {
                                        let wv = w[((o * 3 + c) * kernel[0] + ky) * kernel[1] + kx];
                                        want += wv * at(n, c, (oy + ky) as isize - padding[0] as isize, (ox + kx) as isize - padding[1] as isize);
                                    }
                                }
                            }
                            let got = y[((n * co + o) * ys.h + oy) * ys.w + ox];
                            assert!((got - want).abs() < 1e-4, "{kernel:?} {padding:?}: {got} vs {want}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn winograd_3x3() {
        check(Nchw::new(2, 16, 9, 7), 17, Geometry::new(3, 1, 0), Method::Winograd);
        check(Nchw::new(1, 20, 6, 8), 16, Geometry::new(3, 1, 1), Method::Winograd);
        // large enough (64 output tiles of 4x4) for F(4x4, 3x3) in all three passes
        assert!(winograd::large(1, 32, 32) && !winograd::large(1, 28, 32));
        check(Nchw::new(1, 16, 34, 34), 16, Geometry::new(3, 1, 0), Method::Winograd);
        // batched, tiles cut at the edges
        check(Nchw::new(2, 16, 26, 18), 17, Geometry::new(3, 1, 1), Method::Winograd);
    }

    #[test]
    fn direct_few_channels() {
        check(Nchw::new(1, 3, 13, 11), 8, Geometry::new(7, 1, 0), Method::Direct);
        check(Nchw::new(2, 6, 12, 9), 3, Geometry::new(7, 1, 3), Method::Direct);
        check(Nchw::new(1, 1, 8, 8), 5, Geometry::new(4, 1, 1), Method::Direct);
        // two whole groups of eight outputs and a tail of five per row
        check(Nchw::new(1, 3, 10, 21), 4, Geometry::new(7, 1, 3), Method::Direct);
        // no padding and sixteen outputs a row: rows read in place, unpadded
        check(Nchw::new(1, 3, 9, 22), 5, Geometry::new(7, 1, 0), Method::Direct);
        // rows wider than one 32-output chunk, in place and padded
        check(Nchw::new(1, 3, 7, 70), 5, Geometry::new(7, 1, 0), Method::Direct);
        check(Nchw::new(1, 3, 6, 45), 5, Geometry::new(7, 1, 3), Method::Direct);
    }

    /// The stride-2 col2im gives the general loop's bits: odd and even
    /// sizes, an output one row and column larger than the strided input
    /// covers (a transposed convolution's output padding), 1-pixel grids.
    #[test]
    fn stride2_col2im_matches_the_general_loop() {
        let g = Geometry::new(3, 2, 1);
        for (h, w) in [(9, 9), (8, 10), (10, 7), (1, 1), (2, 1), (1, 3), (33, 34)] {
            let xs = Nchw::new(1, 3, h, w);
            for (oh, ow) in [(h.div_ceil(2), w.div_ceil(2)), (h / 2, w / 2), (h.div_ceil(2), w / 2)] {
                let col = values(3 * 9 * oh * ow, 7);
                let (mut fast, mut any) = (values(xs.len(), 8), values(xs.len(), 8));
                col2im_3x3_stride2(&col, xs, oh, ow, &mut fast);
                col2im_any(&col, xs, g, oh, ow, &mut any);
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&fast), bits(&any), "{h}x{w} from {oh}x{ow}");
            }
        }
    }

    #[test]
    fn gemm_strided_and_general() {
        check(Nchw::new(2, 5, 10, 9), 7, Geometry::new(3, 2, 1), Method::Gemm);
        check(Nchw::new(1, 6, 9, 9), 8, Geometry::new(4, 2, 1), Method::Gemm);
        check(Nchw::new(1, 3, 9, 9), 8, Geometry::new(4, 2, 1), Method::Gemm);
        check(Nchw::new(1, 8, 7, 7), 9, Geometry::new(4, 1, 1), Method::Gemm);
        check(Nchw::new(1, 8, 5, 5), 9, Geometry::new(1, 1, 0), Method::Gemm);
        // padding wider than the stride: whole output rows and columns outside
        check(Nchw::new(1, 4, 3, 2), 5, Geometry::new(4, 3, 3), Method::Gemm);
    }
}
