//! Dense optical flow between two frames, written with burn's tensor ops so
//! that it runs wherever the generator runs (the CPU kernels or a GPU):
//! coarse-to-fine Lucas-Kanade with iterative warping.
//!
//! At each level of an image pyramid (halved until the short side would go
//! under [`MIN_LEVEL_SIDE`]), the second frame is warped towards the first by
//! the current flow, and the flow is corrected by the least-squares solution
//! of the linearised brightness-constancy equations over a smooth window
//! (two box filters: a triangle of about 13 px). The coarse levels catch
//! large motion, the fine ones sub-pixel motion. A small Tikhonov term keeps
//! flat regions (no texture, no information) at the coarser level's flow.
//!
//! Also here: warping along a flow, and the forward-backward consistency
//! test (Sundaram et al. 2010) that marks occlusions and motion boundaries.

use burn::tensor::module::interpolate;
use burn::tensor::ops::{GridSampleOptions, GridSamplePaddingMode, InterpolateMode, InterpolateOptions, PadMode};
use burn::tensor::{Tensor, TensorData};

/// Levels stop halving before the short side would go under this.
pub const MIN_LEVEL_SIDE: usize = 24;
/// At most this many levels (1/32 of the size at the coarsest).
const MAX_LEVELS: usize = 6;
/// Lucas-Kanade updates per level.
const ITERATIONS: usize = 4;
/// Half-width of the box filter applied twice as the matching window (a
/// triangle 9 px wide: 3 was measured to follow a 40 px moving object half
/// as well, 0.46 px median error against 0.22).
const WINDOW_RADIUS: usize = 2;
/// Tikhonov weight on the update, against the window's mean squared
/// gradient (intensities in [0, 1]; a textured window has ~1e-3).
const REGULARISATION: f32 = 1e-5;
/// The largest correction one iteration may make, in pixels of its level.
const MAX_STEP: f32 = 1.5;

/// The brightness of a `[1, C, H, W]` image in `[-1, 1]`, as `[1, 1, H, W]`
/// in `[0, 1]` (Rec. 601 weights for RGB; the channel itself for gray).
pub fn luma(image: &Tensor<4>) -> Tensor<4> {
    let [_, c, _, _] = image.dims();
    let unit = image.clone().add_scalar(1.0).mul_scalar(0.5);
    if c >= 3 {
        let ch = |i: usize| unit.clone().narrow(1, i, 1);
        ch(0).mul_scalar(0.299).add(ch(1).mul_scalar(0.587)).add(ch(2).mul_scalar(0.114))
    } else {
        unit.narrow(1, 0, 1)
    }
}

/// The flow from `from` to `to` (`[1, 1, H, W]` brightness each): for each
/// pixel x of `from`, the displacement d (x then y, in pixels, as
/// `[1, 2, H, W]`) with `from(x) ≈ to(x + d)`.
pub fn estimate(from: &Tensor<4>, to: &Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = from.dims();
    let device = from.device();
    if h < 2 || w < 2 {
        return Tensor::zeros([1, 2, h, w], &device);
    }
    let mut pyramid = vec![(from.clone(), to.clone())];
    while pyramid.len() < MAX_LEVELS {
        let (a, b) = pyramid.last().expect("one level");
        let [_, _, lh, lw] = a.dims();
        if lh.min(lw) / 2 < MIN_LEVEL_SIDE {
            break;
        }
        let size = [lh.div_ceil(2), lw.div_ceil(2)];
        pyramid.push((resize(a.clone(), size), resize(b.clone(), size)));
    }
    // Frames of 96 px and more are matched at half their size: a quarter of
    // the work, and the end-point error at full size stays under 0.02 px
    // on the sub-pixel pans tested below.
    let finest = usize::from(pyramid.len() > 1 && h.min(w) >= 4 * MIN_LEVEL_SIDE);
    let mut flow: Option<Tensor<4>> = None;
    for (a, b) in pyramid.iter().skip(finest).rev() {
        let [_, _, lh, lw] = a.dims();
        let mut level_flow = match flow {
            None => Tensor::zeros([1, 2, lh, lw], &device),
            Some(coarse) => upsample_flow(coarse, [lh, lw]),
        };
        for _ in 0..ITERATIONS {
            level_flow = level_flow.clone().add(lucas_kanade_step(a, b, &level_flow));
        }
        flow = Some(level_flow);
    }
    let flow = flow.expect("at least one level");
    if finest == 0 { flow } else { upsample_flow(flow, [h, w]) }
}

/// One least-squares correction of `flow` at one level.
fn lucas_kanade_step(a: &Tensor<4>, b: &Tensor<4>, flow: &Tensor<4>) -> Tensor<4> {
    let warped = warp(b.clone(), flow.clone());
    // Gradients of the mean of both frames: symmetric, so that the step is
    // right whichever frame the texture is sharper in.
    let (ix, iy) = gradients(a.clone().add(warped.clone()).mul_scalar(0.5));
    let it = warped.sub(a.clone());
    let products = Tensor::cat(
        vec![
            ix.clone().square(),
            ix.clone().mul(iy.clone()),
            iy.clone().square(),
            ix.mul(it.clone()),
            iy.mul(it),
        ],
        1,
    );
    let sums = window(window(products));
    let part = |i: usize| sums.clone().narrow(1, i, 1);
    let (a11, a12, a22, b1, b2) = (part(0).add_scalar(REGULARISATION), part(1), part(2).add_scalar(REGULARISATION), part(3), part(4));
    let det = a11.clone().mul(a22.clone()).sub(a12.clone().square());
    let du = a22.mul(b1.clone()).sub(a12.clone().mul(b2.clone())).div(det.clone()).neg();
    let dv = a11.mul(b2).sub(a12.mul(b1)).div(det).neg();
    Tensor::cat(vec![du, dv], 1).clamp(-MAX_STEP, MAX_STEP)
}

/// Central differences, the border replicated.
fn gradients(x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
    let [n, c, h, w] = x.dims();
    let p = x.pad((1, 1, 1, 1), PadMode::Edge);
    let ix = p.clone().slice([0..n, 0..c, 1..h + 1, 2..w + 2]).sub(p.clone().slice([0..n, 0..c, 1..h + 1, 0..w])).mul_scalar(0.5);
    let iy = p.clone().slice([0..n, 0..c, 2..h + 2, 1..w + 1]).sub(p.slice([0..n, 0..c, 0..h, 1..w + 1])).mul_scalar(0.5);
    (ix, iy)
}

/// The mean over a (2r+1)² box, over the pixels inside the image: two
/// one-dimensional passes of shifted sums (burn's average pooling was
/// measured 30x slower on the CPU for this).
fn window(x: Tensor<4>) -> Tensor<4> {
    box_mean(box_mean(x, 3), 2)
}

/// The mean over 2r+1 neighbours along `dim` (2: rows, 3: columns), over those inside.
fn box_mean(x: Tensor<4>, dim: usize) -> Tensor<4> {
    let r = WINDOW_RADIUS;
    let dims = x.dims();
    let n = dims[dim];
    let padding = if dim == 3 { (r, r, 0, 0) } else { (0, 0, r, r) };
    let padded = x.pad(padding, PadMode::Constant(0.0));
    let mut sum = padded.clone().narrow(dim, 0, n);
    for j in 1..=2 * r {
        sum = sum.add(padded.clone().narrow(dim, j, n));
    }
    let counts: Vec<f32> = (0..n).map(|i| 1.0 / ((i + r).min(n - 1) + 1 - i.saturating_sub(r)) as f32).collect();
    let shape = if dim == 3 { [1, 1, 1, n] } else { [1, 1, n, 1] };
    sum.mul(Tensor::from_data(TensorData::new(counts, shape), &padded.device()))
}

/// Resample to `size` (bilinear on pixel centres: a 2x2 mean when halving an even size).
fn resize(x: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
    interpolate(x, InterpolateOptions::new(InterpolateMode::Bilinear).with_align_corners(false).with_output_size(size))
}

/// A flow at a finer level: resampled, and its vectors scaled by the size ratio.
fn upsample_flow(flow: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
    let [_, _, h, w] = flow.dims();
    let up = resize(flow, size);
    let u = up.clone().narrow(1, 0, 1).mul_scalar(size[1] as f32 / w as f32);
    let v = up.narrow(1, 1, 1).mul_scalar(size[0] as f32 / h as f32);
    Tensor::cat(vec![u, v], 1)
}

/// `image` (`[1, C, H, W]`) sampled at x + flow(x) for each pixel x, by
/// Catmull-Rom cubic interpolation; positions outside take the nearest
/// border pixel. Bilinear interpolation blurs by an amount that depends on
/// the fractional position, which biases the flow towards whole pixels
/// (0.06 px on a smooth noise texture, against 0.003 px cubic, measured with
/// scipy) and blurs a warped frame a little more each time.
///
/// Done as 9 bilinear samples (Sigg and Hadwiger 2005): per axis, the two
/// middle taps, whose weights are both positive, are one bilinear sample
/// placed between them by their weights.
pub fn warp(image: Tensor<4>, flow: Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = flow.dims();
    let (x, y) = positions(&flow);
    let taps = |p: Tensor<4>| {
        let i = p.clone().floor();
        let t = p.sub(i.clone());
        let t2 = t.clone().square();
        let w0 = t.clone().mul(t.clone().mul_scalar(-0.5).add_scalar(1.0).mul(t.clone()).sub_scalar(0.5));
        let w1 = t2.clone().mul(t.clone().mul_scalar(1.5).sub_scalar(2.5)).add_scalar(1.0);
        let w2 = t.clone().mul(t.clone().mul_scalar(-1.5).add_scalar(2.0).mul(t.clone()).add_scalar(0.5));
        let w3 = t2.mul(t.mul_scalar(0.5).sub_scalar(0.5));
        let w12 = w1.add(w2.clone());
        let between = i.clone().add(w2.div(w12.clone()));
        [(i.clone().sub_scalar(1.0), w0), (between, w12), (i.add_scalar(2.0), w3)]
    };
    let (xs, ys) = (taps(x), taps(y));
    let mut out: Option<Tensor<4>> = None;
    for (py, wy) in &ys {
        for (px, wx) in &xs {
            let sample = bilinear(image.clone(), px.clone(), py.clone(), h, w).mul(wx.clone().mul(wy.clone()));
            out = Some(match out {
                None => sample,
                Some(acc) => acc.add(sample),
            });
        }
    }
    out.expect("nine taps")
}

/// `image` sampled bilinearly at x + flow(x) (cheaper than [`warp`]; for flow fields).
pub fn warp_linear(image: Tensor<4>, flow: Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = flow.dims();
    let (x, y) = positions(&flow);
    bilinear(image, x, y, h, w)
}

/// The pixel positions x + flow(x): `[1, 1, H, W]` each.
fn positions(flow: &Tensor<4>) -> (Tensor<4>, Tensor<4>) {
    let [_, _, h, w] = flow.dims();
    let device = flow.device();
    // A row and a column of coordinates, broadcast: no full grid made on the host each call.
    let xs = Tensor::<1, burn::tensor::Int>::arange(0..w as i64, &device).float().reshape([1, 1, 1, w]);
    let ys = Tensor::<1, burn::tensor::Int>::arange(0..h as i64, &device).float().reshape([1, 1, h, 1]);
    (flow.clone().narrow(1, 0, 1).add(xs), flow.clone().narrow(1, 1, 1).add(ys))
}

/// `image` sampled bilinearly at pixel positions `x`, `y` (the border repeated outside).
fn bilinear(image: Tensor<4>, x: Tensor<4>, y: Tensor<4>, h: usize, w: usize) -> Tensor<4> {
    // grid_sample's coordinates with align_corners: -1 and 1 at the centres of the end pixels.
    let gx = x.mul_scalar(2.0 / (w.max(2) - 1) as f32).sub_scalar(1.0);
    let gy = y.mul_scalar(2.0 / (h.max(2) - 1) as f32).sub_scalar(1.0);
    // `[1, H, W, 2]` made with x and y side by side in memory: burn-cubecl
    // 0.22.1's grid_sample reads y at x's index + 1 whatever the strides,
    // so a permuted grid gave wrong samples on jit, wgpu and cuda.
    let side_by_side = |g: Tensor<4>| g.reshape([1, h, w, 1]);
    let grid = Tensor::cat(vec![side_by_side(gx), side_by_side(gy)], 3);
    let options = GridSampleOptions::new(InterpolateMode::Bilinear).with_padding_mode(GridSamplePaddingMode::Border).with_align_corners(true);
    image.grid_sample_2d(grid, options)
}

/// 1 where the flow a->b (`forward`, over a's pixels) and the flow b->a
/// (`backward`, over b's) undo each other and x + forward(x) lies inside
/// the frame; 0 where they do not (occluded in b, or a motion boundary).
/// The test of Sundaram, Brox and Keutzer (2010): |f + b(x + f)|² at most
/// 0.01 (|f|² + |b(x + f)|²) + 0.5.
pub fn consistent(forward: &Tensor<4>, backward: &Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = forward.dims();
    let back = warp_linear(backward.clone(), forward.clone());
    let roundtrip = forward.clone().add(back.clone()).square().sum_dim(1);
    let lengths = forward.clone().square().sum_dim(1).add(back.square().sum_dim(1));
    let agree = roundtrip.lower_equal(lengths.mul_scalar(0.01).add_scalar(0.5)).float();
    agree.mul(inside(forward, h, w))
}

/// 1 where x + flow(x) is inside the frame (half a pixel of slack).
fn inside(flow: &Tensor<4>, h: usize, w: usize) -> Tensor<4> {
    let (x, y) = positions(flow);
    let within = |t: Tensor<4>, n: usize| t.clone().greater_equal_elem(-0.5).float().mul(t.lower_equal_elem(n as f32 - 0.5).float());
    within(x, w).mul(within(y, h))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use burn::tensor::Device;

    /// A smooth random-looking texture: a sum of sines at a few frequencies,
    /// sampled at (x - dx, y - dy), so that shifting by (dx, dy) is exact.
    pub(crate) fn texture(h: usize, w: usize, dx: f32, dy: f32) -> Vec<f32> {
        (0..h * w).map(|i| texture_at((i % w) as f32 - dx, (i / w) as f32 - dy)).collect()
    }

    /// The texture's value at a point, in [0, 1].
    fn texture_at(px: f32, py: f32) -> f32 {
        let waves = [(0.11f32, 0.07f32, 0.3f32), (-0.05, 0.13, 1.1), (0.19, -0.16, 2.0), (0.031, 0.043, 0.7)];
        let v: f32 = waves.iter().map(|(a, b, p)| (a * px + b * py + p).sin()).sum();
        0.5 + v / 8.0
    }

    fn image(v: Vec<f32>, h: usize, w: usize) -> Tensor<4> {
        Tensor::from_data(TensorData::new(v, [1, 1, h, w]), &Device::flex())
    }

    /// The mean and median end-point error inside `margin`.
    fn endpoint_error(flow: Tensor<4>, dx: f32, dy: f32, margin: usize) -> (f32, f32) {
        let [_, _, h, w] = flow.dims();
        let inner = flow.slice([0..1, 0..2, margin..h - margin, margin..w - margin]);
        let u = inner.clone().narrow(1, 0, 1).sub_scalar(dx);
        let v = inner.narrow(1, 1, 1).sub_scalar(dy);
        let mut e: Vec<f32> = u.square().add(v.square()).sqrt().into_data().try_to_vec::<f32>().unwrap();
        e.sort_by(f32::total_cmp);
        (e.iter().sum::<f32>() / e.len() as f32, e[e.len() / 2])
    }

    #[test]
    fn sub_pixel_and_large_pans_are_found() {
        // 96x128 is matched at half size, 48x64 at full size.
        for (h, w) in [(96, 128), (48, 64)] {
            for (dx, dy, mean_limit, median_limit) in [(0.3f32, -0.6f32, 0.04, 0.02), (1.7, 0.6, 0.04, 0.02), (-6.5, 4.2, 0.15, 0.06)] {
                let a = image(texture(h, w, 0.0, 0.0), h, w);
                let b = image(texture(h, w, dx, dy), h, w);
                // a(x) = b(x + d) with b shifted by (dx, dy): d = (dx, dy). Pixels
                // whose match lies outside b (a band of |d|) have no answer.
                let margin = 8 + dx.abs().max(dy.abs()).ceil() as usize;
                let (mean, median) = endpoint_error(estimate(&a, &b), dx, dy, margin);
                eprintln!("EPE {h}x{w} ({dx},{dy}) {mean} {median}");
                assert!(mean < mean_limit && median < median_limit, "{h}x{w}, pan ({dx}, {dy}): end-point error mean {mean}, median {median}");
            }
        }
    }

    #[test]
    fn a_moving_object_is_followed_and_what_it_uncovers_is_masked() {
        let (h, w) = (96, 128);
        let (ox, oy, side, dx, dy) = (40.0f32, 26.0f32, 40.0f32, 2.5f32, -1.5f32);
        // A square of another texture over a still background, moved by (dx, dy).
        let frame = |sx: f32, sy: f32| -> Vec<f32> {
            (0..h * w)
                .map(|i| {
                    let (x, y) = ((i % w) as f32, (i / w) as f32);
                    let (u, v) = (x - ox - sx, y - oy - sy);
                    if (0.0..side).contains(&u) && (0.0..side).contains(&v) { 1.0 - texture_at(u * 1.3 + 50.0, v * 0.9 - 20.0) } else { texture_at(x, y) }
                })
                .collect()
        };
        let (a, b) = (image(frame(0.0, 0.0), h, w), image(frame(dx, dy), h, w));
        let forward = estimate(&a, &b);
        let backward = estimate(&b, &a);
        let mask: Vec<f32> = consistent(&forward, &backward).into_data().try_to_vec::<f32>().unwrap();
        let flow: Vec<f32> = forward.into_data().try_to_vec::<f32>().unwrap();
        let median = |mut e: Vec<f32>| {
            e.sort_by(f32::total_cmp);
            e[e.len() / 2]
        };
        let error_where = |inside: &dyn Fn(usize, usize) -> bool, (tx, ty): (f32, f32)| {
            let mut e = Vec::new();
            for y in 0..h {
                for x in 0..w {
                    if inside(x, y) {
                        let i = y * w + x;
                        e.push(((flow[i] - tx).powi(2) + (flow[h * w + i] - ty).powi(2)).sqrt());
                    }
                }
            }
            e
        };
        let (x0, y0, x1, y1) = (ox as usize, oy as usize, (ox + side) as usize, (oy + side) as usize);
        let object = |x: usize, y: usize| x >= x0 + 8 && x < x1 - 8 && y >= y0 + 8 && y < y1 - 8;
        let background = |x: usize, y: usize| {
            (x + 14 < x0 || x > x1 + 16 || y + 16 < y0 || y > y1 + 14) && x >= 8 && x < w - 8 && y >= 8 && y < h - 8
        };
        let on_object = median(error_where(&object, (dx, dy)));
        let on_background = median(error_where(&background, (0.0, 0.0)));
        assert!(on_object < 0.3, "object: median end-point error {on_object}");
        assert!(on_background < 0.05, "background: median end-point error {on_background}");
        // Background of a that the object covers in b has no match there:
        // the strip the object moves onto (right of it, above it).
        let covered = |x: usize, y: usize| x > x1 && x < x1 + 2 && y >= y0 + 4 && y < y1 - 4;
        let mut kept = Vec::new();
        for y in 0..h {
            for x in 0..w {
                if covered(x, y) {
                    kept.push(mask[y * w + x]);
                }
            }
        }
        let kept_covered = kept.iter().sum::<f32>() / kept.len() as f32;
        let kept_background = {
            let v: Vec<f32> = (0..h * w).filter(|i| background(i % w, i / w)).map(|i| mask[i]).collect();
            v.iter().sum::<f32>() / v.len() as f32
        };
        eprintln!("MOVING object {on_object} background {on_background} kept covered {kept_covered} kept background {kept_background}");
        assert!(kept_covered < 0.5, "covered pixels kept by the mask: {kept_covered}");
        assert!(kept_background > 0.95, "background pixels kept by the mask: {kept_background}");
    }

    #[test]
    fn warping_along_the_flow_undoes_a_shift() {
        let (h, w) = (40, 50);
        let b = image(texture(h, w, 2.0, -1.0), h, w);
        let flow = Tensor::cat(vec![Tensor::full([1, 1, h, w], 2.0, &Device::flex()), Tensor::full([1, 1, h, w], -1.0, &Device::flex())], 1);
        let back = warp(b, flow).slice([0..1, 0..1, 2..h - 2, 3..w - 3]);
        let want = image(texture(h, w, 0.0, 0.0), h, w).slice([0..1, 0..1, 2..h - 2, 3..w - 3]);
        let err = back.sub(want).abs().max().into_scalar::<f32>();
        assert!(err < 1e-4, "{err}");
    }

    #[test]
    fn inconsistent_and_outside_vectors_are_masked() {
        let (h, w) = (8, 10);
        let dev = Device::flex();
        let fwd = Tensor::cat(vec![Tensor::full([1, 1, h, w], 3.0, &dev), Tensor::zeros([1, 1, h, w], &dev)], 1);
        let mut back_u = vec![-3.0f32; h * w];
        // Where the backward flow disagrees (by 4 px), the pixels mapping there are occluded.
        for y in 0..h {
            back_u[y * w + 6] = 1.0;
        }
        let back = Tensor::cat(vec![image(back_u, h, w), Tensor::zeros([1, 1, h, w], &dev)], 1);
        let mask: Vec<f32> = consistent(&fwd, &back).into_data().try_to_vec::<f32>().unwrap();
        for y in 0..h {
            for x in 0..w {
                let want = if x == 3 || x + 3 > w - 1 { 0.0 } else { 1.0 };
                assert_eq!(mask[y * w + x], want, "pixel ({x}, {y})");
            }
        }
    }
}
