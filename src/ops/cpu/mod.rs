//! The CPU kernels behind [`crate::ops`] on burn's flex backend, on plain
//! contiguous NCHW `f32` slices. Each has a test against a naive version.
//!
//! - [`conv`]: convolution forward, input gradient and weight gradient, with
//!   the cheapest of three methods for each shape: Winograd ([`winograd`],
//!   F(4x4, 3x3) or F(2x2, 3x3) by size) for 3x3 stride-1 convs, all three
//!   passes (4x or 2.25x fewer multiplications than direct; the ResNet
//!   blocks), direct loops for layers with few channels (the 7x7 stem and
//!   head, where im2col + GEMM wastes most of its work), and im2col + GEMM
//!   for the rest.
//! - [`pad`]: reflection padding and its adjoint.
//! - [`norm`]: instance norm forward and backward in one pass each.
//! - [`blur`]: CUT's anti-aliased down- and upsampling, as separable passes.
//! - [`adam`]: one Adam step, moments and parameter in one parallel pass.
//!
//! Hot loops are compiled for AVX2+FMA as well as the baseline and picked at
//! run time (`multiversion`), so one binary runs everywhere.

use std::mem::MaybeUninit;

pub mod adam;
pub mod bf16;
pub mod blur;
pub mod conv;
pub mod gemm;
pub mod norm;
pub mod pad;
pub mod pool;
mod scratch;
pub mod simd;
pub mod winograd;
mod direct;

/// Items per parallel task, so that each task does at least ~32K values of
/// work: splitting small tensors finer costs more in thread hand-offs than
/// it gains (the small networks of tests and demos are all small tensors).
pub(crate) fn min_len(work_per_item: usize) -> usize {
    (32 * 1024 / work_per_item.max(1)).max(1)
}

/// `n` values that `fill` writes, with what `fill` returns: the values are
/// not zero-filled first. `vec![0.0; n]` on memory the heap hands out again
/// is calloc's memset, which had been 3-4 % of a training step at 256 px;
/// kernels that write every value of their output take it from here.
///
/// # Safety
/// `fill` must write every one of the `n` values it is given (or panic).
pub(crate) unsafe fn written<R>(n: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>]) -> R) -> (Vec<f32>, R) {
    let mut v = Vec::<f32>::with_capacity(n);
    let r = fill(&mut v.spare_capacity_mut()[..n]);
    // SAFETY: the caller's promise: `fill` has written all `n` values.
    unsafe { v.set_len(n) };
    (v, r)
}

/// Values that have all been written, as `f32`s.
///
/// # Safety
/// Every value of `s` must have been written.
pub(crate) unsafe fn assume_written(s: &[MaybeUninit<f32>]) -> &[f32] {
    // SAFETY: `MaybeUninit<f32>` has `f32`'s layout, and the caller promises
    // every value is initialised.
    unsafe { &*(s as *const [MaybeUninit<f32>] as *const [f32]) }
}

/// What a convolution's matrix products compute in. Everything else
/// (transforms, sums, normalisation) stays f32 either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Products {
    #[default]
    F32,
    /// Both sides rounded to bf16, products summed in f32 ([`bf16`]); only
    /// where [`bf16::available`].
    Bf16,
}

/// The shape of an NCHW tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nchw {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Nchw {
    pub fn new(n: usize, c: usize, h: usize, w: usize) -> Self {
        Self { n, c, h, w }
    }

    pub fn plane(&self) -> usize {
        self.h * self.w
    }

    pub fn len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }

    pub fn dims(&self) -> [usize; 4] {
        [self.n, self.c, self.h, self.w]
    }
}

/// Kernel size, stride and zero padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl Geometry {
    pub fn new(k: usize, stride: usize, pad: usize) -> Self {
        Self { k, stride, pad }
    }

    /// Output size along one axis for an input of size `len`.
    pub fn out(&self, len: usize) -> usize {
        (len + 2 * self.pad - self.k) / self.stride + 1
    }

    pub fn out_shape(&self, x: Nchw, co: usize) -> Nchw {
        Nchw::new(x.n, co, self.out(x.h), self.out(x.w))
    }
}
