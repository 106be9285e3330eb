//! Winograd's minimal filtering F(m x m, 3x3) (Lavin & Gray 2016) for 3x3
//! stride-1 convolutions: each m x m output tile from an (m+2) x (m+2) input
//! tile. Input tiles and filters are transformed (`V = B^T d B`,
//! `U = G g G^T`), the products summed over input channels become (m+2)^2
//! matrix multiplies `M = U V`, and each output tile is `A^T M A`.
//!
//! Two tile sizes, [`F2`] (F(2x2, 3x3): 16 multiplications per 4 outputs
//! instead of 36, coefficients 0, +-1, 1/2) and [`F4`] (F(4x4, 3x3): 36 per
//! 16 instead of 144, coefficients up to 8 and 1/24, so about ten times the
//! rounding: 1e-5 of the output's scale against 1e-6, still far inside one
//! 8-bit level); [`conv3x3`] and [`weight_grad3x3`] pick by size, F4 where
//! its matrix products are large enough to run at speed (BENCHMARKS.md).

use rayon::prelude::*;

use super::{Nchw, Products, bf16, min_len};
use super::gemm::{Mat, Threads, matmul};
use super::scratch::Scratch;

mod planes;
mod tile;
mod vector;

pub use tile::{F2, F4, Tile};
use planes::{filter_group, filters_from_products, filters_transform, grad_transform_plane, input_transform_plane, output_transform_plane};

/// The largest input tile side of the variants.
const MAX_A: usize = 6;

/// The 3x3 filters of a convolution with `ci` input channels: its weights
/// `[co][ci][3][3]` as stored, or, for the input gradient of a convolution
/// with weights `w` (`[ci][co][3][3]`), each of those filters reversed with
/// the channels swapped, read in place (copying them was 3 % of a small
/// training step).
#[derive(Clone, Copy)]
pub struct Filters<'a> {
    w: &'a [f32],
    ci: usize,
    co: usize,
    flipped: bool,
}

impl<'a> Filters<'a> {
    pub fn new(w: &'a [f32], ci: usize) -> Self {
        Self { w, ci, co: w.len() / (9 * ci), flipped: false }
    }

    /// The input gradient's filters of the convolution with weights `w`,
    /// which has `ci` output channels.
    pub fn flipped(w: &'a [f32], ci: usize) -> Self {
        Self { w, ci, co: w.len() / (9 * ci), flipped: true }
    }

    /// Where filter `(o, i0)` starts in `w`, and how far apart the filters
    /// `(o, i0 + j)` of consecutive lanes `j` are.
    #[inline(always)]
    fn lane_start_and_stride(&self, o: usize, i0: usize) -> (usize, usize) {
        if self.flipped { ((i0 * self.co + o) * 9, self.co * 9) } else { ((o * self.ci + i0) * 9, 9) }
    }

    /// The input channels of the convolution these filters are for.
    fn ci(&self) -> usize {
        self.ci
    }

    fn weights(&self) -> &'a [f32] {
        self.w
    }

    fn is_flipped(&self) -> bool {
        self.flipped
    }

    /// Filters `(o, i0 + j)` for the `lanes` lanes `j` into `g[tap][j]`
    /// (taps row-major), one value at a time: for any number of lanes
    /// (`Vector::filter_taps` takes whole groups apart faster).
    fn taps<const N: usize>(&self, o: usize, i0: usize, lanes: usize, g: &mut [[f32; N]; 9]) {
        let (start, stride) = self.lane_start_and_stride(o, i0);
        for j in 0..lanes {
            let f: &[f32; 9] = self.w[start + j * stride..][..9].try_into().expect("nine taps");
            for (t, gt) in g.iter_mut().enumerate() {
                gt[j] = if self.flipped { f[8 - t] } else { f[t] };
            }
        }
    }
}

/// `y = conv3x3(x, w) + bias` (filters `w`, see [`Filters`]) with zero padding `pad` (0, 1 or 2) and stride 1.
pub fn conv3x3(x: &[f32], xs: Nchw, w: Filters, co: usize, bias: Option<&[f32]>, pad: usize, products: Products) -> Vec<f32> {
    let (oh, ow) = (xs.h + 2 * pad - 2, xs.w + 2 * pad - 2);
    // Where F4 pays, it computes in f32 whatever was asked for: its
    // transforms scale values by up to 8 (and filters by 1/24), so rounding
    // its operands to bf16 costs 2.6 % of a layer's output (rms; F2 0.4 %,
    // plain products 0.2 %: a generator at 256 px 33 dB against f32, 47 dB
    // with F2), and F2 in bf16 does 1.8x F4's multiplications at twice the
    // rate: no faster than F4 in f32 (BENCHMARKS.md).
    if large(xs.n, oh, ow) {
        conv3x3_with::<F4>(x, xs, w, co, bias, pad, Products::F32)
    } else {
        conv3x3_with::<F2>(x, xs, w, co, bias, pad, products)
    }
}

/// F4 tiles from which F4 beats F2: its multiplies are (A^2 = 36) matrix
/// products with one side this long, too short below 64 (a 32x32 output) to
/// run at speed. Measured end to end on AMD Zen 5 (BENCHMARKS.md): with F4
/// from 64 tiles instead of 256, train128 (256 channels at 32x32 in its
/// residual blocks) 1.87 -> 1.79 s on one thread, 1.40 -> 1.21 s on two
/// cores far apart (with two close together one round of two was slower),
/// 1.92 -> 1.61 s with the AVX2 kernels forced; from 16 tiles,
/// train64-small (16x16) 0.146 -> 0.153 s and its forward 0.024 -> 0.034
/// s. (On Zen 4, before the filters were laid out for the products, 32x32
/// had measured F4 slower.)
const F4_MIN_TILES: usize = 64;

pub(super) fn large(n: usize, oh: usize, ow: usize) -> bool {
    n * oh.div_ceil(4) * ow.div_ceil(4) >= F4_MIN_TILES
}

/// [`conv3x3`] with the variant `T`.
pub fn conv3x3_with<T: Tile>(x: &[f32], xs: Nchw, w: Filters, co: usize, bias: Option<&[f32]>, pad: usize, products: Products) -> Vec<f32> {
    let ci = xs.c;
    assert_eq!((w.ci, w.co, w.w.len()), (ci, co, co * ci * 9));
    let n = T::A * T::A; // transformed tile elements
    let (oh, ow) = (xs.h + 2 * pad - 2, xs.w + 2 * pad - 2);
    let (th, tw) = (oh.div_ceil(T::M), ow.div_ceil(T::M));
    let tiles_per_image = th * tw;
    let t_all = xs.n * tiles_per_image;

    // The transform of channel i's input tiles into vi[xi * t_all + t].
    let transform = |i: usize, vi: &mut [f32]| {
        for b in 0..xs.n {
            let plane = &x[(b * ci + i) * xs.plane()..(b * ci + i + 1) * xs.plane()];
            input_transform_plane::<T>(plane, xs.h, xs.w, pad, th, tw, vi, t_all, b * tiles_per_image);
        }
    };

    // M = U V per transformed element xi, stored [block][xi][o][t] by blocks
    // of output channels: each block's products and then its outputs'
    // transforms are one thread's work, so M stays in that core's cache
    // between the two (grouped by xi, every output plane read M written by
    // both cores: 7 % of a small training step and 2-10 % of a 256 px
    // forward when the two cores sit apart, BENCHMARKS.md).
    let (block, blocks) = output_blocks(co);
    let mut m = Scratch::take(n * co * t_all);
    let chunks = product_tasks(&mut m, co, block, blocks, n, t_all).into_par_iter();
    if products == Products::Bf16 {
        let kp = ci.div_ceil(2);
        let u = filters_as_bf16_pairs::<T>(w, co, ci);
        let per_xi = t_all.div_ceil(bf16::NR) * kp * bf16::NR;
        let v = tiles_as_bf16_panels(ci, n, t_all, transform);
        chunks.for_each(|ProductTask { block: k, rows, xi0, m: mk }| {
            for (xi, mx) in (xi0..).zip(mk.chunks_exact_mut(rows * t_all)) {
                let ux = bf16::Lhs { data: &u[(k * block * n + xi) * kp..], rs: n * kp };
                bf16::matmul_panels(rows, t_all, kp, ux, &v[xi * per_xi..(xi + 1) * per_xi], mx, false, Threads::One);
            }
        });
    } else {
        // V[i][xi][t]
        let mut v = Scratch::take(ci * n * t_all);
        v.par_chunks_mut(n * t_all).with_min_len(min_len(n * t_all)).enumerate().for_each(|(i, vi)| transform(i, vi));
        // U[o][xi][i]: each multiply below reads its element's filters as
        // rows of ci contiguous values. (As [o][i][xi], read with a stride
        // of n, every multiply touched the whole of U: the forward took
        // twice its weight gradient's time.) A pooled buffer: zero-filling
        // a fresh one was 3 % of a small training step (every value is
        // written below).
        let mut u = Scratch::take(co * n * ci);
        u.par_chunks_mut(n * ci).enumerate().with_min_len(min_len(n * ci * 2)).for_each(|(o, uo)| filters_transform::<T>(w, o, uo));
        chunks.for_each(|ProductTask { block: k, rows, xi0, m: mk }| {
            for (xi, mx) in (xi0..).zip(mk.chunks_exact_mut(rows * t_all)) {
                let ux = Mat { data: &u[(k * block * n + xi) * ci..], rs: n * ci, cs: 1 };
                let vx = Mat { data: &v[xi * t_all..], rs: n * t_all, cs: 1 };
                matmul(rows, t_all, ci, ux, vx, mx, false, Threads::One);
            }
        });
    }

    // y[b][o] = A^T M A per tile, plus the bias
    let mut y = vec![0f32; xs.n * co * oh * ow];
    y.par_chunks_mut(oh * ow).with_min_len(min_len(oh * ow * 4)).enumerate().for_each(|(plane, out)| {
        let (b, o) = (plane / co, plane % co);
        let (k, row) = (o / block, o % block);
        let rows = block.min(co - k * block);
        let base = k * block * n * t_all + row * t_all + b * tiles_per_image;
        let add = bias.map_or(0.0, |bias| bias[o]);
        output_transform_plane::<T>(&m, rows * t_all, base, th, tw, oh, ow, add, out);
    });
    y
}

/// Fewest output channels a block of products is given: thinner products
/// run below the matrix kernels' speed.
const MIN_BLOCK_ROWS: usize = 16;

/// Output channels per block of a forward's products, and the number of
/// blocks: one per thread where there are enough channels, so that the
/// blocks' products and output transforms split the same way.
fn output_blocks(co: usize) -> (usize, usize) {
    let blocks = rayon::current_num_threads().min(co / MIN_BLOCK_ROWS).max(1);
    let block = co.div_ceil(blocks).max(1); // (no output channels: no blocks)
    (block, co.div_ceil(block))
}

/// The products of a block of `rows` output channels for the transformed
/// elements `xi0..`, written into `m` (`[xi][row][t]`).
struct ProductTask<'a> {
    block: usize,
    rows: usize,
    xi0: usize,
    m: &'a mut [f32],
}

/// `m` (`[block][xi][o][t]`) cut into tasks: each block whole where there
/// are as many blocks as threads, else each block's elements split into
/// groups so that every thread has work.
fn product_tasks(m: &mut [f32], co: usize, block: usize, blocks: usize, n: usize, t_all: usize) -> Vec<ProductTask<'_>> {
    let groups = rayon::current_num_threads().div_ceil(blocks).clamp(1, n);
    let per_group = n.div_ceil(groups);
    let mut tasks = Vec::with_capacity(blocks * groups);
    let mut rest = m;
    for k in 0..blocks {
        let rows = block.min(co - k * block);
        for xi0 in (0..n).step_by(per_group) {
            let count = per_group.min(n - xi0);
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(count * rows * t_all);
            tasks.push(ProductTask { block: k, rows, xi0, m: head });
            rest = tail;
        }
    }
    tasks
}

/// `U = G g G^T` of every filter of `w` (`[co, ci, 3, 3]`) as bf16 pairs
/// along the input channels, `[o][xi][ci / 2]`: each transformed element's
/// matrix-product left side in place.
fn filters_as_bf16_pairs<T: Tile>(w: Filters, co: usize, ci: usize) -> Vec<u32> {
    let (n, kp) = (T::A * T::A, ci.div_ceil(2));
    let mut u = vec![0u32; co * n * kp];
    u.par_chunks_mut(n * kp).enumerate().for_each_init(
        || vec![0f32; n * ci],
        |uf, (o, uo)| {
            filters_transform::<T>(w, o, uf); // [xi][i]
            for (xi, row) in uf.chunks_exact(ci).enumerate() {
                for p in 0..kp {
                    uo[xi * kp + p] = bf16::pair(row[2 * p], row.get(2 * p + 1).copied().unwrap_or(0.0));
                }
            }
        },
    );
    u
}

/// The transformed input tiles (`transform(i, vi)` writes channel `i`'s
/// into `vi[xi * t_all + t]`) as each product's right side, bf16 panels per
/// transformed element (`bf16::panel_index`): channels `2p` and `2p + 1` are
/// transformed together (in f32, in cache) and written as pairs, so the
/// tiles go to memory once, at half the size.
fn tiles_as_bf16_panels(ci: usize, n: usize, t_all: usize, transform: impl Fn(usize, &mut [f32]) + Sync) -> Vec<u32> {
    let kp = ci.div_ceil(2);
    let per_xi = t_all.div_ceil(bf16::NR) * kp * bf16::NR;
    let mut v = vec![0u32; n * per_xi];
    let v_at = v.as_mut_ptr() as usize;
    (0..kp).into_par_iter().for_each(|p| {
        let mut pair_v = [vec![0f32; n * t_all], vec![0f32; n * t_all]];
        for (h, vi) in pair_v.iter_mut().enumerate() {
            if 2 * p + h < ci {
                transform(2 * p + h, vi);
            }
        }
        for xi in 0..n {
            for j0 in (0..t_all).step_by(bf16::NR) {
                let (r0, r1) = (&pair_v[0][xi * t_all + j0..], &pair_v[1][xi * t_all + j0..]);
                let mut out = [0u32; bf16::NR];
                if j0 + bf16::NR <= t_all {
                    bf16::interleave(r0[..bf16::NR].try_into().unwrap(), r1[..bf16::NR].try_into().unwrap(), &mut out);
                } else {
                    for (j, o) in out.iter_mut().enumerate().take(t_all - j0) {
                        *o = bf16::pair(r0[j], r1[j]);
                    }
                }
                let at = xi * per_xi + bf16::panel_index(kp, p, j0);
                // SAFETY: pair row p of each panel is written by this task
                // alone, NR values inside `v`.
                unsafe { std::ptr::copy_nonoverlapping(out.as_ptr(), (v_at as *mut u32).add(at), bf16::NR) };
            }
        }
    });
    v
}

/// The gradient of [`conv3x3`]'s weight `[co, ci, 3, 3]`, given its input
/// `x` and the gradient `dy` of its output. Summed over positions
/// `dw = sum_p dy[p] x[p + k]` is itself a convolution, of `x` with `dy` as
/// the filter: per tile `G^T [(A dy A^T) . (B^T x B)] G` (Lavin & Gray, with
/// the roles of the transforms swapped), the sum over tiles and batch one
/// matrix multiply per transformed element, like the forward's.
pub fn weight_grad3x3(x: &[f32], xs: Nchw, dy: &[f32], ys: Nchw, pad: usize) -> Vec<f32> {
    if large(ys.n, ys.h, ys.w) { weight_grad3x3_with::<F4>(x, xs, dy, ys, pad) } else { weight_grad3x3_with::<F2>(x, xs, dy, ys, pad) }
}

/// [`weight_grad3x3`] with the variant `T`.
pub fn weight_grad3x3_with<T: Tile>(x: &[f32], xs: Nchw, dy: &[f32], ys: Nchw, pad: usize) -> Vec<f32> {
    let (ci, co) = (xs.c, ys.c);
    let n = T::A * T::A;
    let (th, tw) = (ys.h.div_ceil(T::M), ys.w.div_ceil(T::M));
    let tiles_per_image = th * tw;
    let t_all = xs.n * tiles_per_image;

    // V[i][xi][t], as in the forward
    let mut v = Scratch::take(ci * n * t_all);
    v.par_chunks_mut(n * t_all).with_min_len(min_len(n * t_all)).enumerate().for_each(|(i, vi)| {
        for b in 0..xs.n {
            let plane = &x[(b * ci + i) * xs.plane()..(b * ci + i + 1) * xs.plane()];
            input_transform_plane::<T>(plane, xs.h, xs.w, pad, th, tw, vi, t_all, b * tiles_per_image);
        }
    });
    // Y[o][xi][t] = A dy A^T per output-gradient tile
    let mut yt = Scratch::take(co * n * t_all);
    yt.par_chunks_mut(n * t_all).with_min_len(min_len(n * t_all)).enumerate().for_each(|(o, yo)| {
        for b in 0..ys.n {
            let plane = &dy[(b * co + o) * ys.plane()..(b * co + o + 1) * ys.plane()];
            grad_transform_plane::<T>(plane, ys.h, ys.w, th, tw, yo, t_all, b * tiles_per_image);
        }
    });
    // M[xi][o][i] = Y[o][xi][.] (co x T) * V[i][xi][.]^T (T x ci)
    let mut m = Scratch::take(n * co * ci);
    m.par_chunks_mut(co * ci).with_min_len(min_len(co * ci * t_all / 8)).enumerate().for_each(|(xi, mx)| {
        let yx = Mat { data: &yt[xi * t_all..], rs: n * t_all, cs: 1 };
        let vx = Mat { data: &v[xi * t_all..], rs: 1, cs: n * t_all };
        matmul(co, ci, t_all, yx, vx, mx, false, Threads::One);
    });
    // dw[o][i] = G^T M G, a vector of filters at a time: one filter at a
    // time, in scalar code, was 6.7 % of the small training case.
    let group = filter_group();
    let mut dw = vec![0f32; co * ci * 9];
    dw.par_chunks_mut(9 * group).with_min_len(min_len(9 * n * group)).enumerate().for_each(|(g, out)| {
        filters_from_products::<T>(&m, co * ci, g * group, out);
    });
    dw
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::cpu::conv::tests::{close, naive_forward, values};
    use crate::ops::cpu::Geometry;

    /// Input, filters and bias for a 3x3 layer of `co` outputs with zero
    /// padding `pad`, and its output by the naive convolution.
    fn with_bias(xs: Nchw, co: usize, pad: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
        let (x, w, bias) = (values(xs.len(), 1), values(co * xs.c * 9, 2), values(co, 3));
        let g = Geometry::new(3, 1, pad);
        let plane = g.out_shape(xs, co).plane();
        let mut want = naive_forward(&x, xs, &w, co, g);
        for (i, v) in want.iter_mut().enumerate() {
            *v += bias[(i / plane) % co];
        }
        (x, w, bias, want)
    }

    /// Both variants against a naive convolution, with odd sizes (partial
    /// tiles and partial lane groups), every padding and a bias.
    #[test]
    fn both_variants_match_a_naive_convolution() {
        for (xs, co, pad) in [(Nchw::new(2, 16, 9, 7), 17, 0), (Nchw::new(1, 20, 6, 8), 16, 1), (Nchw::new(1, 16, 21, 37), 16, 2)] {
            let (x, w, bias, want) = with_bias(xs, co, pad);
            let f = Filters::new(&w, xs.c);
            close(&conv3x3_with::<F2>(&x, xs, f, co, Some(&bias), pad, Products::F32), &want, 1e-5, "F2");
            close(&conv3x3_with::<F4>(&x, xs, f, co, Some(&bias), pad, Products::F32), &want, 1e-5, "F4");
        }
    }

    /// The products split by blocks of output channels and by groups of
    /// transformed elements (`product_tasks`) for every way the thread
    /// count divides them: one block in two groups, two blocks (the second
    /// shorter), two blocks in two groups each.
    #[test]
    fn product_blocks_for_any_thread_count() {
        for (xs, co, pad) in [(Nchw::new(1, 16, 9, 10), 33, 1), (Nchw::new(2, 16, 34, 9), 17, 0)] {
            let (x, w, bias, want) = with_bias(xs, co, pad);
            let f = Filters::new(&w, xs.c);
            for threads in [1, 2, 3] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let (block, blocks) = pool.install(|| output_blocks(co));
                assert_eq!(blocks, threads.min(co / MIN_BLOCK_ROWS).max(1));
                assert!(block * blocks >= co && block * (blocks - 1) < co);
                let what = format!("{co} channels, {threads} threads");
                close(&pool.install(|| conv3x3_with::<F2>(&x, xs, f, co, Some(&bias), pad, Products::F32)), &want, 1e-5, &format!("F2 {what}"));
                close(&pool.install(|| conv3x3_with::<F4>(&x, xs, f, co, Some(&bias), pad, Products::F32)), &want, 1e-5, &format!("F4 {what}"));
            }
        }
    }

    /// The bf16 path's transformed filters (`[o][xi][i / 2]` pairs) against
    /// `G g G^T` in f64, an odd number of input channels (a half-empty
    /// last pair) and flipped filters: the layout the bf16 products read,
    /// checked on any CPU.
    #[test]
    fn bf16_filter_pairs_match_the_transform() {
        fn check<T: Tile>(g_rows: &[[f64; 3]]) {
            let (co, ci) = (3, 11);
            let w = values(co * ci * 9, 4);
            for flipped in [false, true] {
                // flipped: the filters of the convolution whose weights are `w` read as [ci][co]
                let (f, outs, ins) = if flipped { (Filters::flipped(&w, co), ci, co) } else { (Filters::new(&w, ci), co, ci) };
                let u = filters_as_bf16_pairs::<T>(f, outs, ins);
                let (a, kp) = (T::A, ins.div_ceil(2));
                for o in 0..outs {
                    // every lane of every pair: past the last channel, zeros
                    for i in 0..2 * kp {
                        let tap = |t: usize| -> f64 {
                            if i >= ins {
                                0.0
                            } else if flipped {
                                w[(i * outs + o) * 9 + 8 - t] as f64
                            } else {
                                w[(o * ins + i) * 9 + t] as f64
                            }
                        };
                        for r in 0..a {
                            for c in 0..a {
                                let want: f64 = (0..3).flat_map(|p| (0..3).map(move |q| (p, q))).map(|(p, q)| g_rows[r][p] * tap(p * 3 + q) * g_rows[c][q]).sum();
                                let bits = u[(o * a * a + r * a + c) * kp + i / 2];
                                let got = bf16::value(if i % 2 == 0 { bits & 0xffff } else { bits >> 16 });
                                assert!((got as f64 - want).abs() <= want.abs() / 128.0 + 1e-6, "flipped {flipped} ({o},{i}) ({r},{c}): {got} vs {want}");
                            }
                        }
                    }
                }
            }
        }
        check::<F2>(&[[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]]);
        let s = 1.0 / 6.0;
        check::<F4>(&[[0.25, 0.0, 0.0], [-s, -s, -s], [-s, s, -s], [1.0 / 24.0, 1.0 / 12.0, s], [1.0 / 24.0, -1.0 / 12.0, s], [0.0, 0.0, 1.0]]);
    }

    /// Each vector's shuffles (filter taps in and out, tile columns,
    /// zero-padded edge rows, output rows put back together) against what
    /// they are defined to give, value by value: `Portable` everywhere,
    /// `Ymm` where the CPU has AVX2, `Zmm` where it has AVX-512.
    #[test]
    fn vector_shuffles_match_their_definitions() {
        use vector::{MAX_LANES, Portable, Vector, padded_row_scalar, split_len};
        fn lanes<V: Vector>(v: V) -> Vec<f32> {
            let mut out = [0f32; MAX_LANES];
            v.store(&mut out);
            out[..V::LANES].to_vec()
        }
        #[inline(always)]
        fn check<V: Vector>() {
            let n = V::LANES;
            let (co, ci) = (n + 3, n + 5); // both ways round at least one whole vector
            let w = values(co * ci * 9, 4);
            for filters in [Filters::new(&w, ci), Filters::flipped(&w, co)] {
                for o in 0..filters.co {
                    for i0 in 0..=filters.ci - n {
                        let got = V::filter_taps(&filters, o, i0).map(lanes);
                        let mut want = [[0f32; MAX_LANES]; 9];
                        filters.taps(o, i0, n, &mut want);
                        assert_eq!(got, want.map(|t| t[..n].to_vec()), "{n} lanes: filters ({o}, {i0}..), flipped {}", filters.flipped);
                    }
                }
            }
            for (m, cols) in [(2, 2), (2, 4), (4, 4), (4, 6)] {
                // exactly as long as the split may read
                let row = values(split_len(n, m, cols), 5);
                let got = V::split(m, &row, cols).map(lanes);
                for (c, lane) in got.iter().enumerate().take(cols) {
                    let want: Vec<f32> = (0..n).map(|j| row[m * j + c]).collect();
                    assert_eq!(lane, &want, "{n} lanes: tile column {c}, m {m}");
                }
            }
            // rows of tiles at a plane's edges: every offset from before the
            // line's start to past its end, every row length the transforms use
            for w in [1, 7, 16, 18, 40, 70] {
                let line = values(w, 6);
                for len in [n * 2, n * 2 + 2, n * 4, n * 4 + 2] {
                    for x0 in -(len as isize) - 1..=w as isize + 1 {
                        let (mut got, mut want) = (vec![f32::NAN; len], vec![f32::NAN; len]);
                        V::padded_row(&line, x0, &mut got);
                        padded_row_scalar(&line, x0, &mut want);
                        assert_eq!(got, want, "{n} lanes: padded row: line of {w}, {len} from {x0}");
                    }
                }
            }
            let taps: [[f32; MAX_LANES]; 9] = std::array::from_fn(|t| std::array::from_fn(|j| (100 * t + j) as f32));
            for count in [n, n - 1, 1] {
                let mut got = vec![f32::NAN; 9 * count];
                V::unzip_filters(&taps.map(|l| V::load(&l)), &mut got);
                let want: Vec<f32> = (0..9 * count).map(|k| taps[k % 9][k / 9]).collect();
                assert_eq!(got, want, "{n} lanes: {count} filters unzipped");
            }
            for m in [2, 4] {
                let v: [[f32; MAX_LANES]; MAX_A] = std::array::from_fn(|q| std::array::from_fn(|j| (100 * q + j) as f32));
                let mut got = [0f32; 4 * MAX_LANES];
                V::interleave(m, &v.map(|l| V::load(&l)), &mut got);
                let want: Vec<f32> = (0..m * n).map(|k| v[k % m][k / m]).collect();
                assert_eq!(got[..m * n], want[..], "{n} lanes: output rows, m {m}");
            }
        }
        check::<Portable>();
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx2,fma")]
            fn avx2() {
                check::<vector::Ymm>();
            }
            #[target_feature(enable = "avx512f,avx2,fma")]
            fn avx512() {
                check::<vector::Zmm>();
            }
            use crate::ops::cpu::simd::{Level, detected};
            // (what the CPU has, whatever `CYCLEGAN_SIMD` caps the kernels at)
            if detected() >= Level::Avx2 {
                // SAFETY: the CPU has AVX2 and FMA.
                unsafe { avx2() };
            }
            if detected() >= Level::Avx512 {
                // SAFETY: the CPU has AVX-512F, and with it AVX2 and FMA.
                unsafe { avx512() };
            }
        }
    }

    /// The weight gradient of both variants against `sum_p dy[p] x[p + k]` in
    /// f64 (15 x 17 filters: a short last group of lanes).
    #[test]
    fn weight_gradients_match_a_naive_sum() {
        for (xs, co, pad) in [(Nchw::new(2, 15, 9, 7), 17, 0), (Nchw::new(1, 20, 6, 8), 16, 1), (Nchw::new(2, 16, 21, 37), 16, 2), (Nchw::new(1, 16, 18, 18), 16, 0)] {
            let g = Geometry::new(3, 1, pad);
            let ys = g.out_shape(xs, co);
            let x = values(xs.len(), 1);
            let dy = values(ys.len(), 5);
            let mut want = vec![0f32; co * xs.c * 9];
            for o in 0..co {
                for i in 0..xs.c {
                    for k in 0..9 {
                        let (ky, kx) = (k / 3, k % 3);
                        let mut acc = 0f64;
                        for b in 0..xs.n {
                            for oy in 0..ys.h {
                                for ox in 0..ys.w {
                                    let (iy, ix) = ((oy + ky) as isize - pad as isize, (ox + kx) as isize - pad as isize);
                                    if iy >= 0 && ix >= 0 && (iy as usize) < xs.h && (ix as usize) < xs.w {
                                        let xv = x[((b * xs.c + i) * xs.h + iy as usize) * xs.w + ix as usize];
                                        acc += xv as f64 * dy[((b * co + o) * ys.h + oy) * ys.w + ox] as f64;
                                    }
                                }
                            }
                        }
                        want[(o * xs.c + i) * 9 + k] = acc as f32;
                    }
                }
            }
            close(&weight_grad3x3_with::<F2>(&x, xs, &dy, ys, pad), &want, 1e-5, "F2 weight gradient");
            close(&weight_grad3x3_with::<F4>(&x, xs, &dy, ys, pad), &want, 1e-5, "F4 weight gradient");
        }
    }
}
