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

use multiversion::multiversion;
use rayon::prelude::*;

use super::{Nchw, Products, bf16, min_len};
use super::gemm::{Mat, Threads, matmul};
use super::scratch::Scratch;

/// Tiles transformed together (one AVX register of f32).
const LANES: usize = 8;
type Lanes = [f32; LANES];
/// The largest input tile side of the variants below.
const MAX_A: usize = 6;

/// One Winograd variant: its output tile side `M`, input tile side `A = M + 2`
/// and the 1-D transforms, applied along rows and then columns. Arrays are
/// `MAX_A` long; only the first `A` (or `M`) entries mean anything.
pub trait Tile {
    const M: usize;
    const A: usize = Self::M + 2;
    /// `B^T d` for `A` values per lane.
    fn input(d: &[Lanes; MAX_A]) -> [Lanes; MAX_A];
    /// `A^T m`: `M` values from `A` per lane.
    fn output(m: &[Lanes; MAX_A]) -> [Lanes; MAX_A];
    /// `G g`: `A` values from a filter's 3 per lane.
    fn filter(g: &[Lanes; 3]) -> [Lanes; MAX_A];
    /// `A v`: `A` values from `M` per lane (the weight gradient's transform
    /// of an output-gradient tile).
    fn grad_tile(v: &[Lanes; MAX_A]) -> [Lanes; MAX_A];
    /// `G^T m`: a filter's 3 values from `A` per lane (the weight gradient's output).
    fn grad_filter(m: &[Lanes; MAX_A]) -> [Lanes; 3];
}

/// F(2x2, 3x3).
pub struct F2;
/// F(4x4, 3x3), with the interpolation points 0, +-1, +-2 (and infinity).
pub struct F4;
/// F4's filter transform's common factor.
const SIXTH: f32 = 1.0 / 6.0;

/// `f(j)` for every lane `j`. A plain loop: through `std::array::from_fn`
/// the closure was sometimes left as a call of its own, compiled without
/// the caller's AVX2 and run one lane at a time (5 % of a small training
/// step in `grad_filter`).
#[inline(always)]
fn lanes(f: impl Fn(usize) -> f32) -> Lanes {
    let mut out = [0f32; LANES];
    for (j, o) in out.iter_mut().enumerate() {
        *o = f(j);
    }
    out
}

impl Tile for F2 {
    const M: usize = 2;

    #[inline(always)]
    fn input(d: &[Lanes; MAX_A]) -> [Lanes; MAX_A] {
        // B^T = [[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]]
        let mut t = [[0f32; LANES]; MAX_A];
        t[0] = lanes(|j| d[0][j] - d[2][j]);
        t[1] = lanes(|j| d[1][j] + d[2][j]);
        t[2] = lanes(|j| d[2][j] - d[1][j]);
        t[3] = lanes(|j| d[1][j] - d[3][j]);
        t
    }

    #[inline(always)]
    fn output(m: &[Lanes; MAX_A]) -> [Lanes; MAX_A] {
        // A^T = [[1,1,1,0],[0,1,-1,-1]]
        let mut o = [[0f32; LANES]; MAX_A];
        o[0] = lanes(|j| m[0][j] + m[1][j] + m[2][j]);
        o[1] = lanes(|j| m[1][j] - m[2][j] - m[3][j]);
        o
    }

    #[inline(always)]
    fn filter([a, b, c]: &[Lanes; 3]) -> [Lanes; MAX_A] {
        // G = [[1,0,0],[.5,.5,.5],[.5,-.5,.5],[0,0,1]]
        let mut t = [[0f32; LANES]; MAX_A];
        t[0] = *a;
        t[1] = lanes(|j| 0.5 * (a[j] + b[j] + c[j]));
        t[2] = lanes(|j| 0.5 * (a[j] - b[j] + c[j]));
        t[3] = *c;
        t
    }

    #[inline(always)]
    fn grad_tile(v: &[Lanes; MAX_A]) -> [Lanes; MAX_A] {
        let mut t = [[0f32; LANES]; MAX_A];
        t[0] = v[0];
        t[1] = lanes(|j| v[0][j] + v[1][j]);
        t[2] = lanes(|j| v[0][j] - v[1][j]);
        t[3] = lanes(|j| -v[1][j]);
        t
    }

    #[inline(always)]
    fn grad_filter(m: &[Lanes; MAX_A]) -> [Lanes; 3] {
        [
            lanes(|j| m[0][j] + 0.5 * (m[1][j] + m[2][j])),
            lanes(|j| 0.5 * (m[1][j] - m[2][j])),
            lanes(|j| 0.5 * (m[1][j] + m[2][j]) + m[3][j]),
        ]
    }
}

impl Tile for F4 {
    const M: usize = 4;

    #[inline(always)]
    fn input(d: &[Lanes; MAX_A]) -> [Lanes; MAX_A] {
        // B^T = [[4,0,-5,0,1,0],[0,-4,-4,1,1,0],[0,4,-4,-1,1,0],
        //        [0,-2,-1,2,1,0],[0,2,-1,-2,1,0],[0,4,0,-5,0,1]]
        let mut t = [[0f32; LANES]; MAX_A];
        t[0] = lanes(|j| 4.0 * d[0][j] - 5.0 * d[2][j] + d[4][j]);
        t[1] = lanes(|j| d[3][j] + d[4][j] - 4.0 * (d[1][j] + d[2][j]));
        t[2] = lanes(|j| d[4][j] - d[3][j] + 4.0 * (d[1][j] - d[2][j]));
        t[3] = lanes(|j| d[4][j] - d[2][j] + 2.0 * (d[3][j] - d[1][j]));
        t[4] = lanes(|j| d[4][j] - d[2][j] + 2.0 * (d[1][j] - d[3][j]));
        t[5] = lanes(|j| 4.0 * d[1][j] - 5.0 * d[3][j] + d[5][j]);
        t
    }

    #[inline(always)]
    fn output(m: &[Lanes; MAX_A]) -> [Lanes; MAX_A] {
        // A^T = [[1,1,1,1,1,0],[0,1,-1,2,-2,0],[0,1,1,4,4,0],[0,1,-1,8,-8,1]]
        let mut o = [[0f32; LANES]; MAX_A];
        for j in 0..LANES {
            let (p12, m12) = (m[1][j] + m[2][j], m[1][j] - m[2][j]);
            let (p34, m34) = (m[3][j] + m[4][j], m[3][j] - m[4][j]);
            o[0][j] = m[0][j] + p12 + p34;
            o[1][j] = m12 + 2.0 * m34;
            o[2][j] = p12 + 4.0 * p34;
            o[3][j] = m12 + 8.0 * m34 + m[5][j];
        }
        o
    }

    #[inline(always)]
    fn filter([a, b, c]: &[Lanes; 3]) -> [Lanes; MAX_A] {
        // G = [[1/4,0,0],[-1/6,-1/6,-1/6],[-1/6,1/6,-1/6],[1/24,1/12,1/6],[1/24,-1/12,1/6],[0,0,1]]
        // Sixths as products with 1/6, the rest powers of two (divisions
        // cost as much as the rest of the transform together).
        let mut t = [[0f32; LANES]; MAX_A];
        t[0] = lanes(|j| 0.25 * a[j]);
        t[1] = lanes(|j| -SIXTH * (a[j] + b[j] + c[j]));
        t[2] = lanes(|j| -SIXTH * (a[j] - b[j] + c[j]));
        t[3] = lanes(|j| SIXTH * (0.25 * a[j] + 0.5 * b[j] + c[j]));
        t[4] = lanes(|j| SIXTH * (0.25 * a[j] - 0.5 * b[j] + c[j]));
        t[5] = *c;
        t
    }

    #[inline(always)]
    fn grad_tile(v: &[Lanes; MAX_A]) -> [Lanes; MAX_A] {
        // A = (A^T)^T: rows [1,0,0,0],[1,1,1,1],[1,-1,1,-1],[1,2,4,8],[1,-2,4,-8],[0,0,0,1]
        let mut t = [[0f32; LANES]; MAX_A];
        for j in 0..LANES {
            let (p02, p13) = (v[0][j] + v[2][j], v[1][j] + v[3][j]);
            let (q02, q13) = (v[0][j] + 4.0 * v[2][j], 2.0 * v[1][j] + 8.0 * v[3][j]);
            t[0][j] = v[0][j];
            t[1][j] = p02 + p13;
            t[2][j] = p02 - p13;
            t[3][j] = q02 + q13;
            t[4][j] = q02 - q13;
            t[5][j] = v[3][j];
        }
        t
    }

    #[inline(always)]
    fn grad_filter(m: &[Lanes; MAX_A]) -> [Lanes; 3] {
        // G^T, G as in `filter`
        let mut o = [[0f32; LANES]; 3];
        for j in 0..LANES {
            let (p12, m12) = (m[1][j] + m[2][j], m[1][j] - m[2][j]);
            let (p34, m34) = (m[3][j] + m[4][j], m[3][j] - m[4][j]);
            // (products with 1/6 rather than divisions, as in `filter`)
            o[0][j] = 0.25 * m[0][j] + SIXTH * (0.25 * p34 - p12);
            o[1][j] = SIXTH * (0.5 * m34 - m12);
            o[2][j] = SIXTH * (p34 - p12) + m[5][j];
        }
        o
    }
}

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

    /// Filters `(o, i0 + j)` for the `lanes` lanes `j` into `g[tap][j]`
    /// (taps row-major). Tap by tap, without a closure per filter; whole
    /// groups go through [`avx2::gather`] where the CPU has AVX2 (one
    /// element at a time, this gather was most of the transform's time).
    #[inline(always)]
    fn gather(&self, o: usize, i0: usize, lanes: usize, g: &mut [Lanes; 9]) {
        #[cfg(target_arch = "x86_64")]
        if lanes == LANES && super::simd::avx2() {
            let (start, stride) = self.lane_start_and_stride(o, i0);
            // SAFETY: AVX2 is present; `gather` checks its reads against `w`.
            unsafe { avx2::gather(self.w, start, stride, self.flipped, g) };
            return;
        }
        self.gather_scalar(o, i0, lanes, g);
    }

    /// [`Self::gather`] one value at a time, for any number of lanes.
    #[inline(always)]
    fn gather_scalar(&self, o: usize, i0: usize, lanes: usize, g: &mut [Lanes; 9]) {
        let (start, stride) = self.lane_start_and_stride(o, i0);
        for j in 0..lanes {
            let f: &[f32; 9] = self.w[start + j * stride..][..9].try_into().expect("nine taps");
            for (t, gt) in g.iter_mut().enumerate() {
                gt[j] = if self.flipped { f[8 - t] } else { f[t] };
            }
        }
    }
}

/// AVX2 code for the two gathers that feed the transforms eight lanes at a
/// time: eight filters' taps (read as rows, turned into lanes by an 8 x 8
/// transpose) and the columns of eight side-by-side tiles (whole rows taken
/// apart by shuffles). As scalar loops they were a third of the filter
/// transform's time (weights in cache) and a tenth to a fifth of the F4
/// input transform's.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{LANES, Lanes, split_len};
    use std::arch::x86_64::*;

    /// `g[t][j]` = tap `t` of the filter starting at `w[start + j * stride]`
    /// (reversed, tap `8 - t`, when `flipped`), for the eight lanes `j`.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn gather(w: &[f32], start: usize, stride: usize, flipped: bool, g: &mut [Lanes; 9]) {
        assert!(start + (LANES - 1) * stride + 9 <= w.len(), "filters past the weights");
        assert!((LANES - 1) * stride <= i32::MAX as usize, "filter stride past i32");
        // Eight taps of each filter as one row (taps 0..8, or 1..9 when
        // flipped so that the one left over is tap 0 in both cases), the
        // ninth by a gather.
        let (rows_from, rest) = if flipped { (1, 0) } else { (0, 8) };
        // SAFETY: the assert keeps every read inside `w`.
        let p = unsafe { w.as_ptr().add(start) };
        let r: [__m256; LANES] = std::array::from_fn(|j| unsafe { _mm256_loadu_ps(p.add(j * stride + rows_from)) });
        let t = transpose(r); // t[k][j]: element k of row j
        let s = stride as i32;
        let lane_offsets = _mm256_setr_epi32(0, s, 2 * s, 3 * s, 4 * s, 5 * s, 6 * s, 7 * s);
        // SAFETY: as above.
        let last = unsafe { _mm256_i32gather_ps::<4>(p.add(rest), lane_offsets) };
        for (k, tk) in t.iter().enumerate() {
            // A flipped filter's tap t is stored at 8 - t, here row element 7 - t.
            let tap = if flipped { 7 - k } else { k };
            unsafe { _mm256_storeu_ps(g[tap].as_mut_ptr(), *tk) };
        }
        unsafe { _mm256_storeu_ps(g[8].as_mut_ptr(), last) };
    }

    /// `d[c][r][j] = row[m * j + c]` for `c < cols` (`m` 2 or 4, `cols` at
    /// most `m + 2`): the columns of eight side-by-side tiles taken apart by
    /// shuffles, from whole-vector loads at multiples of eight values. The
    /// columns past `m` are the first two shifted by one lane, not loads at
    /// an offset: such a load straddles two of the stores that just filled
    /// `row` (at the plane's edges), and a load that two stores must
    /// forward waits for both to retire (two thirds of a small training
    /// step's input transform).
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn split(m: usize, d: &mut [[Lanes; super::MAX_A]; super::MAX_A], r: usize, row: &[f32], cols: usize) {
        assert!((m == 2 || m == 4) && cols <= m + 2 && row.len() >= split_len(m, cols), "row too short to split");
        let load = |at: usize| unsafe { _mm256_loadu_ps(row.as_ptr().add(at)) };
        let mut put = |c: usize, v: __m256| {
            if c < cols {
                unsafe { _mm256_storeu_ps(d[c][r].as_mut_ptr(), v) };
            }
        };
        // lanes 1..8 of `v`, then `last`
        let shift_in = |v: __m256, last: f32| {
            let rotated = _mm256_permutevar8x32_ps(v, _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 0));
            _mm256_blend_ps::<0x80>(rotated, _mm256_set1_ps(last))
        };
        let (c0, c1) = if m == 2 {
            // even and odd values of the first 16, each as eight lanes
            let (a, b) = (load(0), load(8));
            let even = _mm256_shuffle_ps::<0x88>(a, b); // a0 a2 b0 b2 | a4 a6 b4 b6
            let odd = _mm256_shuffle_ps::<0xDD>(a, b);
            let order = |v: __m256| _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(v)));
            let (c0, c1) = (order(even), order(odd));
            put(0, c0);
            put(1, c1);
            (c0, c1)
        } else {
            // values 4j + c of the first 32: a 4 x 4 transpose in each half
            // leaves lanes in the order j = 0 2 4 6 | 1 3 5 7
            let q: [__m256; 4] = std::array::from_fn(|k| load(8 * k));
            let t0 = _mm256_unpacklo_ps(q[0], q[1]);
            let t1 = _mm256_unpackhi_ps(q[0], q[1]);
            let t2 = _mm256_unpacklo_ps(q[2], q[3]);
            let t3 = _mm256_unpackhi_ps(q[2], q[3]);
            let order = |v: __m256| _mm256_permutevar8x32_ps(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            let c = [
                order(_mm256_shuffle_ps::<0x44>(t0, t2)),
                order(_mm256_shuffle_ps::<0xEE>(t0, t2)),
                order(_mm256_shuffle_ps::<0x44>(t1, t3)),
                order(_mm256_shuffle_ps::<0xEE>(t1, t3)),
            ];
            for (k, v) in c.into_iter().enumerate() {
                put(k, v);
            }
            (c[0], c[1])
        };
        // columns m and m + 1: the next tile's first two
        if cols > m {
            put(m, shift_in(c0, row[8 * m]));
        }
        if cols > m + 1 {
            put(m + 1, shift_in(c1, row[8 * m + 1]));
        }
    }

    /// `row[k] = line[x0 + k]` where that is inside `line`, else zero, for
    /// every `k` of `row`: eight values at a time by masked loads, written by
    /// whole-vector stores that the loads of [`split`] then line up with
    /// (filled one value at a time, every load of `split` waited for eight
    /// stores to retire).
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn padded_row(line: &[f32], x0: isize, row: &mut [f32]) {
        let w = line.len() as i32;
        let steps = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let mut k = 0;
        while k + 8 <= row.len() {
            let at = x0 + k as isize;
            let idx = _mm256_add_epi32(_mm256_set1_epi32(at as i32), steps);
            // inside: 0 <= idx < w, as the sign bit of each lane
            let inside = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), idx), _mm256_cmpgt_epi32(_mm256_set1_epi32(w), idx));
            // SAFETY: only lanes inside `line` are read (a masked-off lane
            // is never accessed); the address outside is only formed.
            let v = unsafe { _mm256_maskload_ps(line.as_ptr().wrapping_offset(at), inside) };
            unsafe { _mm256_storeu_ps(row.as_mut_ptr().add(k), v) };
            k += 8;
        }
        for (j, v) in row.iter_mut().enumerate().skip(k) {
            let xx = x0.wrapping_add(j as isize) as usize;
            *v = if xx < line.len() { line[xx] } else { 0.0 };
        }
    }

    /// The transpose of an 8 x 8 matrix given by rows.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn transpose(r: [__m256; 8]) -> [__m256; 8] {
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        [
            _mm256_permute2f128_ps::<0x20>(u0, u4),
            _mm256_permute2f128_ps::<0x20>(u1, u5),
            _mm256_permute2f128_ps::<0x20>(u2, u6),
            _mm256_permute2f128_ps::<0x20>(u3, u7),
            _mm256_permute2f128_ps::<0x31>(u0, u4),
            _mm256_permute2f128_ps::<0x31>(u1, u5),
            _mm256_permute2f128_ps::<0x31>(u2, u6),
            _mm256_permute2f128_ps::<0x31>(u3, u7),
        ]
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
    // dw[o][i] = G^T M G, LANES filters at a time: one filter at a time, in
    // scalar code, was 6.7 % of the small training case.
    let mut dw = vec![0f32; co * ci * 9];
    dw.par_chunks_mut(9 * LANES).with_min_len(min_len(9 * n * LANES)).enumerate().for_each(|(g, out)| {
        filters_from_products::<T>(&m, co * ci, g * LANES, out);
    });
    dw
}

/// `G^T M G` of the `out.len() / 9` (at most `LANES`) filters `oi0..` from
/// the weight gradient's products `m[xi * plane + oi]` into `out`
/// (`[oi][3][3]`).
#[multiversion(targets("x86_64+avx2+fma", "x86_64+avx", "aarch64+neon"))]
fn filters_from_products<T: Tile>(m: &[f32], plane: usize, oi0: usize, out: &mut [f32]) {
    let count = out.len() / 9;
    let mut e = [[[0f32; LANES]; MAX_A]; MAX_A]; // e[c][r]: element (r, c), by column
    load::<T>(&mut e, m, plane, oi0, count);
    let mut t = [[[0f32; LANES]; MAX_A]; 3]; // t[k][c] = (G^T M)[k][c]
    for (c, ec) in e.iter().enumerate().take(T::A) {
        for (k, v) in T::grad_filter(ec).into_iter().enumerate() {
            t[k][c] = v;
        }
    }
    let mut filters = [0f32; 9 * LANES]; // [j][k][q]
    for (k, tk) in t.iter().enumerate() {
        let row = T::grad_filter(tk);
        for (q, rq) in row.iter().enumerate() {
            for (j, v) in rq.iter().enumerate() {
                filters[j * 9 + k * 3 + q] = *v;
            }
        }
    }
    if count == LANES {
        out.copy_from_slice(&filters);
    } else {
        out.copy_from_slice(&filters[..9 * count]);
    }
}

/// `A dy A^T` for every `M x M` tile of one output-gradient plane (zero
/// beyond its edges) into `yo[xi * t_all + t]`, `LANES` tiles at a time.
#[allow(clippy::too_many_arguments)]
#[multiversion(targets("x86_64+avx2+fma", "x86_64+avx", "aarch64+neon"))]
fn grad_transform_plane<T: Tile>(plane: &[f32], h: usize, w: usize, th: usize, tw: usize, yo: &mut [f32], t_all: usize, t0: usize) {
    // (for tiles past the plane's right edge, zeros)
    let mut row = [0f32; 4 * LANES];
    // Work arrays live across tiles: zeroing them per group of tiles was a
    // call to memset each time (6 % of a training step).
    // d[c][r][j]: element (r, c) of tile tx + j, by column
    let mut d = [[[0f32; LANES]; MAX_A]; MAX_A];
    let mut t = [[[0f32; LANES]; MAX_A]; MAX_A]; // t[r][c]
    for ty in 0..th {
        let mut tx = 0;
        while tx < tw {
            let lanes = LANES.min(tw - tx);
            let x0 = tx * T::M;
            let span = T::M * LANES;
            for r in 0..T::M {
                let yy = ty * T::M + r;
                if yy >= h {
                    for dc in d.iter_mut().take(T::M) {
                        dc[r] = [0.0; LANES];
                    }
                    continue;
                }
                let line = &plane[yy * w..(yy + 1) * w];
                if x0 + span <= w {
                    gather::<T>(&mut d, r, &line[x0..x0 + span], T::M); // in place, as in the forward
                } else {
                    padded_row(line, x0 as isize, &mut row[..span]);
                    gather::<T>(&mut d, r, &row[..span], T::M);
                }
            }
            transform_2d::<T>(&d, &mut t, T::M, T::grad_tile, yo, t_all, t0 + ty * tw + tx, lanes);
            tx += lanes;
        }
    }
}

/// `U = G g G^T` of the filters `(o, i)` of `w` for every input channel
/// `i` into `uo[xi * ci + i]`, `LANES` filters at a time.
#[multiversion(targets("x86_64+avx2+fma", "x86_64+avx", "aarch64+neon"))]
fn filters_transform<T: Tile>(w: Filters, o: usize, uo: &mut [f32]) {
    let ci = w.ci;
    // g[tap][j]: filter (o, i0 + j); lanes past a short last group keep
    // stale values that are never stored
    let mut g = [[0f32; LANES]; 9];
    let mut i0 = 0;
    while i0 < ci {
        let lanes = LANES.min(ci - i0);
        w.gather(o, i0, lanes, &mut g);
        // G g, by column
        let cols = [T::filter(&[g[0], g[3], g[6]]), T::filter(&[g[1], g[4], g[7]]), T::filter(&[g[2], g[5], g[8]])];
        for r in 0..T::A {
            let row = T::filter(&[cols[0][r], cols[1][r], cols[2][r]]);
            for (c, v) in row.iter().enumerate().take(T::A) {
                store(uo, (r * T::A + c) * ci + i0, v, lanes);
            }
        }
        i0 += lanes;
    }
}

/// `dst[at..at + lanes] = v[..lanes]`, with a constant length for whole
/// groups: a variable-length copy is a call to memmove (7 % of a generator
/// forward when every store went that way).
#[inline(always)]
fn store(dst: &mut [f32], at: usize, v: &Lanes, lanes: usize) {
    if lanes == LANES {
        dst[at..at + LANES].copy_from_slice(v);
    } else {
        dst[at..at + lanes].copy_from_slice(&v[..lanes]);
    }
}

/// The `A x A` transformed elements of `lanes` consecutive tiles (or
/// filters) `at..`, element `(r, c)` at `src[(r * A + c) * stride + at..]`,
/// into `e[c][r]` (by column), with a constant length for whole groups as
/// in [`store`].
#[inline(always)]
fn load<T: Tile>(e: &mut [[Lanes; MAX_A]; MAX_A], src: &[f32], stride: usize, at: usize, lanes: usize) {
    for r in 0..T::A {
        for (c, ec) in e.iter_mut().enumerate().take(T::A) {
            let i = (r * T::A + c) * stride + at;
            if lanes == LANES {
                ec[r].copy_from_slice(&src[i..i + LANES]);
            } else {
                ec[r][..lanes].copy_from_slice(&src[i..i + lanes]);
            }
        }
    }
}

/// Values of a row that [`gather`] reads for `LANES` tiles of side `m`
/// and their first `cols` columns: the tiles' `m * LANES`, and the next
/// tile's columns past `m`.
const fn split_len(m: usize, cols: usize) -> usize {
    m * LANES + cols.saturating_sub(m)
}

/// Row `r` of `LANES` side-by-side tiles of side `T::M` (plus overlap) from
/// one line of the plane: `d[c][r][j] = row[T::M * j + c]` for `c < cols`;
/// `row` holds at least [`split_len`] values.
#[inline(always)]
fn gather<T: Tile>(d: &mut [[Lanes; MAX_A]; MAX_A], r: usize, row: &[f32], cols: usize) {
    #[cfg(target_arch = "x86_64")]
    if super::simd::avx2() && (T::M == 2 || T::M == 4) {
        // SAFETY: AVX2 is present; `split` checks its reads against `row`.
        unsafe { avx2::split(T::M, d, r, row, cols) };
        return;
    }
    gather_scalar::<T>(d, r, row, cols);
}

/// `row[k] = line[x0 + k]`, zero outside `line`: part of a row of tiles
/// at the plane's edges.
#[inline(always)]
fn padded_row(line: &[f32], x0: isize, row: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::simd::avx2() && line.len() <= i32::MAX as usize / 2 && x0.unsigned_abs() <= i32::MAX as usize / 2 {
        // SAFETY: AVX2 is present; lane indices fit in i32.
        unsafe { avx2::padded_row(line, x0, row) };
        return;
    }
    // one unsigned comparison per element: a negative index wraps past the end
    for (k, v) in row.iter_mut().enumerate() {
        let xx = x0.wrapping_add(k as isize) as usize;
        *v = if xx < line.len() { line[xx] } else { 0.0 };
    }
}

/// [`gather`] one value at a time.
#[inline(always)]
fn gather_scalar<T: Tile>(d: &mut [[Lanes; MAX_A]; MAX_A], r: usize, row: &[f32], cols: usize) {
    for (c, dc) in d.iter_mut().enumerate().take(cols) {
        for j in 0..LANES {
            dc[r][j] = row[T::M * j + c];
        }
    }
}

/// `f` down each of the first `cols` columns of the tiles `d` (`d[c][r]`)
/// into `t[r][c]`, then along each of the `A` rows of `t`; element
/// `(r, c)` of tile `t_index + j` goes to `dst[(r * A + c) * t_all + t_index + j]`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn transform_2d<T: Tile>(
    d: &[[Lanes; MAX_A]; MAX_A],
    t: &mut [[Lanes; MAX_A]; MAX_A],
    cols: usize,
    f: impl Fn(&[Lanes; MAX_A]) -> [Lanes; MAX_A],
    dst: &mut [f32],
    t_all: usize,
    t_index: usize,
    lanes: usize,
) {
    for (c, dc) in d.iter().enumerate().take(cols) {
        let col = f(dc);
        for r in 0..T::A {
            t[r][c] = col[r];
        }
    }
    for (r, tr) in t.iter().enumerate().take(T::A) {
        let out = f(tr);
        for (c, o) in out.iter().enumerate().take(T::A) {
            store(dst, (r * T::A + c) * t_all + t_index, o, lanes);
        }
    }
}

/// Transform every input tile of one channel plane into `vi[xi * t_all + t]`,
/// `LANES` horizontally adjacent tiles at a time.
#[allow(clippy::too_many_arguments)]
#[multiversion(targets("x86_64+avx2+fma", "x86_64+avx", "aarch64+neon"))]
fn input_transform_plane<T: Tile>(
    plane: &[f32],
    h: usize,
    w: usize,
    pad: usize,
    th: usize,
    tw: usize,
    vi: &mut [f32],
    t_all: usize,
    t0: usize,
) {
    // A row of the padded plane, long enough for LANES tiles.
    let span = split_len(T::M, T::A);
    // (for tiles at the plane's edges, zeros outside it)
    let mut row = [0f32; split_len(4, 6)];
    // Work arrays live across tiles (see `grad_transform_plane`).
    // d[c][r][j]: element (r, c) of tile tx + j, by column
    let mut d = [[[0f32; LANES]; MAX_A]; MAX_A];
    let mut t = [[[0f32; LANES]; MAX_A]; MAX_A]; // t[r][c]
    for ty in 0..th {
        let y0 = (ty * T::M) as isize - pad as isize;
        let mut tx = 0;
        while tx < tw {
            let lanes = LANES.min(tw - tx);
            let x0 = (tx * T::M) as isize - pad as isize;
            for r in 0..T::A {
                let yy = y0 + r as isize;
                if yy < 0 || yy >= h as isize {
                    for dc in d.iter_mut().take(T::A) {
                        dc[r] = [0.0; LANES];
                    }
                    continue;
                }
                let line = &plane[yy as usize * w..(yy as usize + 1) * w];
                if x0 >= 0 && x0 as usize + span <= w {
                    // read in place: copied first, the copy was stored and
                    // loaded again at once
                    gather::<T>(&mut d, r, &line[x0 as usize..x0 as usize + span], T::A);
                } else {
                    padded_row(line, x0, &mut row[..span]);
                    gather::<T>(&mut d, r, &row[..span], T::A);
                }
            }
            // B^T d (down each column), then (B^T d) B (along each row)
            transform_2d::<T>(&d, &mut t, T::A, T::input, vi, t_all, t0 + ty * tw + tx, lanes);
            tx += lanes;
        }
    }
}

/// `A^T m A + add` for every tile of one output plane, `LANES` horizontally
/// adjacent tiles at a time.
#[allow(clippy::too_many_arguments)]
#[multiversion(targets("x86_64+avx2+fma", "x86_64+avx", "aarch64+neon"))]
fn output_transform_plane<T: Tile>(
    m: &[f32],
    xi_stride: usize,
    base: usize,
    th: usize,
    tw: usize,
    oh: usize,
    ow: usize,
    add: f32,
    out: &mut [f32],
) {
    let mut line = [0f32; 4 * LANES];
    // Work arrays live across tiles (see `grad_transform_plane`); lanes past
    // a short last group hold stale values that are never stored.
    // e[c][r]: element (r, c) of the transformed tiles, by column
    let mut e = [[[0f32; LANES]; MAX_A]; MAX_A];
    let mut s = [[[0f32; LANES]; MAX_A]; MAX_A]; // s[r][c]
    for ty in 0..th {
        let mut tx = 0;
        while tx < tw {
            let lanes = LANES.min(tw - tx);
            let t = base + ty * tw + tx;
            load::<T>(&mut e, m, xi_stride, t, lanes);
            // A^T e (down each column), then (A^T e) A (along each row)
            for c in 0..T::A {
                let col = T::output(&e[c]);
                for r in 0..T::M {
                    s[r][c] = col[r];
                }
            }
            let ox = tx * T::M;
            let count = (T::M * lanes).min(ow - ox);
            for (r, sr) in s.iter().enumerate().take(T::M) {
                let oy = ty * T::M + r;
                if oy >= oh {
                    break;
                }
                let vals = T::output(sr);
                for j in 0..LANES {
                    for q in 0..T::M {
                        line[T::M * j + q] = vals[q][j] + add;
                    }
                }
                if count == T::M * LANES {
                    // a constant length: vector stores instead of a call to memmove
                    out[oy * ow + ox..][..T::M * LANES].copy_from_slice(&line[..T::M * LANES]);
                } else {
                    out[oy * ow + ox..oy * ow + ox + count].copy_from_slice(&line[..count]);
                }
            }
            tx += lanes;
        }
    }
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

    /// The AVX2 gathers of filter taps and of tile columns, and the zero
    /// padding of rows at the edges, against scalar loops (where the CPU
    /// has AVX2).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vector_gathers_match_the_scalar_loops() {
        if !crate::ops::cpu::simd::avx2() {
            return;
        }
        let (co, ci) = (11, 19); // both ways round at least one group of eight
        let w = values(co * ci * 9, 4);
        for filters in [Filters::new(&w, ci), Filters::flipped(&w, co)] {
            let (outputs, inputs) = (filters.co, filters.ci);
            for o in 0..outputs {
                for i0 in 0..=inputs - LANES {
                    let (mut got, mut want) = ([[0f32; LANES]; 9], [[0f32; LANES]; 9]);
                    let (start, stride) = filters.lane_start_and_stride(o, i0);
                    unsafe { avx2::gather(&w, start, stride, filters.flipped, &mut got) };
                    filters.gather_scalar(o, i0, LANES, &mut want);
                    assert_eq!(got, want, "filters ({o}, {i0}..), flipped {}", filters.flipped);
                }
            }
        }
        for (m, cols) in [(2, 2), (2, 4), (4, 4), (4, 6)] {
            // exactly as long as the split may read
            let row = values(split_len(m, cols), 5);
            for r in [0, 3] {
                let (mut got, mut want) = ([[[0f32; LANES]; MAX_A]; MAX_A], [[[0f32; LANES]; MAX_A]; MAX_A]);
                unsafe { avx2::split(m, &mut got, r, &row, cols) };
                if m == 2 { gather_scalar::<F2>(&mut want, r, &row, cols) } else { gather_scalar::<F4>(&mut want, r, &row, cols) }
                assert_eq!(got, want, "tile columns, m {m}, {cols} columns, row {r}");
            }
        }
        // rows of tiles at a plane's edges: every offset from before the
        // line's start to past its end, every row length the transforms use
        for w in [1, 7, 16, 18, 40] {
            let line = values(w, 6);
            for len in [16, 18, 32, 34] {
                for x0 in -(len as isize) - 1..=w as isize + 1 {
                    let want: Vec<f32> = (0..len as isize).map(|k| usize::try_from(x0 + k).ok().and_then(|i| line.get(i)).copied().unwrap_or(0.0)).collect();
                    let mut got = vec![f32::NAN; len];
                    unsafe { avx2::padded_row(&line, x0, &mut got) };
                    assert_eq!(got, want, "padded row: line of {w}, {len} from {x0}");
                }
            }
        }
    }

    /// The weight gradient of both variants against `sum_p dy[p] x[p + k]` in
    /// f64 (15 x 17 filters: a short last group of lanes).
    #[test]
    fn weight_gradients_match_a_naive_sum() {
        for (xs, co, pad) in [(Nchw::new(2, 15, 9, 7), 17, 0), (Nchw::new(1, 20, 6, 8), 16, 1), (Nchw::new(2, 16, 21, 37), 16, 2)] {
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
