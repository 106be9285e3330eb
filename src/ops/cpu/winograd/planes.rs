//! The transforms a whole plane (or a whole filter row) at a time, a
//! vector's lanes of tiles side by side: input tiles into `V = B^T d B`,
//! filters into `U = G g G^T`, products back into output tiles `A^T m A`,
//! and the weight gradient's `A dy A^T` and `G^T m G`. Each is written once
//! over [`Vector`] and run as [`Zmm`] where the CPU has AVX-512 (and, for
//! planes, rows of at least sixteen tiles to fill it), else as [`Ymm`] where
//! it has AVX2 and FMA, else as [`Portable`]. A tile's values stay in
//! registers from the row they are read from to the element they are
//! written as. Each 2-D transform runs down the tile's columns first, then
//! along its rows, in the order the parity tests were fixed with: the other
//! way round rounds differently, and a CycleGAN's first steps (vanilla GAN)
//! amplified that to 3e-4 of a loss.

use multiversion::multiversion;

use crate::ops::cpu::simd::{self, Level};

use super::tile::Tile;
#[cfg(target_arch = "x86_64")]
use super::vector::{Ymm, Zmm};
use super::vector::{LANES, MAX_LANES, Portable, Vector, split_len};
use super::{Filters, MAX_A};

/// Whether the transforms may run as [`Zmm`]: the CPU has AVX-512 (not
/// capped by `CYCLEGAN_SIMD`).
fn wide() -> bool {
    simd::level() >= Level::Avx512
}

/// Filters [`filters_from_products`] takes at a time: a whole vector.
pub fn filter_group() -> usize {
    if wide() { MAX_LANES } else { LANES }
}

/// `pub fn $name::<T>(args)`: `$body::<T, Zmm>(args)` where the CPU has
/// AVX-512 and `$fill` (sixteen lanes' worth of work) holds, else
/// `$body::<T, Ymm>(args)` where it has AVX2 and FMA, else
/// `$body::<T, Portable>(args)`. A plane narrower than sixteen tiles stays
/// `Ymm`: half-empty AVX-512 registers cost more than they gain
/// (train64-small's 16 x 16 planes are eight tiles wide).
macro_rules! dispatch {
    ($(#[$attr:meta])* $name:ident => $body:ident($($arg:ident: $ty:ty),* $(,)?) wide if $fill:expr) => {
        $(#[$attr])*
        #[allow(clippy::too_many_arguments)]
        pub fn $name<T: Tile>($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if wide() && $fill {
                #[allow(clippy::too_many_arguments)]
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn with_avx512<T: Tile>($($arg: $ty),*) {
                    $body::<T, Zmm>($($arg),*)
                }
                // SAFETY: the CPU has AVX-512F, and with it AVX2 and FMA: all
                // that `Zmm` (and the `Ymm` it uses) needs.
                return unsafe { with_avx512::<T>($($arg),*) };
            }
            #[cfg(target_arch = "x86_64")]
            if simd::avx2() {
                #[allow(clippy::too_many_arguments)]
                #[target_feature(enable = "avx2,fma")]
                unsafe fn with_avx2<T: Tile>($($arg: $ty),*) {
                    $body::<T, Ymm>($($arg),*)
                }
                // SAFETY: the CPU has AVX2 and FMA, all that `Ymm` needs.
                return unsafe { with_avx2::<T>($($arg),*) };
            }
            #[allow(clippy::too_many_arguments)]
            #[multiversion(targets("x86_64+avx", "aarch64+neon"))]
            fn portable<T: Tile>($($arg: $ty),*) {
                $body::<T, Portable>($($arg),*)
            }
            portable::<T>($($arg),*)
        }
    };
}

dispatch! {
    /// Transform every input tile of one channel plane (`h x w`, zero
    /// padding `pad`; `th x tw` tiles) into `vi[xi * t_all + t0 + t]`.
    input_transform_plane => input(plane: &[f32], h: usize, w: usize, pad: usize, th: usize, tw: usize, vi: &mut [f32], t_all: usize, t0: usize)
        wide if tw >= MAX_LANES
}

dispatch! {
    /// `A^T m A + add` for every tile of one output plane (`oh x ow`), tile
    /// `t`'s element `xi` read from `m[xi * xi_stride + base + t]`.
    output_transform_plane => output(m: &[f32], xi_stride: usize, base: usize, th: usize, tw: usize, oh: usize, ow: usize, add: f32, out: &mut [f32])
        wide if tw >= MAX_LANES
}

dispatch! {
    /// `A dy A^T` for every `M x M` tile of one output-gradient plane (zero
    /// beyond its edges) into `yo[xi * t_all + t0 + t]`.
    grad_transform_plane => grad(plane: &[f32], h: usize, w: usize, th: usize, tw: usize, yo: &mut [f32], t_all: usize, t0: usize)
        wide if tw >= MAX_LANES
}

dispatch! {
    /// `U = G g G^T` of the filters `(o, i)` of `w` for every input channel
    /// `i` into `uo[xi * ci + i]`.
    filters_transform => filters(w: Filters<'_>, o: usize, uo: &mut [f32])
        wide if w.ci() >= MAX_LANES
}

dispatch! {
    /// `G^T M G` of the `out.len() / 9` (at most [`filter_group`]) filters
    /// `oi0..` from the weight gradient's products `m[xi * plane + oi]` into
    /// `out` (`[oi][3][3]`).
    filters_from_products => from_products(m: &[f32], plane: usize, oi0: usize, out: &mut [f32])
        wide if true
}

/// One of [`Tile`]'s 1-D transforms, named by a type so that the loops
/// below take it as a parameter and still inline it: a transform passed as
/// a value (a function or closure) was left a call of its own, compiled
/// without AVX2, every vector operation in it a call too (train128 2.3
/// times as slow).
trait Transform {
    fn apply<T: Tile, V: Vector>(x: &[V; MAX_A]) -> [V; MAX_A];
}

/// `B^T d`.
struct Input;
/// `A^T m`.
struct Output;
/// `A v`.
struct GradTile;

impl Transform for Input {
    #[inline(always)]
    fn apply<T: Tile, V: Vector>(x: &[V; MAX_A]) -> [V; MAX_A] {
        T::input(x)
    }
}

impl Transform for Output {
    #[inline(always)]
    fn apply<T: Tile, V: Vector>(x: &[V; MAX_A]) -> [V; MAX_A] {
        T::output(x)
    }
}

impl Transform for GradTile {
    #[inline(always)]
    fn apply<T: Tile, V: Vector>(x: &[V; MAX_A]) -> [V; MAX_A] {
        T::grad_tile(x)
    }
}

/// `K` down each column of the tiles `x` (`x[r][c]`, the first `rows` rows
/// meaning anything), then along each row of the result.
#[inline(always)]
fn down_then_along<T: Tile, V: Vector, K: Transform>(x: &[[V; MAX_A]; MAX_A], rows: usize) -> [[V; MAX_A]; MAX_A] {
    let mut t = [[V::zero(); MAX_A]; MAX_A];
    for c in 0..T::A {
        let col = K::apply::<T, V>(&column(&x[..rows], c));
        for (tr, v) in t.iter_mut().zip(col) {
            tr[c] = v;
        }
    }
    let mut out = [[V::zero(); MAX_A]; MAX_A];
    for (o, tr) in out.iter_mut().zip(&t) {
        *o = K::apply::<T, V>(tr);
    }
    out
}

/// Column `c` of `e` (`e[r][c]` for every row `r`). A plain loop, like
/// `Portable`'s arithmetic.
#[inline(always)]
fn column<V: Vector>(e: &[[V; MAX_A]], c: usize) -> [V; MAX_A] {
    let mut col = [V::zero(); MAX_A];
    for (v, er) in col.iter_mut().zip(e) {
        *v = er[c];
    }
    col
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn input<T: Tile, V: Vector>(plane: &[f32], h: usize, w: usize, pad: usize, th: usize, tw: usize, vi: &mut [f32], t_all: usize, t0: usize) {
    tiles::<T, V, Input>(plane, h, w, pad, T::A, th, tw, vi, t_all, t0);
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn grad<T: Tile, V: Vector>(plane: &[f32], h: usize, w: usize, th: usize, tw: usize, yo: &mut [f32], t_all: usize, t0: usize) {
    tiles::<T, V, GradTile>(plane, h, w, 0, T::M, th, tw, yo, t_all, t0);
}

/// The `side x side` tiles of one plane (`h x w`) at every `M` rows and
/// columns from `-pad` (`th x tw` of them; zero outside the plane), `K` down
/// each column then along each row of each: element `(r, c)` of tile `t` to
/// `dst[(r * A + c) * t_all + t0 + t]`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn tiles<T: Tile, V: Vector, K: Transform>(plane: &[f32], h: usize, w: usize, pad: usize, side: usize, th: usize, tw: usize, dst: &mut [f32], t_all: usize, t0: usize) {
    // A row of the plane, long enough for a vector's tiles.
    let span = split_len(V::LANES, T::M, side);
    // (for tiles at the plane's edges, with zeros outside it)
    let mut row = [0f32; split_len(MAX_LANES, 4, 6)];
    for ty in 0..th {
        let y0 = (ty * T::M) as isize - pad as isize;
        let mut tx = 0;
        while tx < tw {
            let lanes = V::LANES.min(tw - tx);
            let x0 = (tx * T::M) as isize - pad as isize;
            // d[r]: row r of the tiles (zero outside the plane)
            let mut d = [[V::zero(); MAX_A]; MAX_A];
            for (r, dr) in d.iter_mut().enumerate().take(side) {
                let yy = y0 + r as isize;
                if yy < 0 || yy >= h as isize {
                    continue;
                }
                let line = &plane[yy as usize * w..(yy as usize + 1) * w];
                *dr = if x0 >= 0 && x0 as usize + span <= w {
                    // read in place: copied first, the copy was stored and loaded again at once
                    V::split(T::M, &line[x0 as usize..x0 as usize + span], side)
                } else {
                    V::padded_row(line, x0, &mut row[..span]);
                    V::split(T::M, &row[..span], side)
                };
            }
            let e = down_then_along::<T, V, K>(&d, side);
            let at = t0 + ty * tw + tx;
            for (r, er) in e.iter().enumerate().take(T::A) {
                for (c, v) in er.iter().enumerate().take(T::A) {
                    v.store_partial(&mut dst[(r * T::A + c) * t_all + at..], lanes);
                }
            }
            tx += lanes;
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn output<T: Tile, V: Vector>(m: &[f32], xi_stride: usize, base: usize, th: usize, tw: usize, oh: usize, ow: usize, add: f32, out: &mut [f32]) {
    let bias = V::splat(add);
    // the right edge's partial row of tiles
    let mut line = [0f32; 4 * MAX_LANES];
    for ty in 0..th {
        let mut tx = 0;
        while tx < tw {
            let lanes = V::LANES.min(tw - tx);
            let t = base + ty * tw + tx;
            let mut e = [[V::zero(); MAX_A]; MAX_A];
            for (r, er) in e.iter_mut().enumerate().take(T::A) {
                for (c, v) in er.iter_mut().enumerate().take(T::A) {
                    *v = V::load_partial(&m[(r * T::A + c) * xi_stride + t..], lanes);
                }
            }
            // o[p][q]: output row p, column q of each tile
            let o = down_then_along::<T, V, Output>(&e, T::A);
            let ox = tx * T::M;
            let count = (T::M * lanes).min(ow - ox);
            for p in 0..T::M {
                let oy = ty * T::M + p;
                if oy >= oh {
                    break;
                }
                let mut vals = [V::zero(); MAX_A];
                for (v, opq) in vals.iter_mut().zip(&o[p]).take(T::M) {
                    *v = *opq + bias;
                }
                let dst = &mut out[oy * ow + ox..];
                if count == T::M * V::LANES {
                    V::interleave(T::M, &vals, dst);
                } else {
                    V::interleave(T::M, &vals, &mut line);
                    dst[..count].copy_from_slice(&line[..count]);
                }
            }
            tx += lanes;
        }
    }
}

#[inline(always)]
fn filters<T: Tile, V: Vector>(w: Filters<'_>, o: usize, uo: &mut [f32]) {
    let ci = w.ci();
    let mut i0 = 0;
    while i0 < ci {
        let lanes = V::LANES.min(ci - i0);
        let g = if lanes == V::LANES {
            V::filter_taps(&w, o, i0)
        } else {
            let mut taps = [[0f32; MAX_LANES]; 9];
            w.taps(o, i0, lanes, &mut taps);
            let mut g = [V::zero(); 9];
            for (v, t) in g.iter_mut().zip(&taps) {
                *v = V::load(t);
            }
            g
        };
        // G g down each column q, then (G g) G^T along each row: element
        // (r, c) of filter (o, i) to uo[(r * A + c) * ci + i]
        let cols = [T::filter(&[g[0], g[3], g[6]]), T::filter(&[g[1], g[4], g[7]]), T::filter(&[g[2], g[5], g[8]])];
        for r in 0..T::A {
            let u = T::filter(&[cols[0][r], cols[1][r], cols[2][r]]);
            for (c, uc) in u.iter().enumerate().take(T::A) {
                uc.store_partial(&mut uo[(r * T::A + c) * ci + i0..], lanes);
            }
        }
        i0 += lanes;
    }
}

#[inline(always)]
fn from_products<T: Tile, V: Vector>(m: &[f32], plane: usize, oi0: usize, out: &mut [f32]) {
    let count = out.len() / 9;
    assert!(count <= V::LANES, "more filters than lanes");
    let mut e = [[V::zero(); MAX_A]; MAX_A];
    for (r, er) in e.iter_mut().enumerate().take(T::A) {
        for (c, v) in er.iter_mut().enumerate().take(T::A) {
            *v = V::load_partial(&m[(r * T::A + c) * plane + oi0..], count);
        }
    }
    // G^T e down each column, then (G^T e) G along each row: tap (k, q) of each filter
    let mut t = [[V::zero(); MAX_A]; 3];
    for c in 0..T::A {
        for (k, v) in T::grad_filter(&column(&e, c)).into_iter().enumerate() {
            t[k][c] = v;
        }
    }
    let mut taps = [V::zero(); 9];
    for (k, tk) in t.iter().enumerate() {
        for (q, v) in T::grad_filter(tk).into_iter().enumerate() {
            taps[k * 3 + q] = v;
        }
    }
    V::unzip_filters(&taps, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::cpu::conv::tests::values;
    use crate::ops::cpu::winograd::{F2, F4};

    /// Every transform as `Portable` (what CPUs without AVX2 run, never
    /// dispatched to here) against `Ymm` and `Zmm` (where the CPU has them):
    /// the same operations in the same order, so the same bits, over planes
    /// with partial tiles, partial groups of lanes and every padding.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn portable_and_vector_transforms_agree() {
        #[inline(always)]
        fn check<T: Tile, W: Vector>() {
            let n = T::A * T::A;
            for (h, w, pad) in [(9, 7, 0), (6, 8, 1), (21, 37, 2), (18, 18, 0), (10, 70, 1)] {
                let plane = values(h * w, 7);
                let (oh, ow) = (h + 2 * pad - 2, w + 2 * pad - 2);
                let (th, tw) = (oh.div_ceil(T::M), ow.div_ceil(T::M));
                let t_all = th * tw + 3; // (another image's tiles after these)
                let (mut a, mut b) = (vec![0f32; n * t_all], vec![0f32; n * t_all]);
                input::<T, W>(&plane, h, w, pad, th, tw, &mut a, t_all, 1);
                input::<T, Portable>(&plane, h, w, pad, th, tw, &mut b, t_all, 1);
                assert_eq!(a, b, "input transform {h}x{w} pad {pad}");
                let m = values(n * t_all, 8);
                let (mut a, mut b) = (vec![0f32; oh * ow], vec![0f32; oh * ow]);
                output::<T, W>(&m, t_all, 2, th, tw, oh, ow, 0.5, &mut a);
                output::<T, Portable>(&m, t_all, 2, th, tw, oh, ow, 0.5, &mut b);
                assert_eq!(a, b, "output transform {oh}x{ow}");
                let (th, tw) = (h.div_ceil(T::M), w.div_ceil(T::M));
                let t_all = th * tw;
                let (mut a, mut b) = (vec![0f32; n * t_all], vec![0f32; n * t_all]);
                grad::<T, W>(&plane, h, w, th, tw, &mut a, t_all, 0);
                grad::<T, Portable>(&plane, h, w, th, tw, &mut b, t_all, 0);
                assert_eq!(a, b, "gradient transform {h}x{w}");
            }
            for (co, ci) in [(3, 11), (2, 16), (5, 19)] {
                let weights = values(co * ci * 9, 9);
                for f in [Filters::new(&weights, ci), Filters::flipped(&weights, co)] {
                    for o in 0..f.w.len() / (9 * f.ci) {
                        let (mut a, mut b) = (vec![0f32; n * f.ci], vec![0f32; n * f.ci]);
                        filters::<T, W>(f, o, &mut a);
                        filters::<T, Portable>(f, o, &mut b);
                        assert_eq!(a, b, "filter transform ({co}, {ci}) filter {o}");
                    }
                }
                let plane = co * ci;
                let m = values(n * plane, 10);
                for (oi0, count) in [(0, W::LANES), (1, LANES), (plane - 3, 3)] {
                    let (mut a, mut b) = (vec![0f32; 9 * count], vec![0f32; 9 * count]);
                    from_products::<T, W>(&m, plane, oi0, &mut a);
                    for (k, group) in b.chunks_mut(9 * LANES).enumerate() {
                        from_products::<T, Portable>(&m, plane, oi0 + k * LANES, group);
                    }
                    assert_eq!(a, b, "filters from products ({co}, {ci}) from {oi0}");
                }
            }
        }
        #[target_feature(enable = "avx2,fma")]
        fn avx2<T: Tile>() {
            check::<T, Ymm>();
        }
        #[target_feature(enable = "avx512f,avx2,fma")]
        fn avx512<T: Tile>() {
            check::<T, Zmm>();
        }
        // (what the CPU has, whatever `CYCLEGAN_SIMD` caps the kernels at)
        if simd::detected() >= Level::Avx2 {
            // SAFETY: the CPU has AVX2 and FMA.
            unsafe {
                avx2::<F2>();
                avx2::<F4>();
            }
        }
        if simd::detected() >= Level::Avx512 {
            // SAFETY: the CPU has AVX-512F, and with it AVX2 and FMA.
            unsafe {
                avx512::<F2>();
                avx512::<F4>();
            }
        }
    }
}
