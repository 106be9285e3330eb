//! The tensor operations the networks spend their time in: convolution,
//! transposed convolution, reflection padding and instance norm.
//!
//! Each has one entry point here. On the CPU backend (flex) it runs the
//! kernels of [`cpu`] through a burn backend extension with handwritten
//! backward passes ([`extension`]); on every other backend, and with
//! `CYCLEGAN_KERNELS=burn` in the environment, it runs the plain composition
//! of burn ops ([`composite`]), which is also what the kernels are tested
//! against.

pub mod composite;
pub mod cpu;
mod extension;

use std::sync::OnceLock;

use burn::backend::{Dispatch, DispatchDevice};
use burn::tensor::Tensor;

use extension::CpuKernels;

/// Whether tensors on flex go through our kernels (default) or burn's own ops.
pub fn fast_kernels_enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("CYCLEGAN_KERNELS").map_or(true, |v| v != "burn"))
}

/// Whether `x` lives on flex (with or without autodiff) in a form the kernels take.
fn fast(x: &Tensor<4>) -> bool {
    if !fast_kernels_enabled() || !extension::supports(x.dtype(), &x.shape()) {
        return false;
    }
    match x.device().as_dispatch() {
        DispatchDevice::Flex(_) => true,
        DispatchDevice::Autodiff(inner) => matches!(**inner, DispatchDevice::Flex(_)),
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

fn add_bias(y: Tensor<4>, bias: Option<Tensor<1>>) -> Tensor<4> {
    match bias {
        Some(b) => {
            let c = b.dims()[0];
            y + b.reshape([1, c, 1, 1])
        }
        None => y,
    }
}

/// Convolution with a square kernel, equal strides and zero padding on all sides.
pub fn conv2d(x: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>, stride: usize, padding: usize) -> Tensor<4> {
    if !fast(&x) {
        return composite::conv2d(x, weight, bias, stride, padding);
    }
    let y = Tensor::from_dispatch(<Dispatch as CpuKernels>::conv2d_fast(
        x.into_dispatch(),
        weight.into_dispatch(),
        stride,
        padding,
    ));
    add_bias(y, bias)
}

/// Transposed convolution (weight `[in, out, k, k]`, as PyTorch and burn store it).
pub fn conv_transpose2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: usize,
    padding: usize,
    output_padding: usize,
) -> Tensor<4> {
    if !fast(&x) {
        return composite::conv_transpose2d(x, weight, bias, stride, padding, output_padding);
    }
    let y = Tensor::from_dispatch(<Dispatch as CpuKernels>::conv_transpose2d_fast(
        x.into_dispatch(),
        weight.into_dispatch(),
        stride,
        padding,
        output_padding,
    ));
    add_bias(y, bias)
}

/// Reflection padding of the last two dimensions by `[top, bottom, left, right]`
/// (PyTorch's `ReflectionPad2d`, `F.pad(mode="reflect")`). Each amount must be
/// smaller than the padded dimension.
pub fn reflect_pad(x: Tensor<4>, pads: [usize; 4]) -> Tensor<4> {
    if pads == [0; 4] {
        return x;
    }
    if !fast(&x) {
        return composite::reflect_pad(x, pads);
    }
    Tensor::from_dispatch(<Dispatch as CpuKernels>::reflect_pad_fast(x.into_dispatch(), pads))
}

/// Instance normalisation without affine: each `(n, c)` plane to zero mean and
/// unit (biased) variance, `eps` added to the variance.
pub fn instance_norm(x: Tensor<4>, eps: f64) -> Tensor<4> {
    if !fast(&x) {
        return composite::instance_norm(x, eps);
    }
    Tensor::from_dispatch(<Dispatch as CpuKernels>::instance_norm_fast(x.into_dispatch(), eps))
}
