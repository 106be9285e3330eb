//! Direct stride-1 convolution for layers with few input or output channels
//! (the 7x7 stem 3 -> ngf and head ngf -> 3 of the ResNet generator). With
//! three channels on one side, im2col + GEMM spends its time building a
//! matrix with a tiny dimension; here each loaded input vector feeds several
//! output channels' accumulators, which stay in registers.

use multiversion::multiversion;
use rayon::prelude::*;

use super::scratch::Scratch;
use super::simd::Level;
use super::{Geometry, Nchw, min_len};

const LANES: usize = 8;
/// Output channels computed together (one input load feeds this many multiply-adds).
const BLOCK: usize = 4;
/// Outputs of a row computed together: two AVX-512 registers (two AVX
/// registers where the CPU has only AVX2, then `2 * LANES`).
const CHUNK: usize = 4 * LANES;

/// `y[b][o][oy][ox] = sum_i,ky,kx w[o][i][ky][kx] * x[b][i][oy + ky - p][ox + kx - p]` (0 outside).
pub fn conv(x: &[f32], xs: Nchw, w: &[f32], co: usize, g: Geometry) -> Vec<f32> {
    assert_eq!(g.stride, 1);
    let ys = g.out_shape(xs, co);
    let (ci, k) = (xs.c, g.k);
    // Weights regrouped as [o block][i][ky][kx][BLOCK], zero for missing channels.
    let blocks = co.div_ceil(BLOCK);
    let mut wb = vec![0f32; blocks * ci * k * k * BLOCK];
    for o in 0..co {
        for t in 0..ci * k * k {
            wb[((o / BLOCK) * ci * k * k + t) * BLOCK + o % BLOCK] = w[o * ci * k * k + t];
        }
    }
    let mut y = vec![0f32; ys.len()];
    if xs.len() == 0 {
        return y; // a sum over no inputs (and no zero-size chunks below)
    }
    // Every input plane's rows padded once, `pad` zeros on the left and
    // `pad` plus slack for a full last chunk on the right, so that every
    // chunk reads inside its row (not once per output row reading them:
    // an allocation and a copy per row, k times over).
    let slack = CHUNK;
    let padded_planes;
    let (planes, pw) = if g.pad == 0 && ys.w.is_multiple_of(CHUNK) {
        (x, xs.w)
    } else {
        let pw = xs.w + 2 * g.pad + slack;
        let mut padded = Scratch::take(xs.n * ci * xs.h * pw);
        padded
            .par_chunks_mut(xs.h * pw)
            .zip(x.par_chunks(xs.plane()))
            .with_min_len(min_len(xs.h * pw))
            .for_each(|(dst, src)| pad_rows(src, xs.w, g.pad, g.pad + slack, dst));
        padded_planes = padded;
        (&padded_planes[..], pw)
    };
    // One task per (image, output row): it writes that row of every output channel.
    let rows: Vec<(usize, usize)> = (0..xs.n).flat_map(|b| (0..ys.h).map(move |oy| (b, oy))).collect();
    let results: Vec<Vec<f32>> = rows
        .par_iter()
        .with_min_len(min_len(co * ys.w * ci * k * k))
        .map(|&(b, oy)| {
            let mut out = vec![0f32; co * ys.w];
            let image = &planes[b * ci * xs.h * pw..(b + 1) * ci * xs.h * pw];
            conv_row(image, xs.h, pw, ci, &wb, co, k, g.pad, oy, &mut out);
            out
        })
        .collect();
    for ((b, oy), out) in rows.into_iter().zip(results) {
        for o in 0..co {
            let dst = ((b * co + o) * ys.h + oy) * ys.w;
            y[dst..dst + ys.w].copy_from_slice(&out[o * ys.w..(o + 1) * ys.w]);
        }
    }
    y
}

/// One output row `oy` of every output channel, into `out[o * ow + ox]`,
/// from planes whose rows are `w` wide and padded (see [`conv`]): output
/// `ox` reads row values `ox + kx`.
#[allow(clippy::too_many_arguments)]
fn conv_row(image: &[f32], h: usize, w: usize, ci: usize, wb: &[f32], co: usize, k: usize, pad: usize, oy: usize, out: &mut [f32]) {
    let ow = out.len() / co;
    // The input rows this output row reads: (tap row i * k + ky, the row).
    let lines: Vec<(usize, &[f32])> = (0..ci)
        .flat_map(|i| (0..k).map(move |ky| (i, ky)))
        .filter_map(|(i, ky)| {
            let iy = (oy + ky) as isize - pad as isize;
            (iy >= 0 && iy < h as isize).then(|| (i * k + ky, &image[(i * h + iy as usize) * w..][..w]))
        })
        .collect();
    let level = super::simd::level();
    for blk in 0..co.div_ceil(BLOCK) {
        let wblk = &wb[blk * ci * k * k * BLOCK..(blk + 1) * ci * k * k * BLOCK];
        let mut ox = 0;
        while ox < ow {
            let mut acc = [[0f32; CHUNK]; BLOCK];
            // the widest chunk whose reads stay inside the row
            let n = if level >= Level::Avx512 && ox + CHUNK + k - 1 <= w {
                // SAFETY: the check above bounds every read; the CPU has AVX-512F.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    avx512::chunk32(&lines, wblk, k, ox, &mut acc)
                };
                CHUNK
            } else if level >= Level::Avx2 && ox + 2 * LANES + k - 1 <= w {
                // SAFETY: the check above bounds every read; the CPU has AVX2 and FMA.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    avx2::chunk16(&lines, wblk, k, ox, &mut acc)
                };
                2 * LANES
            } else {
                let n = (ow - ox).min(2 * LANES);
                chunk_scalar(&lines, wblk, k, w, ox, n, &mut acc);
                n
            }
            .min(ow - ox);
            for (j, a) in acc.iter().enumerate() {
                let o = blk * BLOCK + j;
                if o < co {
                    out[o * ow + ox..o * ow + ox + n].copy_from_slice(&a[..n]);
                }
            }
            ox += n;
        }
    }
}

/// The portable path: any chunk, reads checked against the row.
#[allow(clippy::too_many_arguments)]
fn chunk_scalar(lines: &[(usize, &[f32])], wblk: &[f32], k: usize, w: usize, ox: usize, n: usize, acc: &mut [[f32; CHUNK]; BLOCK]) {
    for &(row, line) in lines {
        let taps = &wblk[row * k * BLOCK..(row + 1) * k * BLOCK];
        for kx in 0..k {
            for l in 0..n {
                let s = ox + l + kx;
                if s < w {
                    let v = line[s];
                    for j in 0..BLOCK {
                        acc[j][l] += taps[kx * BLOCK + j] * v;
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{BLOCK, CHUNK};
    use std::arch::x86_64::*;

    /// [`super::avx2::chunk16`] sixteen lanes wide: 32 outputs of BLOCK
    /// channels, the same multiply-adds in the same order per output (the
    /// same bits). On CPUs with full-width AVX-512 this is twice the
    /// multiply-adds a cycle; the stem and head were 8 % of a forward pass.
    ///
    /// # Safety
    /// The CPU must have AVX-512F, and every row must hold `start + 32 + k - 1` values.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn chunk32(lines: &[(usize, &[f32])], wblk: &[f32], k: usize, start: usize, acc: &mut [[f32; CHUNK]; BLOCK]) {
        unsafe {
            let mut a = [[_mm512_setzero_ps(); 2]; BLOCK];
            for &(row, line) in lines {
                debug_assert!(start + CHUNK + k - 1 <= line.len());
                let taps = wblk.as_ptr().add(row * k * BLOCK);
                let src = line.as_ptr().add(start);
                for kx in 0..k {
                    let x0 = _mm512_loadu_ps(src.add(kx));
                    let x1 = _mm512_loadu_ps(src.add(kx + 16));
                    for (j, aj) in a.iter_mut().enumerate() {
                        let t = _mm512_set1_ps(*taps.add(kx * BLOCK + j));
                        aj[0] = _mm512_fmadd_ps(t, x0, aj[0]);
                        aj[1] = _mm512_fmadd_ps(t, x1, aj[1]);
                    }
                }
            }
            for (dst, aj) in acc.iter_mut().zip(a) {
                _mm512_storeu_ps(dst.as_mut_ptr(), aj[0]);
                _mm512_storeu_ps(dst.as_mut_ptr().add(16), aj[1]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{BLOCK, CHUNK, LANES};
    use std::arch::x86_64::*;

    /// Sixteen outputs of BLOCK channels (into the first sixteen of each
    /// `acc` row): each row load feeds BLOCK fused multiply-adds.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA, and every row must hold `start + 16 + k - 1` values.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn chunk16(lines: &[(usize, &[f32])], wblk: &[f32], k: usize, start: usize, acc: &mut [[f32; CHUNK]; BLOCK]) {
        unsafe {
            let mut a = [[_mm256_setzero_ps(); 2]; BLOCK];
            for &(row, line) in lines {
                debug_assert!(start + 2 * LANES + k - 1 <= line.len());
                let taps = wblk.as_ptr().add(row * k * BLOCK);
                let src = line.as_ptr().add(start);
                for kx in 0..k {
                    let x0 = _mm256_loadu_ps(src.add(kx));
                    let x1 = _mm256_loadu_ps(src.add(kx + LANES));
                    for (j, aj) in a.iter_mut().enumerate() {
                        let t = _mm256_broadcast_ss(&*taps.add(kx * BLOCK + j));
                        aj[0] = _mm256_fmadd_ps(t, x0, aj[0]);
                        aj[1] = _mm256_fmadd_ps(t, x1, aj[1]);
                    }
                }
            }
            for (dst, aj) in acc.iter_mut().zip(a) {
                _mm256_storeu_ps(dst.as_mut_ptr(), aj[0]);
                _mm256_storeu_ps(dst.as_mut_ptr().add(LANES), aj[1]);
            }
        }
    }

    /// [`super::correlate_rows`] with one load of the output gradient
    /// feeding `K` fused multiply-adds (the compiler's version of the
    /// portable loop ran at a quarter of this speed).
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA; for every `oy` in `rows`, `grad`
    /// holds row `oy` (`ow` wide, `full <= ow`) and `image` row
    /// `oy + ky - pad` (`pw >= full + K - 1` wide).
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn correlate_rows<const K: usize>(grad: &[f32], ow: usize, image: &[f32], pw: usize, rows: std::ops::Range<usize>, ky: usize, pad: usize, full: usize) -> [[f32; LANES]; K] {
        unsafe {
            let mut a = [_mm256_setzero_ps(); K];
            for oy in rows {
                let g = grad.as_ptr().add(oy * ow);
                let line = image.as_ptr().add((oy + ky - pad) * pw);
                let mut ox = 0;
                while ox < full {
                    let d = _mm256_loadu_ps(g.add(ox));
                    for (kx, ak) in a.iter_mut().enumerate() {
                        *ak = _mm256_fmadd_ps(d, _mm256_loadu_ps(line.add(ox + kx)), *ak);
                    }
                    ox += LANES;
                }
            }
            let mut out = [[0f32; LANES]; K];
            for (o, ak) in out.iter_mut().zip(a) {
                _mm256_storeu_ps(o.as_mut_ptr(), ak);
            }
            out
        }
    }
}

/// `dw[o][i][ky][kx] = sum_b,oy,ox dy[b][o][oy][ox] * x[b][i][oy + ky - p][ox + kx - p]`.
pub fn weight_grad(x: &[f32], xs: Nchw, dy: &[f32], ys: Nchw, g: Geometry) -> Vec<f32> {
    assert_eq!(g.stride, 1);
    let (ci, co, k) = (xs.c, ys.c, g.k);
    if xs.len() == 0 || ys.len() == 0 {
        return vec![0f32; co * ci * k * k]; // a sum over no positions (and no zero-size chunks below)
    }
    // every input plane padded once, not once per output channel that reads it
    let pw = xs.w + 2 * g.pad;
    let padded_plane = xs.h * pw;
    let mut padded = Scratch::take(xs.n * ci * padded_plane);
    padded.par_chunks_mut(padded_plane).zip(x.par_chunks(xs.plane())).with_min_len(min_len(padded_plane)).for_each(|(dst, src)| pad_rows(src, xs.w, g.pad, g.pad, dst));
    let mut dw = vec![0f32; co * ci * k * k];
    dw.par_chunks_mut(k * k).with_min_len(min_len(xs.n * ys.plane() * k * k)).enumerate().for_each(|(pair, taps)| {
        let (o, i) = (pair / ci, pair % ci);
        let mut acc = vec![0f64; k * k];
        for b in 0..xs.n {
            let image = &padded[(b * ci + i) * padded_plane..(b * ci + i + 1) * padded_plane];
            let grad = &dy[(b * co + o) * ys.plane()..(b * co + o + 1) * ys.plane()];
            correlate(grad, ys.h, ys.w, image, xs.h, pw, k, g.pad, &mut acc);
        }
        for (t, a) in taps.iter_mut().zip(acc) {
            *t = a as f32;
        }
    });
    dw
}

/// The rows of `image` (`w` wide) with `left` zeros before and `right`
/// after each into `padded` (`left + w + right` wide). With the columns
/// padded, [`conv_row`] and [`correlate`] read every group of outputs with
/// plain vector loads: on a 64-pixel plane, handling the 2 x pad edge
/// columns one at a time had cost as much as the rest of the row.
fn pad_rows(image: &[f32], w: usize, left: usize, right: usize, padded: &mut [f32]) {
    let pw = left + w + right;
    for (y, dst) in padded.chunks_exact_mut(pw).enumerate() {
        dst[..left].fill(0.0);
        dst[left..left + w].copy_from_slice(&image[y * w..(y + 1) * w]);
        dst[left + w..].fill(0.0);
    }
}

/// `acc[ky * k + kx] += sum_oy,ox grad[oy][ox] * image[oy + ky - p][ox + kx]`
/// with `image` already padded by `p` columns on each side (`pw` wide, see
/// [`pad_rows`]; rows above and below it are zero).
#[allow(clippy::too_many_arguments)]
fn correlate(grad: &[f32], oh: usize, ow: usize, image: &[f32], h: usize, pw: usize, k: usize, pad: usize, acc: &mut [f64]) {
    // The kernel size as a constant: with `k` read at run time the inner
    // loop tested it before every multiply-add.
    match k {
        1 => correlate_k::<1>(grad, oh, ow, image, h, pw, pad, acc),
        2 => correlate_k::<2>(grad, oh, ow, image, h, pw, pad, acc),
        3 => correlate_k::<3>(grad, oh, ow, image, h, pw, pad, acc),
        4 => correlate_k::<4>(grad, oh, ow, image, h, pw, pad, acc),
        5 => correlate_k::<5>(grad, oh, ow, image, h, pw, pad, acc),
        6 => correlate_k::<6>(grad, oh, ow, image, h, pw, pad, acc),
        7 => correlate_k::<7>(grad, oh, ow, image, h, pw, pad, acc),
        8 => correlate_k::<8>(grad, oh, ow, image, h, pw, pad, acc),
        _ => panic!("direct weight gradient handles kernels up to 8, not {k}"),
    }
}

/// [`correlate`] for a `K x K` kernel.
#[allow(clippy::too_many_arguments)]
fn correlate_k<const K: usize>(grad: &[f32], oh: usize, ow: usize, image: &[f32], h: usize, pw: usize, pad: usize, acc: &mut [f64]) {
    // outputs ox..ox + LANES read columns up to ox + LANES + K - 2 <= ow + K - 2 < pw
    assert!(ow + K - 1 <= pw && grad.len() >= oh * ow && image.len() >= h * pw);
    let full = ow - ow % LANES;
    let simd = super::simd::avx2();
    for ky in 0..K {
        // the output rows whose input row oy + ky - pad is inside the image
        let rows = pad.saturating_sub(ky)..oh.min((h + pad).saturating_sub(ky));
        let lanes = if simd {
            // SAFETY: the CPU has AVX2 and FMA; `rows` and the assert above
            // keep every read inside `grad` and `image`.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                avx2::correlate_rows::<K>(grad, ow, image, pw, rows.clone(), ky, pad, full)
            }
            #[cfg(not(target_arch = "x86_64"))]
            unreachable!()
        } else {
            correlate_rows::<K>(grad, ow, image, pw, rows.clone(), ky, pad, full)
        };
        let mut tail = [0f64; K];
        for oy in rows {
            let line = &image[(oy + ky - pad) * pw..][..pw];
            for ox in full..ow {
                for (kx, t) in tail.iter_mut().enumerate() {
                    *t += grad[oy * ow + ox] as f64 * line[ox + kx] as f64;
                }
            }
        }
        for kx in 0..K {
            acc[ky * K + kx] += lanes[kx].iter().map(|v| *v as f64).sum::<f64>() + tail[kx];
        }
    }
}

/// The portable path of [`correlate_k`]: for each `kx`, the sums over
/// `rows` and the first `full` outputs of each, kept in `LANES` partial sums.
#[allow(clippy::too_many_arguments)]
#[multiversion(targets("x86_64+avx", "aarch64+neon"))]
fn correlate_rows<const K: usize>(grad: &[f32], ow: usize, image: &[f32], pw: usize, rows: std::ops::Range<usize>, ky: usize, pad: usize, full: usize) -> [[f32; LANES]; K] {
    let mut lanes = [[0f32; LANES]; K];
    for oy in rows {
        let line = &image[(oy + ky - pad) * pw..][..pw];
        for ox in (0..full).step_by(LANES) {
            for (kx, lane) in lanes.iter_mut().enumerate() {
                for (l, v) in lane.iter_mut().enumerate() {
                    *v += grad[oy * ow + ox + l] * line[ox + kx + l];
                }
            }
        }
    }
    lanes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::cpu::conv::tests::values;

    /// The AVX-512 chunk gives the AVX2 chunks' bits (where the CPU has
    /// both; the convolution tests compare either with a naive loop).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_chunk_matches_two_avx2_chunks() {
        if crate::ops::cpu::simd::detected() < Level::Avx512 {
            return;
        }
        let (ci, k, start) = (3, 7, 5);
        let w = start + CHUNK + k - 1;
        let rows: Vec<Vec<f32>> = (0..ci * k).map(|r| values(w, 10 + r as u32)).collect();
        let lines: Vec<(usize, &[f32])> = rows.iter().enumerate().map(|(r, v)| (r, &v[..])).collect();
        let wblk = values(ci * k * k * BLOCK, 3);
        let (mut wide, mut lo, mut hi) = ([[0f32; CHUNK]; BLOCK], [[0f32; CHUNK]; BLOCK], [[0f32; CHUNK]; BLOCK]);
        // SAFETY: the CPU has AVX-512F, and with it AVX2 and FMA (checked
        // above); every row holds start + 32 + k - 1 values.
        unsafe {
            avx512::chunk32(&lines, &wblk, k, start, &mut wide);
            avx2::chunk16(&lines, &wblk, k, start, &mut lo);
            avx2::chunk16(&lines, &wblk, k, start + 16, &mut hi);
        }
        for j in 0..BLOCK {
            let two: Vec<u32> = lo[j][..16].iter().chain(&hi[j][..16]).map(|v| v.to_bits()).collect();
            let one: Vec<u32> = wide[j].iter().map(|v| v.to_bits()).collect();
            assert_eq!(one, two, "channel {j}");
        }
    }

    /// The AVX2 rows (where the CPU has them) against the portable loop,
    /// which the convolution tests reach only on other CPUs.
    #[test]
    fn both_correlation_paths_agree() {
        let (oh, ow, h, pad): (usize, usize, usize, usize) = (9, 21, 9, 3);
        let pw = ow + 6;
        let (grad, image) = (values(oh * ow, 1), values(h * pw, 2));
        let full = ow - ow % LANES;
        for ky in 0..7 {
            let rows = pad.saturating_sub(ky)..oh.min((h + pad).saturating_sub(ky));
            let portable = correlate_rows::<7>(&grad, ow, &image, pw, rows.clone(), ky, pad, full);
            // the same sums in f64, one output at a time
            for (kx, lane) in portable.iter().enumerate() {
                let want: f64 = rows.clone().flat_map(|oy| (0..full).map(move |ox| (oy, ox))).map(|(oy, ox)| grad[oy * ow + ox] as f64 * image[(oy + ky - pad) * pw + ox + kx] as f64).sum();
                let got: f64 = lane.iter().map(|v| *v as f64).sum();
                assert!((got - want).abs() < 1e-4, "portable ky {ky} kx {kx}: {got} vs {want}");
            }
            #[cfg(target_arch = "x86_64")]
            if crate::ops::cpu::simd::avx2() {
                // SAFETY: checked above; the rows are the image's.
                let fast = unsafe { avx2::correlate_rows::<7>(&grad, ow, &image, pw, rows.clone(), ky, pad, full) };
                for (a, b) in fast.iter().flatten().zip(portable.iter().flatten()) {
                    assert!((a - b).abs() < 1e-4, "ky {ky}: AVX2 {a} vs portable {b}");
                }
            }
        }
    }
}
