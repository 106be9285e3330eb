//! The two Winograd variants' 1-D transforms, written once over
//! [`Vector`]: applied down a tile's columns and then along its rows
//! (`super::planes`) they give the 2-D transforms `B^T d B`, `G g G^T`, `A^T m A` and the weight
//! gradient's `A v A^T` and `G^T m G`.

use super::MAX_A;
use super::vector::Vector;

/// One Winograd variant: its output tile side `M`, input tile side `A = M + 2`
/// and the 1-D transforms. Arrays are `MAX_A` long; only the first `A` (or
/// `M`, or 3) entries mean anything.
pub trait Tile {
    const M: usize;
    const A: usize = Self::M + 2;
    /// `B^T d`: `A` values from `A`.
    fn input<V: Vector>(d: &[V; MAX_A]) -> [V; MAX_A];
    /// `A^T m`: `M` values from `A`.
    fn output<V: Vector>(m: &[V; MAX_A]) -> [V; MAX_A];
    /// `G g`: `A` values from a filter's 3.
    fn filter<V: Vector>(g: &[V; 3]) -> [V; MAX_A];
    /// `A v`: `A` values from `M` (the weight gradient's transform of an
    /// output-gradient tile).
    fn grad_tile<V: Vector>(v: &[V; MAX_A]) -> [V; MAX_A];
    /// `G^T m`: a filter's 3 values from `A` (the weight gradient's output).
    fn grad_filter<V: Vector>(m: &[V; MAX_A]) -> [V; 3];
}

/// F(2x2, 3x3).
pub struct F2;
/// F(4x4, 3x3), with the interpolation points 0, +-1, +-2 (and infinity).
pub struct F4;

/// F4's filter transform's common factor: a product with it, where
/// divisions (vdivps, one per five cycles) were most of the transform's time.
const SIXTH: f32 = 1.0 / 6.0;

impl Tile for F2 {
    const M: usize = 2;

    #[inline(always)]
    fn input<V: Vector>(d: &[V; MAX_A]) -> [V; MAX_A] {
        // B^T = [[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]]
        let z = V::zero();
        [d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3], z, z]
    }

    #[inline(always)]
    fn output<V: Vector>(m: &[V; MAX_A]) -> [V; MAX_A] {
        // A^T = [[1,1,1,0],[0,1,-1,-1]]
        let z = V::zero();
        [m[0] + m[1] + m[2], m[1] - m[2] - m[3], z, z, z, z]
    }

    #[inline(always)]
    fn filter<V: Vector>([a, b, c]: &[V; 3]) -> [V; MAX_A] {
        // G = [[1,0,0],[.5,.5,.5],[.5,-.5,.5],[0,0,1]]
        let z = V::zero();
        [*a, (*a + *b + *c) * 0.5, (*a - *b + *c) * 0.5, *c, z, z]
    }

    #[inline(always)]
    fn grad_tile<V: Vector>(v: &[V; MAX_A]) -> [V; MAX_A] {
        let z = V::zero();
        [v[0], v[0] + v[1], v[0] - v[1], -v[1], z, z]
    }

    #[inline(always)]
    fn grad_filter<V: Vector>(m: &[V; MAX_A]) -> [V; 3] {
        let half = (m[1] + m[2]) * 0.5;
        [m[0] + half, (m[1] - m[2]) * 0.5, half + m[3]]
    }
}

impl Tile for F4 {
    const M: usize = 4;

    #[inline(always)]
    fn input<V: Vector>(d: &[V; MAX_A]) -> [V; MAX_A] {
        // B^T = [[4,0,-5,0,1,0],[0,-4,-4,1,1,0],[0,4,-4,-1,1,0],
        //        [0,-2,-1,2,1,0],[0,2,-1,-2,1,0],[0,4,0,-5,0,1]]
        [
            d[0] * 4.0 - d[2] * 5.0 + d[4],
            d[3] + d[4] - (d[1] + d[2]) * 4.0,
            d[4] - d[3] + (d[1] - d[2]) * 4.0,
            d[4] - d[2] + (d[3] - d[1]) * 2.0,
            d[4] - d[2] + (d[1] - d[3]) * 2.0,
            d[1] * 4.0 - d[3] * 5.0 + d[5],
        ]
    }

    #[inline(always)]
    fn output<V: Vector>(m: &[V; MAX_A]) -> [V; MAX_A] {
        // A^T = [[1,1,1,1,1,0],[0,1,-1,2,-2,0],[0,1,1,4,4,0],[0,1,-1,8,-8,1]]
        let (p12, m12) = (m[1] + m[2], m[1] - m[2]);
        let (p34, m34) = (m[3] + m[4], m[3] - m[4]);
        let z = V::zero();
        [m[0] + p12 + p34, m12 + m34 * 2.0, p12 + p34 * 4.0, m12 + m34 * 8.0 + m[5], z, z]
    }

    #[inline(always)]
    fn filter<V: Vector>([a, b, c]: &[V; 3]) -> [V; MAX_A] {
        // G = [[1/4,0,0],[-1/6,-1/6,-1/6],[-1/6,1/6,-1/6],[1/24,1/12,1/6],[1/24,-1/12,1/6],[0,0,1]]
        let (a4, b2) = (*a * 0.25, *b * 0.5);
        [*a * 0.25, (*a + *b + *c) * -SIXTH, (*a - *b + *c) * -SIXTH, (a4 + b2 + *c) * SIXTH, (a4 - b2 + *c) * SIXTH, *c]
    }

    #[inline(always)]
    fn grad_tile<V: Vector>(v: &[V; MAX_A]) -> [V; MAX_A] {
        // A = (A^T)^T: rows [1,0,0,0],[1,1,1,1],[1,-1,1,-1],[1,2,4,8],[1,-2,4,-8],[0,0,0,1]
        let (p02, p13) = (v[0] + v[2], v[1] + v[3]);
        let (q02, q13) = (v[0] + v[2] * 4.0, v[1] * 2.0 + v[3] * 8.0);
        [v[0], p02 + p13, p02 - p13, q02 + q13, q02 - q13, v[3]]
    }

    #[inline(always)]
    fn grad_filter<V: Vector>(m: &[V; MAX_A]) -> [V; 3] {
        // G^T, G as in `filter`
        let (p12, m12) = (m[1] + m[2], m[1] - m[2]);
        let (p34, m34) = (m[3] + m[4], m[3] - m[4]);
        [m[0] * 0.25 + (p34 * 0.25 - p12) * SIXTH, (m34 * 0.5 - m12) * SIXTH, (p34 - p12) * SIXTH + m[5]]
    }
}
