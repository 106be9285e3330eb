//! Matrix products with both sides rounded to bf16 and the products summed
//! in f32, by AVX512_BF16's `vdpbf16ps` (`--precision bf16` on a CPU that
//! has it): each instruction multiplies 32 pairs of bf16 values and adds them
//! pairwise into 16 f32 sums, twice the multiply-adds of an f32 `vfmadd` of the same
//! width (BENCHMARKS.md, "The machine's arithmetic peak").
//!
//! Layout: `vdpbf16ps` sums `a[i][2p] b[2p][j] + a[i][2p+1] b[2p+1][j]` into
//! lane `j`, so the left side is stored as rows of bf16 pairs along `k` (one
//! 32-bit broadcast per row and pair), the right side as panels of [`NR`]
//! columns whose rows `2p` and `2p + 1` are interleaved. A micro-tile of
//! [`MR`] rows by [`NR`] columns keeps its 24 sums in registers over a block
//! of [`KC`] pairs, whose panel (16 KiB) stays in the L1 cache.

use rayon::prelude::*;

use super::gemm::{Mat, Threads};

/// Columns of a panel: two registers of 16 f32 sums.
pub const NR: usize = 32;
/// Rows of a micro-tile: 12 x 2 sums in registers, of 32.
const MR: usize = 12;
/// Pairs along `k` per block: `KC * NR` pairs of bf16 is 16 KiB.
const KC: usize = 128;

/// `x` rounded to the nearest bf16 (ties to even), as the low 16 bits.
#[inline(always)]
pub fn round(x: f32) -> u32 {
    let b = x.to_bits();
    if x.is_nan() {
        return (b >> 16) | 0x40; // stays a NaN
    }
    b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16
}

#[cfg(test)]
/// The bf16 value of [`round`]'s bits, as f32.
#[cfg(test)]
pub fn value(bits: u32) -> f32 {
    f32::from_bits(bits << 16)
}

/// Two values as one 32-bit lane of bf16 pairs: `lo` first along `k`.
#[inline(always)]
pub fn pair(lo: f32, hi: f32) -> u32 {
    round(lo) | (round(hi) << 16)
}

/// A left-hand side `m x k` as rows of `k.div_ceil(2)` pairs, row `i`
/// starting at `data[i * rs]`.
#[derive(Clone, Copy)]
pub struct Lhs<'a> {
    pub data: &'a [u32],
    pub rs: usize,
}

/// `a` (m x k) packed as [`Lhs`] rows, `k.div_ceil(2)` apart.
pub fn pack_lhs(m: usize, k: usize, a: Mat) -> Vec<u32> {
    let kp = k.div_ceil(2);
    let at = |i: usize, p: usize| if p < k { a.data[i * a.rs + p * a.cs] } else { 0.0 };
    let mut out = vec![0u32; m * kp];
    out.par_chunks_mut(kp.max(1)).enumerate().for_each(|(i, row)| {
        for (p, v) in row.iter_mut().enumerate() {
            *v = pair(at(i, 2 * p), at(i, 2 * p + 1));
        }
    });
    out
}

/// Whether this CPU runs [`matmul`] (AVX512_BF16, not capped by `CYCLEGAN_SIMD`).
pub fn available() -> bool {
    super::simd::bf16_dot()
}

thread_local! {
    /// The right side's panels, kept between calls.
    static PANELS: std::cell::Cell<Vec<u32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// `c = a * b` (or `c += a * b`), `a` m x k and `b` k x n rounded to bf16,
/// `c` contiguous row-major m x n in f32. Needs [`available`].
#[allow(clippy::too_many_arguments)]
pub fn matmul(m: usize, n: usize, k: usize, a: Mat, b: Mat, c: &mut [f32], accumulate: bool, threads: Threads) {
    assert!(available(), "bf16 products need AVX512_BF16");
    assert!(k == 0 || n == 0 || b.data.len() > (k - 1) * b.rs + (n - 1) * b.cs, "rhs too short");
    let lhs = pack_lhs(m, k, a);
    let kp = k.div_ceil(2);
    let panel_len = kp * NR;
    // Taken out of the cell, not borrowed: a thread waiting in the parallel
    // loops below may run another product meanwhile (then it packs into a
    // fresh buffer).
    let mut buf = PANELS.with(|cell| cell.take());
    buf.resize(n.div_ceil(NR) * panel_len, 0);
    let pack = |(q, panel): (usize, &mut [u32])| pack_panel(b, k, n, q * NR, panel);
    match threads {
        Threads::All => buf.par_chunks_mut(panel_len.max(1)).enumerate().for_each(pack),
        Threads::One => buf.chunks_mut(panel_len.max(1)).enumerate().for_each(pack),
    }
    matmul_panels(m, n, kp, Lhs { data: &lhs, rs: kp }, &buf, c, accumulate, threads);
    PANELS.with(|cell| cell.replace(buf));
}

/// Where column `j` of pair row `p` sits in a right side of `kp` pair rows
/// packed as panels ([`matmul_panels`]).
#[inline(always)]
pub fn panel_index(kp: usize, p: usize, j: usize) -> usize {
    (j / NR) * kp * NR + p * NR + j % NR
}

/// [`matmul`] with both sides packed: the right side as `n.div_ceil(NR)`
/// panels of `kp` rows of `NR` interleaved pairs ([`panel_index`]; zero
/// past `n` and `k`).
#[allow(clippy::too_many_arguments)]
pub fn matmul_panels(m: usize, n: usize, kp: usize, a: Lhs, panels: &[u32], c: &mut [f32], accumulate: bool, threads: Threads) {
    assert!(available(), "bf16 products need AVX512_BF16");
    let panel_len = kp * NR;
    assert!(c.len() >= m * n, "output too short");
    assert!(m == 0 || a.data.len() >= (m - 1) * a.rs + kp, "lhs too short");
    assert!(panels.len() >= n.div_ceil(NR) * panel_len, "rhs too short");
    if m == 0 || n == 0 {
        return;
    }
    if kp == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    let panels = &panels[..n.div_ceil(NR) * panel_len];
    let c_at = c.as_mut_ptr() as usize;
    let run = |(q, panel): (usize, &[u32])| {
        // SAFETY: each panel writes columns q*NR.. of `c` only, inside m x n.
        unsafe { panel_product(m, n, kp, a, panel, c_at as *mut f32, q * NR, accumulate) }
    };
    match threads {
        Threads::All => panels.par_chunks(panel_len).enumerate().for_each(run),
        Threads::One => panels.chunks(panel_len).enumerate().for_each(run),
    }
}

/// `out[j] = pair(x0[j], x1[j])` for 32 values, vectorised. Needs [`available`].
pub fn interleave(x0: &[f32; 32], x1: &[f32; 32], out: &mut [u32; 32]) {
    assert!(available(), "bf16 products need AVX512_BF16");
    // SAFETY: checked just above.
    unsafe { x86::interleave(x0, x1, out) }
}

/// Columns `j0..j0 + NR` of `b` (zero past `n` and `k`) as `kp` rows of
/// `NR` interleaved pairs.
fn pack_panel(b: Mat, k: usize, n: usize, j0: usize, out: &mut [u32]) {
    let cols = NR.min(n - j0);
    for (p, row) in out.chunks_exact_mut(NR).enumerate() {
        let (r0, r1) = (2 * p, 2 * p + 1);
        let line = |r: usize, j: usize| b.data[r * b.rs + (j0 + j) * b.cs];
        if b.cs == 1 && cols == NR && r1 < k {
            let (x0, x1) = (&b.data[r0 * b.rs + j0..][..NR], &b.data[r1 * b.rs + j0..][..NR]);
            // SAFETY: `available` was checked by `matmul`; 32 values each.
            unsafe { x86::interleave(x0.try_into().unwrap(), x1.try_into().unwrap(), row.try_into().unwrap()) };
        } else {
            for (j, v) in row.iter_mut().enumerate() {
                *v = if j < cols { pair(line(r0, j), if r1 < k { line(r1, j) } else { 0.0 }) } else { 0 };
            }
        }
    }
}

/// One panel's columns of `c` for all `m` rows, block by block along `k`.
///
/// # Safety
/// `c` points at an `m x n` row-major matrix; columns `j0..j0 + NR` (those
/// below `n`) are written by this call alone.
#[allow(clippy::too_many_arguments)]
unsafe fn panel_product(m: usize, n: usize, kp: usize, a: Lhs, panel: &[u32], c: *mut f32, j0: usize, accumulate: bool) {
    let cols = NR.min(n - j0);
    let mut p0 = 0;
    while p0 < kp {
        let kc = KC.min(kp - p0);
        let load = accumulate || p0 > 0;
        let mut i = 0;
        while i < m {
            let rows = MR.min(m - i);
            let at = Tile {
                a: a.data[i * a.rs + p0..].as_ptr(),
                a_rs: a.rs,
                b: panel[p0 * NR..].as_ptr(),
                kc,
                // SAFETY: row i, column j0 of the m x n matrix.
                c: unsafe { c.add(i * n + j0) },
                c_rs: n,
                cols,
                load,
            };
            // SAFETY: `available` was checked by the caller; the tile stays in bounds.
            unsafe { x86::tile(rows, at) };
            i += rows;
        }
        p0 += kc;
    }
}

/// One micro-tile's operands: `rows x cols` of `c` from `kc` pairs.
struct Tile {
    a: *const u32,
    a_rs: usize,
    b: *const u32,
    kc: usize,
    c: *mut f32,
    c_rs: usize,
    cols: usize,
    /// Start from what `c` holds (else from zero).
    load: bool,
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{MR, NR, Tile};

    /// Dispatch on the row count (the sums are a fixed array per count).
    ///
    /// # Safety
    /// AVX512_BF16 present; `t` in bounds for `rows x t.cols`.
    pub unsafe fn tile(rows: usize, t: Tile) {
        // SAFETY: passed on from the caller.
        unsafe {
            match rows {
                12 => tile_r::<12>(t),
                11 => tile_r::<11>(t),
                10 => tile_r::<10>(t),
                9 => tile_r::<9>(t),
                8 => tile_r::<8>(t),
                7 => tile_r::<7>(t),
                6 => tile_r::<6>(t),
                5 => tile_r::<5>(t),
                4 => tile_r::<4>(t),
                3 => tile_r::<3>(t),
                2 => tile_r::<2>(t),
                1 => tile_r::<1>(t),
                _ => unreachable!("at most {MR} rows"),
            }
        }
    }

    /// `out[j] = pair(x0[j], x1[j])`: both rows rounded at once, then their
    /// halves interleaved.
    ///
    /// # Safety
    /// AVX512_BF16 and AVX512BW present.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub unsafe fn interleave(x0: &[f32; 32], x1: &[f32; 32], out: &mut [u32; 32]) {
        // lane 2j takes x0's value j (low half of the conversion), 2j + 1 x1's (high half)
        const IDX: [i16; 32] = {
            let mut idx = [0i16; 32];
            let mut j = 0;
            while j < 16 {
                idx[2 * j] = j as i16;
                idx[2 * j + 1] = 16 + j as i16;
                j += 1;
            }
            idx
        };
        // SAFETY: the arrays are 32 values long; the features are the caller's promise.
        unsafe {
            let idx = _mm512_loadu_si512(IDX.as_ptr() as *const _);
            for h in 0..2 {
                let lo = _mm512_loadu_ps(x0.as_ptr().add(16 * h));
                let hi = _mm512_loadu_ps(x1.as_ptr().add(16 * h));
                let both: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
                _mm512_storeu_si512(out.as_mut_ptr().add(16 * h) as *mut _, _mm512_permutexvar_epi16(idx, both));
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn tile_r<const R: usize>(t: Tile) {
        const { assert!(NR == 32) };
        let m0: __mmask16 = if t.cols >= 16 { 0xffff } else { (1u32 << t.cols) as u16 - 1 };
        let m1: __mmask16 = if t.cols >= 32 { 0xffff } else if t.cols > 16 { (1u32 << (t.cols - 16)) as u16 - 1 } else { 0 };
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        // SAFETY (all blocks below): the caller keeps rows < R of `c` and
        // `a`, the masked columns, and `kc` pairs of the panel in bounds.
        unsafe {
            if t.load {
                for (r, s) in acc.iter_mut().enumerate() {
                    let row = t.c.add(r * t.c_rs);
                    s[0] = _mm512_maskz_loadu_ps(m0, row);
                    s[1] = _mm512_maskz_loadu_ps(m1, row.add(16));
                }
            }
            for p in 0..t.kc {
                let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(t.b.add(p * NR) as *const _));
                let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(t.b.add(p * NR + 16) as *const _));
                for (r, s) in acc.iter_mut().enumerate() {
                    let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(*t.a.add(r * t.a_rs + p) as i32));
                    s[0] = _mm512_dpbf16_ps(s[0], av, b0);
                    s[1] = _mm512_dpbf16_ps(s[1], av, b1);
                }
            }
            for (r, s) in acc.iter().enumerate() {
                let row = t.c.add(r * t.c_rs);
                _mm512_mask_storeu_ps(row, m0, s[0]);
                _mm512_mask_storeu_ps(row.add(16), m1, s[1]);
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod x86 {
    pub unsafe fn interleave(_x0: &[f32; 32], _x1: &[f32; 32], _out: &mut [u32; 32]) {
        unreachable!("bf16 products are x86-64 only")
    }
    pub unsafe fn tile(_rows: usize, _t: super::Tile) {
        unreachable!("bf16 products are x86-64 only ([`super::available`] is false)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(value(round(1.0)), 1.0);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even 1.0
        assert_eq!(value(round(1.0 + 1.0 / 256.0)), 1.0);
        assert_eq!(value(round(1.0 + 3.0 / 256.0)), 1.0 + 4.0 / 256.0);
        for i in 0..1000 {
            let x = (i as f32 * 0.731).sin() * 10f32.powi(i % 7 - 3);
            assert!((value(round(x)) - x).abs() <= x.abs() / 256.0, "{x}");
        }
        assert!(value(round(f32::NAN)).is_nan());
        assert_eq!(value(round(f32::INFINITY)), f32::INFINITY);
    }

    /// Against an f64 product of the same rounded values: every shape's
    /// edges (rows past a micro-tile, columns past a panel, odd k, several
    /// k blocks), both layouts of `b`, accumulation, one and all threads.
    #[test]
    fn matches_a_product_of_the_rounded_values() {
        if !available() {
            return;
        }
        for (m, n, k) in [(1, 1, 1), (13, 33, 7), (25, 70, 301), (12, 32, 256)] {
            let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
            let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
            let r = |x: f32| value(round(x)) as f64;
            for (accumulate, transposed, threads) in [(false, false, Threads::One), (true, true, Threads::All)] {
                let bv = if transposed { Mat::transposed(&bt, k) } else { Mat::rows(&b, n) };
                let mut c = vec![0.5f32; m * n];
                matmul(m, n, k, Mat::rows(&a, k), bv, &mut c, accumulate, threads);
                for i in 0..m {
                    for j in 0..n {
                        let dot: f64 = (0..k).map(|p| r(a[i * k + p]) * r(b[p * n + j])).sum();
                        let want = dot + if accumulate { 0.5 } else { 0.0 };
                        let got = c[i * n + j] as f64;
                        assert!((got - want).abs() < 1e-4 * (1.0 + want.abs()), "{m}x{n}x{k} ({i},{j}): {got} vs {want}");
                    }
                }
            }
        }
    }
}
