//! 3x3 pooling for inference (Inception's pools): the maximum with a stride
//! and padding that never wins (PyTorch's `-inf`), and the stride-1 average
//! over the window's part inside the image (`count_include_pad=False`).

use rayon::prelude::*;

use super::{Nchw, min_len};

/// 3x3 max pool, `stride`, `pad` on each side (padding never taken).
pub fn max3x3(x: &[f32], xs: Nchw, stride: usize, pad: usize) -> (Vec<f32>, Nchw) {
    let out = |len: usize| (len + 2 * pad - 3) / stride + 1;
    let ys = Nchw::new(xs.n, xs.c, out(xs.h), out(xs.w));
    let mut y = vec![0f32; ys.len()];
    y.par_chunks_mut(ys.plane()).with_min_len(min_len(9 * ys.plane())).zip(x.par_chunks(xs.plane())).for_each(|(dst, src)| {
        for oy in 0..ys.h {
            let y0 = (oy * stride) as isize - pad as isize;
            for ox in 0..ys.w {
                let x0 = (ox * stride) as isize - pad as isize;
                let mut m = f32::NEG_INFINITY;
                for iy in y0.max(0)..(y0 + 3).min(xs.h as isize) {
                    let row = &src[iy as usize * xs.w..(iy as usize + 1) * xs.w];
                    for ix in x0.max(0)..(x0 + 3).min(xs.w as isize) {
                        m = m.max(row[ix as usize]);
                    }
                }
                dst[oy * ys.w + ox] = m;
            }
        }
    });
    (y, ys)
}

/// 3x3 average pool, stride 1, padding 1, dividing by the pixels inside the image.
pub fn avg3x3_same(x: &[f32], xs: Nchw) -> Vec<f32> {
    let mut y = vec![0f32; xs.len()];
    let (h, w) = (xs.h, xs.w);
    y.par_chunks_mut(xs.plane()).with_min_len(min_len(9 * xs.plane())).zip(x.par_chunks(xs.plane())).for_each(|(dst, src)| {
        // horizontal sums of three, then vertical
        let mut rows = vec![0f32; h * w];
        for r in 0..h {
            let line = &src[r * w..(r + 1) * w];
            for c in 0..w {
                let lo = c.saturating_sub(1);
                let hi = (c + 1).min(w - 1);
                rows[r * w + c] = line[lo..=hi].iter().sum();
            }
        }
        for r in 0..h {
            let (lo, hi) = (r.saturating_sub(1), (r + 1).min(h - 1));
            let count_y = (hi - lo + 1) as f32;
            for c in 0..w {
                let count_x = ((c + 1).min(w - 1) - c.saturating_sub(1) + 1) as f32;
                let sum: f32 = (lo..=hi).map(|rr| rows[rr * w + c]).sum();
                dst[r * w + c] = sum / (count_x * count_y);
            }
        }
    });
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_match_their_definitions() {
        let xs = Nchw::new(1, 2, 5, 4);
        let x: Vec<f32> = (0..xs.len()).map(|i| ((i * 7919) % 23) as f32 - 11.0).collect();
        let at = |c: usize, r: isize, k: isize| -> Option<f32> {
            (r >= 0 && k >= 0 && r < 5 && k < 4).then(|| x[c * 20 + r as usize * 4 + k as usize])
        };
        let avg = avg3x3_same(&x, xs);
        let (mx, ms) = max3x3(&x, xs, 2, 1);
        assert_eq!((ms.h, ms.w), (3, 2));
        for c in 0..2 {
            for r in 0..5isize {
                for k in 0..4isize {
                    let window: Vec<f32> = (-1..=1).flat_map(|dy| (-1..=1).filter_map(move |dx| at(c, r + dy, k + dx))).collect();
                    let want = window.iter().sum::<f32>() / window.len() as f32;
                    assert!((avg[c * 20 + r as usize * 4 + k as usize] - want).abs() < 1e-5);
                }
            }
            for oy in 0..3isize {
                for ox in 0..2isize {
                    let want = (0..3).flat_map(|dy| (0..3).filter_map(move |dx| at(c, oy * 2 - 1 + dy, ox * 2 - 1 + dx))).fold(f32::MIN, f32::max);
                    assert_eq!(mx[c * 6 + oy as usize * 2 + ox as usize], want);
                }
            }
        }
    }
}
