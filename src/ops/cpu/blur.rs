//! CUT's anti-aliased resampling (the official `Downsample` and `Upsample`)
//! and their adjoints, as separable passes over each plane.
//!
//! Run as convolutions, these are depthwise (one channel each) with 9 or 16
//! taps: im2col + GEMM over single-channel planes made them an eighth of a
//! CUT training iteration (BENCHMARKS.md). Both filters are outer products
//! of 1-D binomial taps, so each is a pass along the rows and one along the
//! columns, with the official padding folded into which input pixels each
//! output reads.

use rayon::prelude::*;

use super::{Nchw, min_len};

/// One axis of a separable resampling: output `o` is the sum of
/// `weight * input[index]` over its (at most three) taps; unused taps have
/// weight 0 and are skipped, so an infinite input stays infinite, not NaN.
struct Axis {
    taps: Vec<[(usize, f32); 3]>,
    len_in: usize,
}

impl Axis {
    /// Reflection pad by 1, the 3 `taps`, stride 2: `len` becomes `(len - 1) / 2 + 1`.
    fn down(len: usize, [t0, t1, t2]: [f32; 3]) -> Self {
        assert!(len >= 2, "anti-aliased downsampling needs sides of at least 2 pixels");
        // ReflectionPad2d(1): index -1 reads 1, index len reads len - 2.
        let reflect = |i: isize| if i < 0 { 1 } else if i >= len as isize { len - 2 } else { i as usize };
        let taps = (0..(len - 1) / 2 + 1)
            .map(|o| {
                let c = 2 * o as isize;
                [(reflect(c - 1), t0), (c as usize, t1), (reflect(c + 1), t2)]
            })
            .collect();
        Self { taps, len_in: len }
    }

    /// Replication pad by 1, the stride-2 transposed convolution with the 4
    /// `taps`, cropped to twice the length: output `2m` mixes inputs `m - 1`
    /// and `m`, output `2m + 1` inputs `m` and `m + 1` (clamped at the ends).
    fn up(len: usize, [t0, t1, t2, t3]: [f32; 4]) -> Self {
        let clamp = |i: isize| i.clamp(0, len as isize - 1) as usize;
        let taps = (0..len as isize)
            .flat_map(|m| [[(clamp(m - 1), t3), (m as usize, t1), (0, 0.0)], [(m as usize, t2), (clamp(m + 1), t0), (0, 0.0)]])
            .collect();
        Self { taps, len_in: len }
    }

    fn len_out(&self) -> usize {
        self.taps.len()
    }
}

/// Apply `cols` (along the height) and `rows` (along the width) to every plane.
fn forward(x: &[f32], xs: Nchw, cols: &Axis, rows: &Axis) -> (Vec<f32>, Nchw) {
    let ys = Nchw::new(xs.n, xs.c, cols.len_out(), rows.len_out());
    let mut y = vec![0f32; ys.len()];
    y.par_chunks_mut(ys.plane()).zip(x.par_chunks(xs.plane())).with_min_len(min_len(xs.plane())).for_each(|(out, src)| {
        // Rows first (xs.h x ys.w), then whole rows combined along the columns.
        let mut across = vec![0f32; xs.h * ys.w];
        for (line, dst) in src.chunks_exact(xs.w).zip(across.chunks_exact_mut(ys.w)) {
            for (d, taps) in dst.iter_mut().zip(&rows.taps) {
                *d = taps.iter().filter(|(_, t)| *t != 0.0).map(|&(i, t)| t * line[i]).sum();
            }
        }
        for (dst, taps) in out.chunks_exact_mut(ys.w).zip(&cols.taps) {
            for &(i, t) in taps.iter().filter(|(_, t)| *t != 0.0) {
                for (d, s) in dst.iter_mut().zip(&across[i * ys.w..(i + 1) * ys.w]) {
                    *d += t * s;
                }
            }
        }
    });
    (y, ys)
}

/// The adjoint of [`forward`]: each output's gradient goes back, weighted, to the inputs it read.
fn backward(dy: &[f32], ys: Nchw, cols: &Axis, rows: &Axis) -> (Vec<f32>, Nchw) {
    let xs = Nchw::new(ys.n, ys.c, cols.len_in, rows.len_in);
    let mut dx = vec![0f32; xs.len()];
    dx.par_chunks_mut(xs.plane()).zip(dy.par_chunks(ys.plane())).with_min_len(min_len(xs.plane())).for_each(|(out, grad)| {
        let mut across = vec![0f32; xs.h * ys.w];
        for (src, taps) in grad.chunks_exact(ys.w).zip(&cols.taps) {
            for &(i, t) in taps.iter().filter(|(_, t)| *t != 0.0) {
                for (d, s) in across[i * ys.w..(i + 1) * ys.w].iter_mut().zip(src) {
                    *d += t * s;
                }
            }
        }
        for (line, dst) in across.chunks_exact(ys.w).zip(out.chunks_exact_mut(xs.w)) {
            for (g, taps) in line.iter().zip(&rows.taps) {
                for &(i, t) in taps.iter().filter(|(_, t)| *t != 0.0) {
                    dst[i] += t * g;
                }
            }
        }
    });
    (dx, xs)
}

/// Anti-aliased downsampling of every plane with the 1-D `taps` on each axis.
pub fn down_forward(x: &[f32], xs: Nchw, taps: [f32; 3]) -> (Vec<f32>, Nchw) {
    forward(x, xs, &Axis::down(xs.h, taps), &Axis::down(xs.w, taps))
}

/// The gradient of [`down_forward`] for an input of shape `xs`.
pub fn down_backward(dy: &[f32], ys: Nchw, xs: Nchw, taps: [f32; 3]) -> Vec<f32> {
    let (dx, shape) = backward(dy, ys, &Axis::down(xs.h, taps), &Axis::down(xs.w, taps));
    debug_assert_eq!(shape, xs);
    dx
}

/// Anti-aliased upsampling of every plane to twice its size.
pub fn up_forward(x: &[f32], xs: Nchw, taps: [f32; 4]) -> (Vec<f32>, Nchw) {
    forward(x, xs, &Axis::up(xs.h, taps), &Axis::up(xs.w, taps))
}

/// The gradient of [`up_forward`] for an input of shape `xs`.
pub fn up_backward(dy: &[f32], ys: Nchw, xs: Nchw, taps: [f32; 4]) -> Vec<f32> {
    let (dx, shape) = backward(dy, ys, &Axis::up(xs.h, taps), &Axis::up(xs.w, taps));
    debug_assert_eq!(shape, xs);
    dx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::cpu::conv::tests::values;

    /// The official ops written out naively: pad, full 2-D kernel, stride.
    fn naive_down(x: &[f32], h: usize, w: usize, k: &[f32; 3]) -> Vec<f32> {
        let r = |i: isize, len: usize| if i < 0 { (-i) as usize } else if i >= len as isize { 2 * (len - 1) - i as usize } else { i as usize };
        let (oh, ow) = ((h - 1) / 2 + 1, (w - 1) / 2 + 1);
        let mut y = vec![0f32; oh * ow];
        for oy in 0..oh {
            for ox in 0..ow {
                for a in 0..3 {
                    for b in 0..3 {
                        let (iy, ix) = (r(2 * oy as isize + a as isize - 1, h), r(2 * ox as isize + b as isize - 1, w));
                        y[oy * ow + ox] += k[a] * k[b] * x[iy * w + ix];
                    }
                }
            }
        }
        y
    }

    /// Replication pad, stride-2 transposed convolution with padding 2, crop [1, 2h + 1).
    fn naive_up(x: &[f32], h: usize, w: usize, k: &[f32; 4]) -> Vec<f32> {
        let (ph, pw) = (h + 2, w + 2);
        let px = |i: usize, j: usize| x[(i.clamp(1, h) - 1) * w + (j.clamp(1, w) - 1)];
        let (fh, fw) = ((ph - 1) * 2 + 4, (pw - 1) * 2 + 4);
        let mut full = vec![0f32; fh * fw];
        for i in 0..ph {
            for j in 0..pw {
                for a in 0..4 {
                    for b in 0..4 {
                        full[(2 * i + a) * fw + 2 * j + b] += k[a] * k[b] * px(i, j);
                    }
                }
            }
        }
        let mut y = Vec::with_capacity(4 * h * w);
        for oy in 0..2 * h {
            for ox in 0..2 * w {
                y.push(full[(oy + 3) * fw + ox + 3]);
            }
        }
        y
    }

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() < 1e-5, "at {i}: {x} vs {y}");
        }
    }

    fn adjoint(y: &[f32], r: &[f32], x: &[f32], dx: &[f32]) {
        let lhs: f64 = y.iter().zip(r).map(|(a, b)| (a * b) as f64).sum();
        let rhs: f64 = x.iter().zip(dx).map(|(a, b)| (a * b) as f64).sum();
        assert!((lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0), "{lhs} vs {rhs}");
    }

    #[test]
    fn down_matches_the_padded_strided_convolution_and_is_adjoint() {
        let k = [0.25, 0.5, 0.25];
        for (h, w) in [(2, 2), (5, 8), (7, 3), (16, 16)] {
            let xs = Nchw::new(2, 3, h, w);
            let x = values(xs.len(), (h * w) as u32);
            let (y, ys) = down_forward(&x, xs, k);
            assert_eq!(ys, Nchw::new(2, 3, (h - 1) / 2 + 1, (w - 1) / 2 + 1));
            for p in 0..6 {
                close(&y[p * ys.plane()..][..ys.plane()], &naive_down(&x[p * h * w..][..h * w], h, w, &k));
            }
            let r = values(ys.len(), 5);
            adjoint(&y, &r, &x, &down_backward(&r, ys, xs, k));
        }
    }

    #[test]
    fn up_matches_the_padded_transposed_convolution_and_is_adjoint() {
        let k = [0.25, 0.75, 0.75, 0.25];
        for (h, w) in [(1, 1), (2, 5), (4, 3), (8, 8)] {
            let xs = Nchw::new(1, 2, h, w);
            let x = values(xs.len(), (h + w) as u32);
            let (y, ys) = up_forward(&x, xs, k);
            assert_eq!(ys, Nchw::new(1, 2, 2 * h, 2 * w));
            for p in 0..2 {
                close(&y[p * ys.plane()..][..ys.plane()], &naive_up(&x[p * h * w..][..h * w], h, w, &k));
            }
            let r = values(ys.len(), 3);
            adjoint(&y, &r, &x, &up_backward(&r, ys, xs, k));
        }
        // the skipped taps: an infinite pixel spreads as infinity, never as NaN
        let mut x = values(16, 1);
        x[0] = f32::INFINITY;
        let (y, ys) = up_forward(&x, Nchw::new(1, 1, 4, 4), k);
        assert!(y.iter().all(|v| !v.is_nan()) && y.iter().filter(|v| v.is_infinite()).count() == 9, "{y:?}");
        let dx = up_backward(&y, ys, Nchw::new(1, 1, 4, 4), k);
        assert!(dx.iter().all(|v| !v.is_nan()), "{dx:?}");
    }
}
