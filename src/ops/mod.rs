//! Tensor operations the networks need beyond burn's standard set, or faster
//! than burn's composition of them: reflection padding and instance norm.
//!
//! Each op has one entry point here. On the CPU backend it runs a fused
//! kernel with a handwritten backward; on every other backend it falls back to
//! the plain composition of burn ops, which is also the reference the fused
//! kernels are tested against.

mod composite;

pub use composite::{instance_norm_composite, reflect_pad_composite};

use burn::tensor::Tensor;

/// Reflection padding of the last two dimensions by `[top, bottom, left, right]`
/// (PyTorch's `ReflectionPad2d`, `F.pad(mode="reflect")`). Each amount must be
/// smaller than the padded dimension.
pub fn reflect_pad(x: Tensor<4>, [top, bottom, left, right]: [usize; 4]) -> Tensor<4> {
    reflect_pad_composite(x, [top, bottom, left, right])
}

/// Instance normalisation without affine: each `(n, c)` plane to zero mean and
/// unit (biased) variance, `eps` added to the variance.
pub fn instance_norm(x: Tensor<4>, eps: f64) -> Tensor<4> {
    instance_norm_composite(x, eps)
}
