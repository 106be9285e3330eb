//! Reflection padding (`nn.ReflectionPad2d`) and its adjoint, which folds the
//! gradient of the border back onto the pixels it mirrored.

use rayon::prelude::*;

use super::{Nchw, min_len, written};

/// Where output row/column `o` reads from, for a side of length `len` padded by `before`.
fn source(o: usize, before: usize, len: usize) -> usize {
    let i = o as isize - before as isize;
    let last = len as isize - 1;
    let i = if i < 0 { -i } else if i > last { 2 * last - i } else { i };
    i as usize
}

/// Pad each plane by `[top, bottom, left, right]`; each amount must be below the side's length.
pub fn forward(x: &[f32], xs: Nchw, [top, bottom, left, right]: [usize; 4]) -> (Vec<f32>, Nchw) {
    assert!(top < xs.h && bottom < xs.h && left < xs.w && right < xs.w, "reflection pad wider than the image");
    let ys = Nchw::new(xs.n, xs.c, xs.h + top + bottom, xs.w + left + right);
    let cols: Vec<usize> = (0..ys.w).map(|ox| source(ox, left, xs.w)).collect();
    assert_eq!(x.len(), xs.len());
    // SAFETY: each plane of `y` (one per plane of `x`) is written row by
    // row, each row's middle from the source row and both ends by reflection.
    let (y, ()) = unsafe {
        written(ys.len(), |y| {
            y.par_chunks_mut(ys.plane()).zip(x.par_chunks(xs.plane())).with_min_len(min_len(ys.plane())).for_each(|(out, src)| {
                for oy in 0..ys.h {
                    let line = &src[source(oy, top, xs.h) * xs.w..][..xs.w];
                    let row = &mut out[oy * ys.w..(oy + 1) * ys.w];
                    for (o, v) in row[left..left + xs.w].iter_mut().zip(line) {
                        o.write(*v);
                    }
                    for ox in (0..left).chain(left + xs.w..ys.w) {
                        row[ox].write(line[cols[ox]]);
                    }
                }
            })
        })
    };
    (y, ys)
}

/// The gradient of [`forward`]: every output pixel's gradient goes back to the pixel it copied.
pub fn backward(dy: &[f32], ys: Nchw, [top, bottom, left, right]: [usize; 4]) -> (Vec<f32>, Nchw) {
    let xs = Nchw::new(ys.n, ys.c, ys.h - top - bottom, ys.w - left - right);
    let cols: Vec<usize> = (0..ys.w).map(|ox| source(ox, left, xs.w)).collect();
    let mut dx = vec![0f32; xs.len()];
    dx.par_chunks_mut(xs.plane()).zip(dy.par_chunks(ys.plane())).with_min_len(min_len(ys.plane())).for_each(|(out, grad)| {
        for oy in 0..ys.h {
            let line = &mut out[source(oy, top, xs.h) * xs.w..][..xs.w];
            let row = &grad[oy * ys.w..(oy + 1) * ys.w];
            for (l, g) in line.iter_mut().zip(&row[left..left + xs.w]) {
                *l += g;
            }
            for ox in (0..left).chain(left + xs.w..ys.w) {
                line[cols[ox]] += row[ox];
            }
        }
    });
    (dx, xs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_pytorch_reflection_and_is_adjoint() {
        // ReflectionPad2d(2) of [[0,1,2],[3,4,5],[6,7,8]], first row: [8,7,6,7,8,7,6]
        let x: Vec<f32> = (0..9).map(|v| v as f32).collect();
        let (y, ys) = forward(&x, Nchw::new(1, 1, 3, 3), [2, 2, 2, 2]);
        assert_eq!(ys, Nchw::new(1, 1, 7, 7));
        assert_eq!(&y[..7], &[8.0, 7.0, 6.0, 7.0, 8.0, 7.0, 6.0]);
        assert_eq!(&y[14..21], &[2.0, 1.0, 0.0, 1.0, 2.0, 1.0, 0.0]);
        // <pad(x), r> = <x, pad^T(r)>
        let xs = Nchw::new(2, 3, 5, 4);
        let x: Vec<f32> = (0..xs.len()).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
        let pads = [1, 3, 2, 0];
        let (y, ys) = forward(&x, xs, pads);
        let r: Vec<f32> = (0..ys.len()).map(|i| ((i * 5) % 13) as f32 - 6.0).collect();
        let (dx, back) = backward(&r, ys, pads);
        assert_eq!(back, xs);
        let lhs: f32 = y.iter().zip(&r).map(|(a, b)| a * b).sum();
        let rhs: f32 = x.iter().zip(&dx).map(|(a, b)| a * b).sum();
        assert_eq!(lhs, rhs);
    }
}
