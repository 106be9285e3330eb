//! The vectors Winograd's transforms compute with: [`Vector::LANES`] tiles
//! (or filters) side by side, one value of each per lane. [`Portable`] is an
//! array that any CPU runs; [`Ymm`] is one AVX register and [`Zmm`] one
//! AVX-512 register, each with the shuffles that take rows of tiles and
//! filters' taps apart into lanes and put output tiles back together into
//! rows. The transforms are written once over [`Vector`] (`super::planes`)
//! and compiled for each; the lanes never mix, so all three give the same
//! bits.

use std::ops::{Add, Mul, Neg, Sub};

use super::{Filters, MAX_A};

/// Lanes of [`Portable`] and [`Ymm`] (one AVX register of f32).
pub const LANES: usize = 8;
/// The most lanes of any [`Vector`] (one AVX-512 register of f32).
pub const MAX_LANES: usize = 16;

/// Values of a row that [`Vector::split`] reads for `lanes` tiles of side
/// `m` and their first `cols` columns: the tiles' `m * lanes`, and the next
/// tile's columns past `m`.
pub const fn split_len(lanes: usize, m: usize, cols: usize) -> usize {
    m * lanes + cols.saturating_sub(m)
}

/// `LANES` values, one per tile or filter, and what the transforms need of them.
pub trait Vector: Copy + Add<Output = Self> + Sub<Output = Self> + Mul<f32, Output = Self> + Neg<Output = Self> {
    /// Values side by side (at most [`MAX_LANES`]).
    const LANES: usize;

    fn zero() -> Self;
    fn splat(v: f32) -> Self;
    /// The first `LANES` values of `src`.
    fn load(src: &[f32]) -> Self;
    /// `self` into the first `LANES` values of `dst`.
    fn store(self, dst: &mut [f32]);

    /// The first `n` values of `src` (at most `LANES`), zero in the other lanes.
    #[inline(always)]
    fn load_partial(src: &[f32], n: usize) -> Self {
        if n == Self::LANES {
            return Self::load(src);
        }
        let mut lanes = [0f32; MAX_LANES];
        lanes[..n].copy_from_slice(&src[..n]);
        Self::load(&lanes)
    }

    /// The first `n` lanes (at most `LANES`) into `dst`.
    #[inline(always)]
    fn store_partial(self, dst: &mut [f32], n: usize) {
        if n == Self::LANES {
            return self.store(dst);
        }
        let mut lanes = [0f32; MAX_LANES];
        self.store(&mut lanes);
        dst[..n].copy_from_slice(&lanes[..n]);
    }

    /// Column `c < cols` of `LANES` side-by-side tiles of side `m` (2 or
    /// 4, plus their overlap) in one row: `row[m * j + c]` in lane `j`.
    /// `row` holds at least [`split_len`] values.
    fn split(m: usize, row: &[f32], cols: usize) -> [Self; MAX_A];

    /// `row[k] = line[x0 + k]` inside `line`, zero outside: a row of tiles
    /// at the plane's edges.
    #[inline(always)]
    fn padded_row(line: &[f32], x0: isize, row: &mut [f32]) {
        padded_row_scalar(line, x0, row);
    }

    /// The taps (row-major) of the filters `(o, i0 + j)` in lanes `j`.
    fn filter_taps(w: &Filters, o: usize, i0: usize) -> [Self; 9];

    /// `out[m * j + q] = v[q][j]` for `q < m` (2 or 4): the values of
    /// `LANES` output tiles' rows, back side by side in one row.
    fn interleave(m: usize, v: &[Self; MAX_A], out: &mut [f32]);

    /// `out[9 * j + t] = taps[t][j]` for the first `out.len() / 9` lanes
    /// `j` (at most `LANES`): filters' taps from lanes back to
    /// `[filter][3][3]`, the inverse of [`Vector::filter_taps`].
    #[inline(always)]
    fn unzip_filters(taps: &[Self; 9], out: &mut [f32]) {
        unzip_filters_scalar(taps, out);
    }
}

/// [`Vector::unzip_filters`] through an array, one value at a time.
#[inline(always)]
pub fn unzip_filters_scalar<V: Vector>(taps: &[V; 9], out: &mut [f32]) {
    let mut lanes = [[0f32; MAX_LANES]; 9];
    for (l, v) in lanes.iter_mut().zip(taps) {
        v.store(l);
    }
    for (j, filter) in out.chunks_exact_mut(9).enumerate() {
        for (t, v) in filter.iter_mut().enumerate() {
            *v = lanes[t][j];
        }
    }
}

/// [`Vector::padded_row`] one value at a time.
#[inline(always)]
pub fn padded_row_scalar(line: &[f32], x0: isize, row: &mut [f32]) {
    // one unsigned comparison per element: a negative index wraps past the end
    for (k, v) in row.iter_mut().enumerate() {
        let xx = x0.wrapping_add(k as isize) as usize;
        *v = if xx < line.len() { line[xx] } else { 0.0 };
    }
}

/// `LANES` values as an array: loops the compiler vectorises for whatever
/// the CPU has.
#[derive(Clone, Copy)]
pub struct Portable([f32; LANES]);

impl Portable {
    #[inline(always)]
    fn map2(self, o: Self, f: impl Fn(f32, f32) -> f32) -> Self {
        // A plain loop: through `std::array::from_fn` the closure was
        // sometimes left as a call of its own, run one lane at a time.
        let mut out = [0f32; LANES];
        for (j, v) in out.iter_mut().enumerate() {
            *v = f(self.0[j], o.0[j]);
        }
        Self(out)
    }
}

impl Add for Portable {
    type Output = Self;
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        self.map2(o, |a, b| a + b)
    }
}

impl Sub for Portable {
    type Output = Self;
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        self.map2(o, |a, b| a - b)
    }
}

impl Mul<f32> for Portable {
    type Output = Self;
    #[inline(always)]
    fn mul(self, k: f32) -> Self {
        self.map2(self, |a, _| a * k)
    }
}

impl Neg for Portable {
    type Output = Self;
    #[inline(always)]
    fn neg(self) -> Self {
        self.map2(self, |a, _| -a)
    }
}

impl Vector for Portable {
    const LANES: usize = LANES;

    #[inline(always)]
    fn zero() -> Self {
        Self([0.0; LANES])
    }

    #[inline(always)]
    fn splat(v: f32) -> Self {
        Self([v; LANES])
    }

    #[inline(always)]
    fn load(src: &[f32]) -> Self {
        Self(src[..LANES].try_into().expect("LANES values"))
    }

    #[inline(always)]
    fn store(self, dst: &mut [f32]) {
        dst[..LANES].copy_from_slice(&self.0);
    }

    #[inline(always)]
    fn split(m: usize, row: &[f32], cols: usize) -> [Self; MAX_A] {
        let mut c = [Self::zero(); MAX_A];
        for (k, ck) in c.iter_mut().enumerate().take(cols) {
            for j in 0..LANES {
                ck.0[j] = row[m * j + k];
            }
        }
        c
    }

    #[inline(always)]
    fn filter_taps(w: &Filters, o: usize, i0: usize) -> [Self; 9] {
        let mut g = [[0f32; LANES]; 9];
        w.taps(o, i0, LANES, &mut g);
        g.map(Self)
    }

    #[inline(always)]
    fn interleave(m: usize, v: &[Self; MAX_A], out: &mut [f32]) {
        for j in 0..LANES {
            for q in 0..m {
                out[m * j + q] = v[q].0[j];
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub use avx2::Ymm;
#[cfg(target_arch = "x86_64")]
pub use avx512::Zmm;

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Filters, LANES, MAX_A, Vector, split_len};
    use std::arch::x86_64::*;
    use std::ops::{Add, Mul, Neg, Sub};

    /// One AVX register of `LANES` f32. Made only by the transforms'
    /// AVX2 and AVX-512 entry points (`super::super::planes`; [`super::Zmm`]
    /// splits into two) and by tests, all of which run once the CPU is known
    /// to have AVX2 and FMA: that is what makes the intrinsics below sound.
    #[derive(Clone, Copy)]
    pub struct Ymm(__m256);

    impl Ymm {
        /// The register (for [`super::Zmm`], which joins two).
        #[inline(always)]
        pub(super) fn raw(self) -> __m256 {
            self.0
        }

        /// A register as a vector (for [`super::Zmm`], which splits in two).
        #[inline(always)]
        pub(super) fn from_raw(v: __m256) -> Self {
            Self(v)
        }
    }

    impl Add for Ymm {
        type Output = Self;
        #[inline(always)]
        fn add(self, o: Self) -> Self {
            Self(unsafe { _mm256_add_ps(self.0, o.0) })
        }
    }

    impl Sub for Ymm {
        type Output = Self;
        #[inline(always)]
        fn sub(self, o: Self) -> Self {
            Self(unsafe { _mm256_sub_ps(self.0, o.0) })
        }
    }

    impl Mul<f32> for Ymm {
        type Output = Self;
        #[inline(always)]
        fn mul(self, k: f32) -> Self {
            Self(unsafe { _mm256_mul_ps(self.0, _mm256_set1_ps(k)) })
        }
    }

    impl Neg for Ymm {
        type Output = Self;
        #[inline(always)]
        fn neg(self) -> Self {
            Self(unsafe { _mm256_xor_ps(self.0, _mm256_set1_ps(-0.0)) })
        }
    }

    impl Vector for Ymm {
        const LANES: usize = LANES;

        #[inline(always)]
        fn zero() -> Self {
            Self(unsafe { _mm256_setzero_ps() })
        }

        #[inline(always)]
        fn splat(v: f32) -> Self {
            Self(unsafe { _mm256_set1_ps(v) })
        }

        #[inline(always)]
        fn load(src: &[f32]) -> Self {
            assert!(src.len() >= LANES, "a vector past the end");
            Self(unsafe { _mm256_loadu_ps(src.as_ptr()) })
        }

        #[inline(always)]
        fn store(self, dst: &mut [f32]) {
            assert!(dst.len() >= LANES, "a vector past the end");
            unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), self.0) }
        }

        /// A masked load: through a copy on the stack, the load waited for
        /// the copy's stores. Every row of tiles of a small network's input
        /// gradients (18 x 18, nine tiles wide) ends in a group of one:
        /// masked, train64-small took 0.132 -> 0.119 s.
        #[inline(always)]
        fn load_partial(src: &[f32], n: usize) -> Self {
            assert!(n <= LANES && src.len() >= n, "a vector past the end");
            // SAFETY: only the first `n` lanes, inside `src`, are read.
            Self(unsafe { _mm256_maskload_ps(src.as_ptr(), first(n)) })
        }

        /// A masked store, for the same reason as [`Self::load_partial`].
        #[inline(always)]
        fn store_partial(self, dst: &mut [f32], n: usize) {
            assert!(n <= LANES && dst.len() >= n, "a vector past the end");
            // SAFETY: only the first `n` lanes, inside `dst`, are written.
            unsafe { _mm256_maskstore_ps(dst.as_mut_ptr(), first(n), self.0) }
        }

        /// Whole-vector loads at multiples of eight values, taken apart by
        /// shuffles. The columns past `m` are the first two shifted by one
        /// lane, not loads at an offset: such a load straddles two of the
        /// stores that just filled `row` (at the plane's edges), and a load
        /// that two stores must forward waits for both to retire (two
        /// thirds of a small training step's input transform).
        #[inline(always)]
        fn split(m: usize, row: &[f32], cols: usize) -> [Self; MAX_A] {
            assert!((m == 2 || m == 4) && cols <= m + 2 && row.len() >= split_len(LANES, m, cols), "row too short to split");
            // SAFETY: the assert keeps every load inside `row`.
            let load = |at: usize| unsafe { _mm256_loadu_ps(row.as_ptr().add(at)) };
            let mut c = [Self::zero(); MAX_A];
            unsafe {
                if m == 2 {
                    // even and odd values of the first 16, each as eight lanes
                    let (a, b) = (load(0), load(8));
                    let even = _mm256_shuffle_ps::<0x88>(a, b); // a0 a2 b0 b2 | a4 a6 b4 b6
                    let odd = _mm256_shuffle_ps::<0xDD>(a, b);
                    let order = |v: __m256| _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(v)));
                    c[0] = Self(order(even));
                    c[1] = Self(order(odd));
                } else {
                    // values 4j + c of the first 32: a 4 x 4 transpose in each
                    // half leaves lanes in the order j = 0 2 4 6 | 1 3 5 7
                    let q: [__m256; 4] = std::array::from_fn(|k| load(8 * k));
                    let t0 = _mm256_unpacklo_ps(q[0], q[1]);
                    let t1 = _mm256_unpackhi_ps(q[0], q[1]);
                    let t2 = _mm256_unpacklo_ps(q[2], q[3]);
                    let t3 = _mm256_unpackhi_ps(q[2], q[3]);
                    let order = |v: __m256| _mm256_permutevar8x32_ps(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
                    c[0] = Self(order(_mm256_shuffle_ps::<0x44>(t0, t2)));
                    c[1] = Self(order(_mm256_shuffle_ps::<0xEE>(t0, t2)));
                    c[2] = Self(order(_mm256_shuffle_ps::<0x44>(t1, t3)));
                    c[3] = Self(order(_mm256_shuffle_ps::<0xEE>(t1, t3)));
                }
                // columns m and m + 1: the next tile's first two
                let shift_in = |v: __m256, last: f32| {
                    let rotated = _mm256_permutevar8x32_ps(v, _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 0));
                    Self(_mm256_blend_ps::<0x80>(rotated, _mm256_set1_ps(last)))
                };
                if cols > m {
                    c[m] = shift_in(c[0].0, row[8 * m]);
                }
                if cols > m + 1 {
                    c[m + 1] = shift_in(c[1].0, row[8 * m + 1]);
                }
            }
            c
        }

        /// Eight values at a time by masked loads, written by whole-vector
        /// stores that the loads of [`Vector::split`] then line up with
        /// (filled one value at a time, every load of `split` waited for
        /// eight stores to retire).
        #[inline(always)]
        fn padded_row(line: &[f32], x0: isize, row: &mut [f32]) {
            if line.len() > i32::MAX as usize / 2 || x0.unsigned_abs() + row.len() > i32::MAX as usize / 2 {
                return super::padded_row_scalar(line, x0, row); // (lane indices past i32)
            }
            unsafe {
                let w = _mm256_set1_epi32(line.len() as i32);
                let steps = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
                let mut k = 0;
                while k + 8 <= row.len() {
                    let at = x0 + k as isize;
                    let idx = _mm256_add_epi32(_mm256_set1_epi32(at as i32), steps);
                    // inside: 0 <= idx < w, as the sign bit of each lane
                    let inside = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), idx), _mm256_cmpgt_epi32(w, idx));
                    // SAFETY: only lanes inside `line` are read (a masked-off
                    // lane is never accessed); the address outside is only formed.
                    let v = _mm256_maskload_ps(line.as_ptr().wrapping_offset(at), inside);
                    _mm256_storeu_ps(row.as_mut_ptr().add(k), v);
                    k += 8;
                }
                for (j, v) in row.iter_mut().enumerate().skip(k) {
                    let xx = x0.wrapping_add(j as isize) as usize;
                    *v = if xx < line.len() { line[xx] } else { 0.0 };
                }
            }
        }

        /// Eight filters' taps read as rows and turned into lanes by an
        /// 8 x 8 transpose, the ninth tap by a gather (one element at a
        /// time, this was most of the filter transform's time).
        #[inline(always)]
        fn filter_taps(f: &Filters, o: usize, i0: usize) -> [Self; 9] {
            let (w, (start, stride), flipped) = (f.weights(), f.lane_start_and_stride(o, i0), f.is_flipped());
            assert!(start + (LANES - 1) * stride + 9 <= w.len(), "filters past the weights");
            assert!((LANES - 1) * stride <= i32::MAX as usize, "filter stride past i32");
            // Eight taps of each filter as one row (taps 0..8, or 1..9 when
            // flipped so that the one left over is tap 0 in both cases).
            let (rows_from, rest) = if flipped { (1, 0) } else { (0, 8) };
            let mut g = [Self::zero(); 9];
            // SAFETY: the asserts keep every read inside `w`.
            unsafe {
                let p = w.as_ptr().add(start);
                let r: [__m256; LANES] = std::array::from_fn(|j| _mm256_loadu_ps(p.add(j * stride + rows_from)));
                let t = transpose(r); // t[k][j]: element k of row j
                let s = stride as i32;
                let lane_offsets = _mm256_setr_epi32(0, s, 2 * s, 3 * s, 4 * s, 5 * s, 6 * s, 7 * s);
                g[8] = Self(_mm256_i32gather_ps::<4>(p.add(rest), lane_offsets));
                for (k, tk) in t.into_iter().enumerate() {
                    // A flipped filter's tap t is stored at 8 - t, here row element 7 - t.
                    g[if flipped { 7 - k } else { k }] = Self(tk);
                }
            }
            g
        }

        /// Eight filters' first eight taps by an 8 x 8 transpose, a row
        /// of eight per filter (the compiler's version of the scalar loop
        /// gathered each filter's taps: most of the weight gradient's
        /// `G^T M G`); the ninth tap one value at a time.
        #[inline(always)]
        fn unzip_filters(taps: &[Self; 9], out: &mut [f32]) {
            if out.len() != 9 * LANES {
                return super::unzip_filters_scalar(taps, out);
            }
            // SAFETY: `out` holds 9 * LANES values; row j's eight stores
            // end at 9 * j + 8 <= 9 * LANES - 1.
            unsafe {
                let rows = transpose(std::array::from_fn(|t| taps[t].0));
                for (j, r) in rows.into_iter().enumerate() {
                    _mm256_storeu_ps(out.as_mut_ptr().add(9 * j), r);
                }
                let mut last = [0f32; LANES];
                _mm256_storeu_ps(last.as_mut_ptr(), taps[8].0);
                for (j, v) in last.into_iter().enumerate() {
                    out[9 * j + 8] = v;
                }
            }
        }

        #[inline(always)]
        fn interleave(m: usize, v: &[Self; MAX_A], out: &mut [f32]) {
            assert!((m == 2 || m == 4) && out.len() >= m * LANES, "row too short to interleave");
            // SAFETY: the assert keeps every store inside `out`.
            unsafe {
                let at = out.as_mut_ptr();
                let put = |k: usize, x: __m256| _mm256_storeu_ps(at.add(8 * k), x);
                if m == 2 {
                    // a0 b0 a1 b1 | a4 b4 a5 b5 and a2 b2 a3 b3 | a6 b6 a7 b7
                    let lo = _mm256_unpacklo_ps(v[0].0, v[1].0);
                    let hi = _mm256_unpackhi_ps(v[0].0, v[1].0);
                    put(0, _mm256_permute2f128_ps::<0x20>(lo, hi));
                    put(1, _mm256_permute2f128_ps::<0x31>(lo, hi));
                } else {
                    let t0 = _mm256_unpacklo_ps(v[0].0, v[1].0);
                    let t1 = _mm256_unpackhi_ps(v[0].0, v[1].0);
                    let t2 = _mm256_unpacklo_ps(v[2].0, v[3].0);
                    let t3 = _mm256_unpackhi_ps(v[2].0, v[3].0);
                    // u[j % 4]: tiles j and j + 4, four values each
                    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
                    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
                    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
                    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
                    put(0, _mm256_permute2f128_ps::<0x20>(u0, u1));
                    put(1, _mm256_permute2f128_ps::<0x20>(u2, u3));
                    put(2, _mm256_permute2f128_ps::<0x31>(u0, u1));
                    put(3, _mm256_permute2f128_ps::<0x31>(u2, u3));
                }
            }
        }
    }

    /// A mask of the first `n` lanes (their sign bits set).
    #[inline(always)]
    fn first(n: usize) -> __m256i {
        unsafe { _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)) }
    }

    /// The transpose of an 8 x 8 matrix given by rows.
    #[inline(always)]
    fn transpose(r: [__m256; 8]) -> [__m256; 8] {
        unsafe {
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
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Filters, MAX_A, MAX_LANES, Vector, Ymm, split_len};
    use std::arch::x86_64::*;
    use std::ops::{Add, Mul, Neg, Sub};

    /// One AVX-512 register of sixteen f32. Made only by the transforms'
    /// AVX-512 entry points (`super::super::planes`) and by tests, all of
    /// which run once `simd::level()` has said the CPU has AVX-512F, and
    /// enable AVX2 and FMA beside it (every AVX-512 CPU has them): that is
    /// what makes the intrinsics below, and [`Ymm`]'s, sound.
    #[derive(Clone, Copy)]
    pub struct Zmm(__m512);

    const LANES: usize = MAX_LANES;

    impl Add for Zmm {
        type Output = Self;
        #[inline(always)]
        fn add(self, o: Self) -> Self {
            Self(unsafe { _mm512_add_ps(self.0, o.0) })
        }
    }

    impl Sub for Zmm {
        type Output = Self;
        #[inline(always)]
        fn sub(self, o: Self) -> Self {
            Self(unsafe { _mm512_sub_ps(self.0, o.0) })
        }
    }

    impl Mul<f32> for Zmm {
        type Output = Self;
        #[inline(always)]
        fn mul(self, k: f32) -> Self {
            Self(unsafe { _mm512_mul_ps(self.0, _mm512_set1_ps(k)) })
        }
    }

    impl Neg for Zmm {
        type Output = Self;
        #[inline(always)]
        fn neg(self) -> Self {
            // the sign bit flipped (as integers: AVX-512F has no float xor)
            Self(unsafe { _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(self.0), _mm512_set1_epi32(i32::MIN))) })
        }
    }

    /// A mask of the first `n` lanes.
    #[inline(always)]
    fn first(n: usize) -> __mmask16 {
        ((1u32 << n) - 1) as __mmask16
    }

    /// Sixteen lane indices.
    #[inline(always)]
    fn indices(i: [i32; 16]) -> __m512i {
        unsafe { _mm512_loadu_si512(i.as_ptr() as *const _) }
    }

    impl Vector for Zmm {
        const LANES: usize = LANES;

        #[inline(always)]
        fn zero() -> Self {
            Self(unsafe { _mm512_setzero_ps() })
        }

        #[inline(always)]
        fn splat(v: f32) -> Self {
            Self(unsafe { _mm512_set1_ps(v) })
        }

        #[inline(always)]
        fn load(src: &[f32]) -> Self {
            assert!(src.len() >= LANES, "a vector past the end");
            Self(unsafe { _mm512_loadu_ps(src.as_ptr()) })
        }

        #[inline(always)]
        fn store(self, dst: &mut [f32]) {
            assert!(dst.len() >= LANES, "a vector past the end");
            unsafe { _mm512_storeu_ps(dst.as_mut_ptr(), self.0) }
        }

        #[inline(always)]
        fn load_partial(src: &[f32], n: usize) -> Self {
            assert!(n <= LANES && src.len() >= n, "a vector past the end");
            // SAFETY: only the first `n` lanes, inside `src`, are read.
            Self(unsafe { _mm512_maskz_loadu_ps(first(n), src.as_ptr()) })
        }

        #[inline(always)]
        fn store_partial(self, dst: &mut [f32], n: usize) {
            assert!(n <= LANES && dst.len() >= n, "a vector past the end");
            // SAFETY: only the first `n` lanes, inside `dst`, are written.
            unsafe { _mm512_mask_storeu_ps(dst.as_mut_ptr(), first(n), self.0) }
        }

        /// Whole-vector loads taken apart by two-register permutes; the
        /// columns past `m` are the first two shifted by one lane (see
        /// [`Ymm`]'s `split` for why not loads at an offset).
        #[inline(always)]
        fn split(m: usize, row: &[f32], cols: usize) -> [Self; MAX_A] {
            assert!((m == 2 || m == 4) && cols <= m + 2 && row.len() >= split_len(LANES, m, cols), "row too short to split");
            // SAFETY: the assert keeps every load inside `row`.
            let load = |at: usize| unsafe { _mm512_loadu_ps(row.as_ptr().add(at)) };
            let mut c = [Self::zero(); MAX_A];
            unsafe {
                if m == 2 {
                    // values 2j + c of the first 32
                    let (a, b) = (load(0), load(16));
                    for (k, ck) in c.iter_mut().enumerate().take(2) {
                        let idx = indices(std::array::from_fn(|j| (2 * j + k) as i32));
                        *ck = Self(_mm512_permutex2var_ps(a, idx, b));
                    }
                } else {
                    // values 4j + c of the first 64: tiles 0-7 from the first
                    // 32, tiles 8-15 from the next 32 (the same indices)
                    let q: [__m512; 4] = std::array::from_fn(|k| load(16 * k));
                    for (k, ck) in c.iter_mut().enumerate().take(4) {
                        let idx = indices(std::array::from_fn(|j| ((4 * j + k) % 32) as i32));
                        let lo = _mm512_permutex2var_ps(q[0], idx, q[1]);
                        let hi = _mm512_permutex2var_ps(q[2], idx, q[3]);
                        *ck = Self(_mm512_mask_blend_ps(0xFF00, lo, hi));
                    }
                }
                // columns m and m + 1: the next tile's first two
                let shift_in = |v: __m512, last: f32| {
                    let (v, last) = (_mm512_castps_si512(v), _mm512_castps_si512(_mm512_set1_ps(last)));
                    Self(_mm512_castsi512_ps(_mm512_alignr_epi32::<1>(last, v)))
                };
                if cols > m {
                    c[m] = shift_in(c[0].0, row[LANES * m]);
                }
                if cols > m + 1 {
                    c[m + 1] = shift_in(c[1].0, row[LANES * m + 1]);
                }
            }
            c
        }

        /// Sixteen values at a time by masked loads (lanes outside `line`
        /// masked off), written by whole-vector stores that [`Vector::split`]'s
        /// loads line up with.
        #[inline(always)]
        fn padded_row(line: &[f32], x0: isize, row: &mut [f32]) {
            if line.len() > isize::MAX as usize / 2 || x0.unsigned_abs() + row.len() > isize::MAX as usize / 2 {
                return super::padded_row_scalar(line, x0, row); // (offsets past isize)
            }
            // row[k] reads line[x0 + k]: inside for k in lo..hi
            let lo = (-x0).clamp(0, row.len() as isize) as usize;
            let hi = (line.len() as isize - x0).clamp(lo as isize, row.len() as isize) as usize;
            let mut k = 0;
            while k < row.len() {
                let n = (row.len() - k).min(LANES);
                // lanes j with lo <= k + j < hi
                let (a, b) = (lo.saturating_sub(k).min(LANES), hi.saturating_sub(k).min(LANES));
                let inside = (first(b) & !first(a)) as __mmask16;
                // SAFETY: only lanes inside `line` are read (a masked-off lane
                // is never accessed; the address outside is only formed) and
                // only the first `n` lanes, inside `row`, written.
                unsafe {
                    let v = _mm512_maskz_loadu_ps(inside, line.as_ptr().wrapping_offset(x0 + k as isize));
                    _mm512_mask_storeu_ps(row.as_mut_ptr().add(k), first(n), v);
                }
                k += n;
            }
        }

        /// Two groups of eight filters by [`Ymm`]'s transpose.
        #[inline(always)]
        fn filter_taps(f: &Filters, o: usize, i0: usize) -> [Self; 9] {
            let (lo, hi) = (Ymm::filter_taps(f, o, i0), Ymm::filter_taps(f, o, i0 + LANES / 2));
            std::array::from_fn(|t| Self(join(lo[t].raw(), hi[t].raw())))
        }

        /// Each half of the lanes as [`Ymm`] does it.
        #[inline(always)]
        fn unzip_filters(taps: &[Self; 9], out: &mut [f32]) {
            if out.len() != 9 * LANES {
                return super::unzip_filters_scalar(taps, out);
            }
            let (lo, hi) = out.split_at_mut(9 * LANES / 2);
            // (plain loops: intrinsics in a closure passed to `map` were left
            // calls of their own, compiled without AVX-512)
            let (mut low, mut high) = ([Ymm::zero(); 9], [Ymm::zero(); 9]);
            for t in 0..9 {
                // SAFETY: AVX-512F (see `Zmm`).
                unsafe {
                    low[t] = Ymm::from_raw(_mm512_castps512_ps256(taps[t].0));
                    high[t] = Ymm::from_raw(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(taps[t].0))));
                }
            }
            Ymm::unzip_filters(&low, lo);
            Ymm::unzip_filters(&high, hi);
        }

        #[inline(always)]
        fn interleave(m: usize, v: &[Self; MAX_A], out: &mut [f32]) {
            assert!((m == 2 || m == 4) && out.len() >= m * LANES, "row too short to interleave");
            // SAFETY: the assert keeps every store inside `out`.
            unsafe {
                let at = out.as_mut_ptr();
                let put = |k: usize, x: __m512| _mm512_storeu_ps(at.add(LANES * k), x);
                // a0 b0 a1 b1 ... of tiles 0-7, then of tiles 8-15
                let pairs_lo = indices(std::array::from_fn(|l| (l / 2 + 16 * (l % 2)) as i32));
                let pairs_hi = indices(std::array::from_fn(|l| (8 + l / 2 + 16 * (l % 2)) as i32));
                let (p_lo, p_hi) = (_mm512_permutex2var_ps(v[0].0, pairs_lo, v[1].0), _mm512_permutex2var_ps(v[0].0, pairs_hi, v[1].0));
                if m == 2 {
                    put(0, p_lo);
                    put(1, p_hi);
                } else {
                    let (q_lo, q_hi) = (_mm512_permutex2var_ps(v[2].0, pairs_lo, v[3].0), _mm512_permutex2var_ps(v[2].0, pairs_hi, v[3].0));
                    // two values of a pair, then two of the other: tiles 0-3, then 4-7
                    let quads = |h: usize| indices(std::array::from_fn(|l| (8 * h + 2 * (l / 4) + l % 2 + 16 * ((l / 2) % 2)) as i32));
                    let (first_half, second_half) = (quads(0), quads(1));
                    put(0, _mm512_permutex2var_ps(p_lo, first_half, q_lo));
                    put(1, _mm512_permutex2var_ps(p_lo, second_half, q_lo));
                    put(2, _mm512_permutex2var_ps(p_hi, first_half, q_hi));
                    put(3, _mm512_permutex2var_ps(p_hi, second_half, q_hi));
                }
            }
        }
    }

    /// `lo` in lanes 0-7, `hi` in lanes 8-15.
    #[inline(always)]
    fn join(lo: __m256, hi: __m256) -> __m512 {
        unsafe { _mm512_castpd_ps(_mm512_insertf64x4::<1>(_mm512_castpd256_pd512(_mm256_castps_pd(lo)), _mm256_castps_pd(hi))) }
    }
}
