//! The few operations the Inception is made of (convolution with its folded
//! batch norm and ReLU, the two 3x3 pools, channel concatenation), on two
//! kinds of activations:
//!
//! - [`Raw`]: plain NCHW `f32` buffers through the project's CPU kernels,
//!   on flex. Bias and ReLU are one pass over a convolution's output, and
//!   nothing is converted between layers (a tensor round trip per layer
//!   cost a tenth of the time);
//! - [`Burn`]: burn tensors, on every other device (and with
//!   `CYCLEGAN_KERNELS=burn`).
//!
//! The network itself ([`super`]) is written once, over [`Engine`].

use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

use crate::ops::cpu::{self, Geometry, Nchw};

/// One layer's shape: `[out, in, kh, kw]`, stride, zero padding `[ph, pw]`.
#[derive(Clone, Copy, Debug)]
pub struct ConvShape {
    pub dims: [usize; 4],
    pub stride: usize,
    pub padding: [usize; 2],
}

/// How the network's operations run on one kind of activation.
pub trait Engine: Sized {
    /// A convolution's weights with batch norm folded in, as this engine holds them.
    type Weights;
    /// An activation `[n, c, h, w]`.
    type Act: Clone;

    fn weights(weight: Vec<f32>, bias: Vec<f32>, shape: &ConvShape, device: &Device) -> Self::Weights;
    /// The convolution plus bias, then ReLU when `relu`.
    fn conv(w: &Self::Weights, shape: &ConvShape, x: &Self::Act, relu: bool) -> Self::Act;
    /// 3x3 max pool (padding never wins).
    fn max_pool(x: &Self::Act, stride: usize, padding: usize) -> Self::Act;
    /// ReLU of the 3x3, stride-1 average over the pixels inside the image.
    fn relu_avg_pool(x: &Self::Act) -> Self::Act;
    /// Concatenation along channels.
    fn cat(parts: Vec<Self::Act>) -> Self::Act;
    /// The mean over each plane: `[n, c]`, row-major.
    fn plane_means(x: Self::Act) -> Vec<f32>;
}

/// Activations as plain NCHW buffers on the CPU kernels.
pub struct Raw;

/// An NCHW buffer and its shape.
#[derive(Clone, Debug)]
pub struct Planes {
    pub values: Vec<f32>,
    pub shape: Nchw,
}

pub struct RawWeights {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl Engine for Raw {
    type Weights = RawWeights;
    type Act = Planes;

    fn weights(weight: Vec<f32>, bias: Vec<f32>, _: &ConvShape, _: &Device) -> RawWeights {
        RawWeights { weight, bias }
    }

    fn conv(w: &RawWeights, shape: &ConvShape, x: &Planes, relu: bool) -> Planes {
        let [co, _, kh, kw] = shape.dims;
        let [ph, pw] = shape.padding;
        let (mut values, ys) = if kh == kw && ph == pw {
            cpu::conv::forward(&x.values, x.shape, &w.weight, co, None, Geometry::new(kh, shape.stride, ph), cpu::Products::F32)
        } else {
            assert_eq!(shape.stride, 1, "Inception's rectangular kernels have stride 1");
            cpu::conv::forward_rect(&x.values, x.shape, &w.weight, co, [kh, kw], shape.padding)
        };
        let plane = ys.plane();
        values.par_chunks_mut(plane).with_min_len(cpu::min_len(plane)).enumerate().for_each(|(i, out)| {
            let b = w.bias[i % co];
            if relu {
                out.iter_mut().for_each(|v| *v = (*v + b).max(0.0));
            } else {
                out.iter_mut().for_each(|v| *v += b);
            }
        });
        Planes { values, shape: ys }
    }

    fn max_pool(x: &Planes, stride: usize, padding: usize) -> Planes {
        let (values, shape) = cpu::pool::max3x3(&x.values, x.shape, stride, padding);
        Planes { values, shape }
    }

    fn relu_avg_pool(x: &Planes) -> Planes {
        let mut values = cpu::pool::avg3x3_same(&x.values, x.shape);
        values.iter_mut().for_each(|v| *v = v.max(0.0));
        Planes { values, shape: x.shape }
    }

    fn cat(parts: Vec<Planes>) -> Planes {
        let first = parts[0].shape;
        let c = parts.iter().map(|p| p.shape.c).sum();
        let shape = Nchw::new(first.n, c, first.h, first.w);
        let mut values = Vec::with_capacity(shape.len());
        for b in 0..first.n {
            for p in &parts {
                let per_image = p.shape.c * p.shape.plane();
                values.extend_from_slice(&p.values[b * per_image..(b + 1) * per_image]);
            }
        }
        Planes { values, shape }
    }

    fn plane_means(x: Planes) -> Vec<f32> {
        // summed in f64: the planes are small, and the order differs from PyTorch's anyway
        x.values.chunks(x.shape.plane()).map(|p| (p.iter().map(|&v| v as f64).sum::<f64>() / p.len() as f64) as f32).collect()
    }
}

/// Activations as burn tensors, on any device.
pub struct Burn;

pub struct TensorWeights {
    weight: Tensor<4>,
    bias: Tensor<1>,
}

impl Engine for Burn {
    type Weights = TensorWeights;
    type Act = Tensor<4>;

    fn weights(weight: Vec<f32>, bias: Vec<f32>, shape: &ConvShape, device: &Device) -> TensorWeights {
        let co = shape.dims[0];
        TensorWeights {
            weight: Tensor::from_data(TensorData::new(weight, shape.dims), device),
            bias: Tensor::from_data(TensorData::new(bias, [co]), device),
        }
    }

    fn conv(w: &TensorWeights, shape: &ConvShape, x: &Tensor<4>, relu_after: bool) -> Tensor<4> {
        let options = burn::tensor::ops::ConvOptions::new([shape.stride; 2], shape.padding, [1, 1], 1);
        let y = burn::tensor::module::conv2d(x.clone(), w.weight.clone(), Some(w.bias.clone()), options);
        if relu_after { relu(y) } else { y }
    }

    fn max_pool(x: &Tensor<4>, stride: usize, padding: usize) -> Tensor<4> {
        let mut o = burn::tensor::ops::MaxPoolOptions::new([3, 3]);
        o.stride = [stride; 2];
        o.padding = [(padding, padding); 2];
        burn::tensor::module::max_pool2d(x.clone(), o)
    }

    fn relu_avg_pool(x: &Tensor<4>) -> Tensor<4> {
        let mut o = burn::tensor::ops::AvgPoolOptions::new([3, 3]);
        o.stride = [1, 1];
        o.padding = [(1, 1); 2];
        o.count_include_pad = false;
        relu(burn::tensor::module::avg_pool2d(x.clone(), o))
    }

    fn cat(parts: Vec<Tensor<4>>) -> Tensor<4> {
        Tensor::cat(parts, 1)
    }

    fn plane_means(x: Tensor<4>) -> Vec<f32> {
        let [n, c, _, _] = x.dims();
        x.mean_dim(3).mean_dim(2).reshape([n, c]).into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 features")
    }
}
