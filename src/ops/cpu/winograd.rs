//! Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray 2016): each 2x2
//! output tile of a 3x3 stride-1 convolution from a 4x4 input tile with 16
//! multiplications per input channel instead of 36. Input tiles and filters
//! are transformed (`V = B^T d B`, `U = G g G^T`), the products summed over
//! input channels become 16 matrix multiplies `M = U V`, and each output
//! tile is `A^T M A`. The transforms' coefficients are 0, +-1 and 1/2, so
//! the rounding stays close to that of a direct convolution (the larger
//! F(4x4, 3x3) would save more work but loses about two digits).

use multiversion::multiversion;
use rayon::prelude::*;

use super::{Nchw, min_len};
use super::gemm::{Mat, Threads, matmul};
use super::scratch::Scratch;

const TILE: usize = 2; // output tile side
const N: usize = 16; // transformed tile elements

/// `y = conv3x3(x, w)` with zero padding `pad` (0, 1 or 2) and stride 1.
pub fn conv3x3(x: &[f32], xs: Nchw, w: &[f32], co: usize, pad: usize) -> Vec<f32> {
    let ci = xs.c;
    let (oh, ow) = (xs.h + 2 * pad - 2, xs.w + 2 * pad - 2);
    let (th, tw) = (oh.div_ceil(TILE), ow.div_ceil(TILE));
    let tiles_per_image = th * tw;
    let t_all = xs.n * tiles_per_image;

    // U[o][i][xi]: read by the multiplies below with a stride of 16.
    let mut u = vec![0f32; co * ci * N];
    u.par_chunks_mut(N).zip(w.par_chunks(9)).with_min_len(min_len(N * 4)).for_each(|(dst, g)| dst.copy_from_slice(&filter_transform(g)));

    // V[i][xi][t]
    let mut v = Scratch::take(ci * N * t_all);
    v.par_chunks_mut(N * t_all).with_min_len(min_len(N * t_all)).enumerate().for_each(|(i, vi)| {
        for b in 0..xs.n {
            let plane = &x[(b * ci + i) * xs.plane()..(b * ci + i + 1) * xs.plane()];
            input_transform_plane(plane, xs.h, xs.w, pad, th, tw, vi, t_all, b * tiles_per_image);
        }
    });

    // M[xi][o][t] = U[.][.][xi] (co x ci) * V[.][xi][.] (ci x T)
    let mut m = Scratch::take(N * co * t_all);
    m.par_chunks_mut(co * t_all).with_min_len(min_len(co * t_all * ci / 8)).enumerate().for_each(|(xi, mx)| {
        let ux = Mat { data: &u[xi..], rs: ci * N, cs: N };
        let vx = Mat { data: &v[xi * t_all..], rs: N * t_all, cs: 1 };
        matmul(co, t_all, ci, ux, vx, mx, false, Threads::One);
    });

    // y[b][o] = A^T M A per tile
    let mut y = vec![0f32; xs.n * co * oh * ow];
    y.par_chunks_mut(oh * ow).with_min_len(min_len(oh * ow * 4)).enumerate().for_each(|(plane, out)| {
        let (b, o) = (plane / co, plane % co);
        let base = o * t_all + b * tiles_per_image;
        output_transform_plane(&m, co * t_all, base, th, tw, oh, ow, out);
    });
    y
}

/// `G g G^T` for a 3x3 filter `g`, G = [[1,0,0],[.5,.5,.5],[.5,-.5,.5],[0,0,1]].
fn filter_transform(g: &[f32]) -> [f32; N] {
    let mut t = [[0f32; 3]; 4]; // G g
    for c in 0..3 {
        let (a, b, d) = (g[c], g[3 + c], g[6 + c]);
        t[0][c] = a;
        t[1][c] = 0.5 * (a + b + d);
        t[2][c] = 0.5 * (a - b + d);
        t[3][c] = d;
    }
    let mut u = [0f32; N];
    for r in 0..4 {
        let (a, b, d) = (t[r][0], t[r][1], t[r][2]);
        u[r * 4] = a;
        u[r * 4 + 1] = 0.5 * (a + b + d);
        u[r * 4 + 2] = 0.5 * (a - b + d);
        u[r * 4 + 3] = d;
    }
    u
}

/// Tiles transformed together (one AVX register of f32).
const LANES: usize = 8;

/// Transform every 4x4 input tile of one channel plane into `vi[xi * t_all + t]`,
/// eight horizontally adjacent tiles at a time.
#[allow(clippy::too_many_arguments)]
#[multiversion(targets("x86_64+avx2+fma", "x86_64+avx", "aarch64+neon"))]
fn input_transform_plane(
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
    // A row of the padded plane, long enough for LANES tiles: 2 * LANES + 2 values.
    const SPAN: usize = 2 * LANES + 2;
    for ty in 0..th {
        let y0 = (ty * TILE) as isize - pad as isize;
        let mut tx = 0;
        while tx < tw {
            let lanes = LANES.min(tw - tx);
            let x0 = (tx * TILE) as isize - pad as isize;
            // d[r][c][j]: element (r, c) of tile tx + j
            let mut d = [[[0f32; LANES]; 4]; 4];
            for (r, dr) in d.iter_mut().enumerate() {
                let yy = y0 + r as isize;
                if yy < 0 || yy >= h as isize {
                    continue;
                }
                let line = &plane[yy as usize * w..(yy as usize + 1) * w];
                let mut row = [0f32; SPAN];
                if x0 >= 0 && x0 as usize + SPAN <= w {
                    row.copy_from_slice(&line[x0 as usize..x0 as usize + SPAN]);
                } else {
                    for (k, v) in row.iter_mut().enumerate() {
                        let xx = x0 + k as isize;
                        if xx >= 0 && xx < w as isize {
                            *v = line[xx as usize];
                        }
                    }
                }
                for (c, dc) in dr.iter_mut().enumerate() {
                    for (j, v) in dc.iter_mut().enumerate() {
                        *v = row[2 * j + c];
                    }
                }
            }
            // B^T d (rows), then (B^T d) B (columns), B^T = [[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]]
            let mut t = [[[0f32; LANES]; 4]; 4];
            for c in 0..4 {
                for j in 0..LANES {
                    let (d0, d1, d2, d3) = (d[0][c][j], d[1][c][j], d[2][c][j], d[3][c][j]);
                    t[0][c][j] = d0 - d2;
                    t[1][c][j] = d1 + d2;
                    t[2][c][j] = d2 - d1;
                    t[3][c][j] = d1 - d3;
                }
            }
            let t_index = t0 + ty * tw + tx;
            for r in 0..4 {
                let mut out = [[0f32; LANES]; 4];
                for j in 0..LANES {
                    let (a, b, c, e) = (t[r][0][j], t[r][1][j], t[r][2][j], t[r][3][j]);
                    out[0][j] = a - c;
                    out[1][j] = b + c;
                    out[2][j] = c - b;
                    out[3][j] = b - e;
                }
                for (c, o) in out.iter().enumerate() {
                    let at = (r * 4 + c) * t_all + t_index;
                    vi[at..at + lanes].copy_from_slice(&o[..lanes]);
                }
            }
            tx += lanes;
        }
    }
}

/// `A^T m A` for every tile of one output plane, A^T = [[1,1,1,0],[0,1,-1,-1]],
/// eight horizontally adjacent tiles at a time.
#[allow(clippy::too_many_arguments)]
#[multiversion(targets("x86_64+avx2+fma", "x86_64+avx", "aarch64+neon"))]
fn output_transform_plane(
    m: &[f32],
    xi_stride: usize,
    base: usize,
    th: usize,
    tw: usize,
    oh: usize,
    ow: usize,
    out: &mut [f32],
) {
    for ty in 0..th {
        let mut tx = 0;
        while tx < tw {
            let lanes = LANES.min(tw - tx);
            let t = base + ty * tw + tx;
            let mut e = [[0f32; LANES]; N];
            for (xi, ex) in e.iter_mut().enumerate() {
                ex[..lanes].copy_from_slice(&m[xi * xi_stride + t..xi * xi_stride + t + lanes]);
            }
            let mut s = [[[0f32; LANES]; 4]; 2];
            for c in 0..4 {
                for j in 0..LANES {
                    s[0][c][j] = e[c][j] + e[4 + c][j] + e[8 + c][j];
                    s[1][c][j] = e[4 + c][j] - e[8 + c][j] - e[12 + c][j];
                }
            }
            for r in 0..2 {
                let oy = ty * TILE + r;
                if oy >= oh {
                    continue;
                }
                let mut pair = [0f32; 2 * LANES];
                for j in 0..LANES {
                    pair[2 * j] = s[r][0][j] + s[r][1][j] + s[r][2][j];
                    pair[2 * j + 1] = s[r][1][j] - s[r][2][j] - s[r][3][j];
                }
                let ox = tx * TILE;
                let n = (2 * lanes).min(ow - ox);
                out[oy * ow + ox..oy * ow + ox + n].copy_from_slice(&pair[..n]);
            }
            tx += lanes;
        }
    }
}
