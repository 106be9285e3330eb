//! The reference implementations: plain compositions of burn ops, which any
//! backend runs and autodiff differentiates.

use burn::tensor::{DType, FloatDType, Tensor, TensorData};
use burn::tensor::module;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, PadMode};

pub fn conv2d(x: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>, stride: usize, padding: usize) -> Tensor<4> {
    module::conv2d(x, weight, bias, ConvOptions::new([stride; 2], [padding; 2], [1, 1], 1))
}

pub fn conv_transpose2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: usize,
    padding: usize,
    output_padding: usize,
) -> Tensor<4> {
    let options = ConvTransposeOptions::new([stride; 2], [padding; 2], [output_padding; 2], [1, 1], 1);
    module::conv_transpose2d(x, weight, bias, options)
}

pub fn activation(x: Tensor<4>, act: super::Activation) -> Tensor<4> {
    match act {
        super::Activation::Relu => burn::tensor::activation::relu(x),
        super::Activation::LeakyRelu(slope) => burn::tensor::activation::leaky_relu(x, slope as f64),
    }
}

pub fn reflect_pad(x: Tensor<4>, [top, bottom, left, right]: [usize; 4]) -> Tensor<4> {
    x.pad([(0, 0), (0, 0), (top, bottom), (left, right)], PadMode::Reflect)
}

/// Replication padding by `p` on every side (PyTorch's `ReplicationPad2d`).
pub fn edge_pad(x: Tensor<4>, p: usize) -> Tensor<4> {
    x.pad([(0, 0), (0, 0), (p, p), (p, p)], PadMode::Edge)
}

/// The 2-D filter `taps^T taps` as a one-channel kernel.
fn outer_kernel<const K: usize>(taps: [f32; K], like: &Tensor<4>) -> Tensor<4> {
    let kernel: Tensor<4> = Tensor::from_data(TensorData::new(super::blur_filter(&taps), [1, 1, K, K]), &like.device());
    kernel.cast(FloatDType::from(like.dtype()))
}

/// Every plane alone through a one-channel convolution (depthwise, without groups).
pub fn blur_down(x: Tensor<4>, taps: [f32; 3]) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let planes = reflect_pad(x, [1; 4]).reshape([n * c, 1, h + 2, w + 2]);
    let k = outer_kernel(taps, &planes);
    let y = conv2d(planes, k, None, 2, 0);
    let [_, _, oh, ow] = y.dims();
    y.reshape([n, c, oh, ow])
}

pub fn blur_up(x: Tensor<4>, taps: [f32; 4]) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let planes = edge_pad(x, 1).reshape([n * c, 1, h + 2, w + 2]);
    let k = outer_kernel(taps, &planes);
    let y = conv_transpose2d(planes, k, None, 2, 2, 0); // [n c, 1, 2h + 2, 2w + 2]
    y.slice([0..n * c, 0..1, 1..2 * h + 1, 1..2 * w + 1]).reshape([n, c, 2 * h, 2 * w])
}

pub fn instance_norm(x: Tensor<4>, eps: f64) -> Tensor<4> {
    // Half-precision sums of squares overflow (f16 tops out at 65504): normalise in f32.
    let dtype = x.dtype();
    if matches!(dtype, DType::F16 | DType::BF16) {
        return instance_norm(x.cast(FloatDType::F32), eps).cast(FloatDType::from(dtype));
    }
    let [n, c, h, w] = x.dims();
    let flat = x.reshape([n, c, h * w]);
    let (var, mean) = flat.clone().var_mean_bias(2);
    ((flat - mean) / (var + eps).sqrt()).reshape([n, c, h, w])
}

/// One Adam step as PyTorch writes it: `exp_avg.lerp_(grad, 1 - beta1)`,
/// `exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)`,
/// `param -= step_size * exp_avg / (sqrt(exp_avg_sq) / bias2_sqrt + eps)`.
pub fn adam_step(param: Tensor<1>, grad: Tensor<1>, m: Tensor<1>, v: Tensor<1>, c: super::AdamCoefficients) -> [Tensor<1>; 3] {
    let m = m.clone() + (grad.clone() - m) * c.one_minus_beta1;
    let v = v * c.beta2 + grad.square() * c.one_minus_beta2;
    let denom = v.clone().sqrt() / c.bias2_sqrt + c.eps;
    let param = param - m.clone() / denom * c.step_size;
    [param, m, v]
}
