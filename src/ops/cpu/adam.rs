//! One Adam step over a parameter's values in a single pass: the moments
//! and the parameter updated in place, element by element, in the same f32
//! operations (same order, no fused multiply-adds) as the composition of
//! burn ops in [`crate::ops::composite::adam_step`], so both give the same bits.
//! burn's element-wise ops run one after another on one thread, each
//! reading and writing whole tensors: as thirteen of them Adam was 8 % of a
//! small training step's CPU time, with the other core idle.

use rayon::prelude::*;

use super::min_len;
use crate::ops::AdamCoefficients;

/// Values per parallel task: whole cache lines, enough work to pay for the hand-off.
const CHUNK: usize = 4096;

/// `m`, `v` and `param` after one step with gradient `grad` (all the same length).
pub fn step(param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32], c: AdamCoefficients) {
    assert!(grad.len() == param.len() && m.len() == param.len() && v.len() == param.len(), "Adam: lengths differ");
    param
        .par_chunks_mut(CHUNK)
        .zip(grad.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .with_min_len(min_len(CHUNK * 4))
        .for_each(|(((p, g), m), v)| chunk(p, g, m, v, c));
}

#[multiversion::multiversion(targets("x86_64+avx2+fma", "x86_64+avx", "aarch64+neon"))]
fn chunk(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: AdamCoefficients) {
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        *m += (g - *m) * c.one_minus_beta1;
        *v = *v * c.beta2 + g * g * c.one_minus_beta2;
        let denom = v.sqrt() / c.bias2_sqrt + c.eps;
        *p -= *m / denom * c.step_size;
    }
}
