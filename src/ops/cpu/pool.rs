//! 3x3 pooling for inference (Inception's pools): the maximum with a stride
//! and padding that never wins (PyTorch's `-inf`), and the stride-1 average
//! over the window's part inside the image (`count_include_pad=False`).
//! Both are separable: a pass down the rows (whole rows at a time, in
//! vector code) then along each row. Window by window, with its bounds
//! tested per element, the max pool was 14 % of an FID batch's time.

use multiversion::multiversion;
use rayon::prelude::*;

use super::{Nchw, min_len};

/// 3x3 max pool, `stride`, `pad` on each side (padding never taken).
pub fn max3x3(x: &[f32], xs: Nchw, stride: usize, pad: usize) -> (Vec<f32>, Nchw) {
    let out = |len: usize| (len + 2 * pad - 3) / stride + 1;
    let ys = Nchw::new(xs.n, xs.c, out(xs.h), out(xs.w));
    let mut y = vec![0f32; ys.len()];
    let planes = y.par_chunks_mut(ys.plane()).with_min_len(min_len(3 * xs.plane())).zip(x.par_chunks(xs.plane()));
    planes.for_each_init(|| vec![0f32; xs.w], |column_max, (dst, src)| max_plane(src, xs.h, xs.w, stride, pad, ys.w, column_max, dst));
    (y, ys)
}

/// One plane of [`max3x3`]: for each output row the maximum down the (up
/// to three) input rows it covers, then across each window of that.
#[allow(clippy::too_many_arguments)]
#[multiversion(targets("x86_64+avx2+fma", "x86_64+avx", "aarch64+neon"))]
fn max_plane(src: &[f32], h: usize, w: usize, stride: usize, pad: usize, ow: usize, column_max: &mut [f32], dst: &mut [f32]) {
    let row = |r: usize| &src[r * w..(r + 1) * w];
    for (oy, out) in dst.chunks_exact_mut(ow).enumerate() {
        let (lo, hi) = window(oy, stride, pad, h);
        column_max.copy_from_slice(row(lo));
        for r in lo + 1..hi {
            for (m, &v) in column_max.iter_mut().zip(row(r)) {
                *m = m.max(v);
            }
        }
        for (ox, o) in out.iter_mut().enumerate() {
            let (lo, hi) = window(ox, stride, pad, w);
            *o = column_max[lo + 1..hi].iter().fold(column_max[lo], |m, &v| m.max(v));
        }
    }
}

/// The input positions `lo..hi` (never empty: a window always overlaps the
/// image by at least one) that output position `o` covers along an axis of
/// length `len`.
#[inline(always)]
fn window(o: usize, stride: usize, pad: usize, len: usize) -> (usize, usize) {
    let start = o * stride;
    (start.saturating_sub(pad), (start + 3 - pad).min(len))
}

/// 3x3 average pool, stride 1, padding 1, dividing by the pixels inside the image.
pub fn avg3x3_same(x: &[f32], xs: Nchw) -> Vec<f32> {
    let mut y = vec![0f32; xs.len()];
    let planes = y.par_chunks_mut(xs.plane()).with_min_len(min_len(6 * xs.plane())).zip(x.par_chunks(xs.plane()));
    planes.for_each_init(|| vec![0f32; xs.plane()], |row_sums, (dst, src)| avg_plane(src, xs.h, xs.w, row_sums, dst));
    y
}

/// One plane of [`avg3x3_same`]: sums of three along each row, then of
/// three such sums down the columns, each added left to right and top to
/// bottom as a window's own loop would.
#[multiversion(targets("x86_64+avx2+fma", "x86_64+avx", "aarch64+neon"))]
fn avg_plane(src: &[f32], h: usize, w: usize, row_sums: &mut [f32], dst: &mut [f32]) {
    for (line, sums) in src.chunks_exact(w).zip(row_sums.chunks_exact_mut(w)) {
        if w == 1 {
            sums[0] = line[0];
            continue;
        }
        sums[0] = line[0] + line[1];
        for (s, three) in sums[1..w - 1].iter_mut().zip(line.windows(3)) {
            *s = three[0] + three[1] + three[2];
        }
        sums[w - 1] = line[w - 2] + line[w - 1];
    }
    // pixels inside the window along a row, per column
    let count_x = |c: usize| ((c + 1).min(w - 1) - c.saturating_sub(1) + 1) as f32;
    for (r, out) in dst.chunks_exact_mut(w).enumerate() {
        let (lo, hi) = window(r, 1, 1, h);
        let count_y = (hi - lo) as f32;
        let rows = &row_sums[lo * w..hi * w];
        out.copy_from_slice(&rows[..w]);
        for below in rows.chunks_exact(w).skip(1) {
            for (o, &v) in out.iter_mut().zip(below) {
                *o += v;
            }
        }
        for (c, o) in out.iter_mut().enumerate() {
            *o /= count_x(c) * count_y;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_match_their_definitions() {
        // edge cases: one-pixel-wide planes, both strides and paddings Inception uses
        for (h, w) in [(5, 4), (7, 9), (1, 3), (3, 1), (1, 1)] {
            let xs = Nchw::new(2, 3, h, w);
            let x: Vec<f32> = (0..xs.len()).map(|i| ((i * 7919) % 23) as f32 - 11.0).collect();
            let at = |p: usize, r: isize, k: isize| -> Option<f32> {
                (r >= 0 && k >= 0 && r < h as isize && k < w as isize).then(|| x[p * h * w + r as usize * w + k as usize])
            };
            let avg = avg3x3_same(&x, xs);
            for p in 0..xs.n * xs.c {
                for r in 0..h as isize {
                    for k in 0..w as isize {
                        let window: Vec<f32> = (-1..=1).flat_map(|dy| (-1..=1).filter_map(move |dx| at(p, r + dy, k + dx))).collect();
                        let want = window.iter().sum::<f32>() / window.len() as f32;
                        let got = avg[p * h * w + r as usize * w + k as usize];
                        assert!((got - want).abs() < 1e-5, "avg {h}x{w} plane {p} at ({r}, {k}): {got} against {want}");
                    }
                }
            }
            for (stride, pad) in [(2, 0), (2, 1), (1, 1)] {
                if h + 2 * pad < 3 || w + 2 * pad < 3 {
                    continue;
                }
                let (mx, ms) = max3x3(&x, xs, stride, pad);
                assert_eq!((ms.h, ms.w), ((h + 2 * pad - 3) / stride + 1, (w + 2 * pad - 3) / stride + 1));
                for p in 0..xs.n * xs.c {
                    for oy in 0..ms.h as isize {
                        for ox in 0..ms.w as isize {
                            let (y0, x0) = (oy * stride as isize - pad as isize, ox * stride as isize - pad as isize);
                            let want = (0..3).flat_map(|dy| (0..3).filter_map(move |dx| at(p, y0 + dy, x0 + dx))).fold(f32::MIN, f32::max);
                            assert_eq!(mx[(p * ms.h + oy as usize) * ms.w + ox as usize], want, "max {h}x{w} stride {stride} pad {pad}");
                        }
                    }
                }
            }
        }
    }
}
