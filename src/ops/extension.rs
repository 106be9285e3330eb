//! The CPU kernels of [`super::cpu`] as a burn backend extension on flex,
//! with handwritten backward passes for autodiff.
//!
//! Only flex (and autodiff over flex) is listed: [`super`] sends tensors on
//! any other device to the plain composition of burn ops instead.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Backend, Flex, backend_extension};
use burn::backend::TensorMetadata;
use burn::backend::tensor::FloatTensor;
use burn::tensor::{DType, Shape, TensorData};
use burn_flex::FlexTensor;

use super::cpu::norm::Activation;
use super::cpu::{Geometry, Nchw, Products, blur, conv, norm, pad};

/// Fast CPU versions of the ops the CycleGAN networks spend their time in.
#[backend_extension(Flex, Autodiff)]
pub trait CpuKernels: Backend {
    /// Convolution without bias: `x` `[n, ci, h, w]`, `weight` `[co, ci, k, k]`.
    fn conv2d_fast(x: FloatTensor<Self>, weight: FloatTensor<Self>, stride: usize, padding: usize) -> FloatTensor<Self>;

    /// Transposed convolution without bias: `weight` `[ci, co, k, k]`.
    fn conv_transpose2d_fast(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: usize,
        padding: usize,
        output_padding: usize,
    ) -> FloatTensor<Self>;

    /// Reflection padding by `[top, bottom, left, right]`.
    fn reflect_pad_fast(x: FloatTensor<Self>, pads: [usize; 4]) -> FloatTensor<Self>;

    /// Instance norm without affine.
    fn instance_norm_fast(x: FloatTensor<Self>, eps: f64) -> FloatTensor<Self>;

    /// Instance norm without affine, then `act`: one op each way.
    fn instance_norm_act_fast(x: FloatTensor<Self>, eps: f64, act: Activation) -> FloatTensor<Self>;

    /// `act` alone (no norm before it).
    fn activation_fast(x: FloatTensor<Self>, act: Activation) -> FloatTensor<Self>;

    /// CUT's anti-aliased downsampling with the separable filter `taps`.
    fn blur_down_fast(x: FloatTensor<Self>, taps: [f32; 3]) -> FloatTensor<Self>;

    /// CUT's anti-aliased upsampling to twice the size.
    fn blur_up_fast(x: FloatTensor<Self>, taps: [f32; 4]) -> FloatTensor<Self>;
}

/// A flex tensor's contiguous values and NCHW shape.
fn values(t: &FlexTensor) -> (std::borrow::Cow<'_, [f32]>, Nchw) {
    let [n, c, h, w] = t.shape().dims::<4>();
    let shape = Nchw::new(n, c, h, w);
    match t.as_slice::<f32>() {
        Some(s) => (std::borrow::Cow::Borrowed(s), shape),
        None => (std::borrow::Cow::Owned(t.to_contiguous().as_slice::<f32>().expect("contiguous").to_vec()), shape),
    }
}

fn tensor(values: Vec<f32>, shape: Nchw) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.dims()))
}

fn weight_dims(t: &FlexTensor) -> [usize; 4] {
    t.shape().dims::<4>()
}

fn conv_forward(x: &FlexTensor, w: &FlexTensor, stride: usize, padding: usize) -> FlexTensor {
    let (xv, xs) = values(x);
    let (wv, _) = values(w);
    let [co, _, k, _] = weight_dims(w);
    let (y, ys) = conv::forward(&xv, xs, &wv, co, None, Geometry::new(k, stride, padding), super::products());
    tensor(y, ys)
}

/// The output shape of a transposed convolution.
fn transposed_shape(xs: Nchw, co: usize, k: usize, stride: usize, padding: usize, output_padding: usize) -> Nchw {
    let side = |len: usize| (len - 1) * stride + k + output_padding - 2 * padding;
    Nchw::new(xs.n, co, side(xs.h), side(xs.w))
}

fn conv_transpose_forward(x: &FlexTensor, w: &FlexTensor, stride: usize, padding: usize, output_padding: usize) -> FlexTensor {
    let (xv, xs) = values(x);
    let (wv, _) = values(w);
    let [_, co, k, _] = weight_dims(w);
    let ys = transposed_shape(xs, co, k, stride, padding, output_padding);
    // A transposed convolution is the input gradient of the convolution ys -> xs.
    let y = conv::backward_input(&xv, xs, &wv, ys, Geometry::new(k, stride, padding), super::products());
    tensor(y, ys)
}

fn pad_forward(x: &FlexTensor, pads: [usize; 4]) -> FlexTensor {
    let (xv, xs) = values(x);
    let (y, ys) = pad::forward(&xv, xs, pads);
    tensor(y, ys)
}

fn norm_forward(x: &FlexTensor, eps: f64) -> (FlexTensor, Vec<f32>) {
    let (xv, xs) = values(x);
    let (y, rstd) = norm::forward(&xv, xs.plane(), eps);
    (tensor(y, xs), rstd)
}

/// Which anti-aliased resampling, with its taps.
#[derive(Clone, Copy, Debug)]
enum Blur {
    Down([f32; 3]),
    Up([f32; 4]),
}

impl Blur {
    fn forward(self, x: &FlexTensor) -> FlexTensor {
        let (xv, xs) = values(x);
        let (y, ys) = match self {
            Blur::Down(taps) => blur::down_forward(&xv, xs, taps),
            Blur::Up(taps) => blur::up_forward(&xv, xs, taps),
        };
        tensor(y, ys)
    }
}

impl CpuKernels for Flex {
    fn conv2d_fast(x: FlexTensor, weight: FlexTensor, stride: usize, padding: usize) -> FlexTensor {
        conv_forward(&x, &weight, stride, padding)
    }

    fn conv_transpose2d_fast(x: FlexTensor, weight: FlexTensor, stride: usize, padding: usize, output_padding: usize) -> FlexTensor {
        conv_transpose_forward(&x, &weight, stride, padding, output_padding)
    }

    fn reflect_pad_fast(x: FlexTensor, pads: [usize; 4]) -> FlexTensor {
        pad_forward(&x, pads)
    }

    fn instance_norm_fast(x: FlexTensor, eps: f64) -> FlexTensor {
        norm_forward(&x, eps).0
    }

    fn instance_norm_act_fast(x: FlexTensor, eps: f64, act: Activation) -> FlexTensor {
        let (xv, xs) = values(&x);
        let (mut y, _) = norm::forward(&xv, xs.plane(), eps);
        norm::activate_in_place(&mut y, xs.plane(), act);
        tensor(y, xs)
    }

    fn activation_fast(x: FlexTensor, act: Activation) -> FlexTensor {
        let (xv, xs) = values(&x);
        tensor(norm::activation(&xv, xs.plane(), act), xs)
    }

    fn blur_down_fast(x: FlexTensor, taps: [f32; 3]) -> FlexTensor {
        Blur::Down(taps).forward(&x)
    }

    fn blur_up_fast(x: FlexTensor, taps: [f32; 4]) -> FlexTensor {
        Blur::Up(taps).forward(&x)
    }
}

/// The backward pass of a convolution, or (`transposed`) of a transposed one,
/// which is the input gradient of the convolution the other way round.
#[derive(Debug)]
struct ConvBackward {
    transposed: bool,
}

impl Backward<Flex, 2> for ConvBackward {
    /// input, weight, stride, padding
    type State = (FlexTensor, FlexTensor, usize, usize);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (x, w, stride, padding) = ops.state;
        let (gv, gs) = values(&grad);
        let (xv, xs) = values(&x);
        let (wv, _) = values(&w);
        let [w_out, _, k, _] = weight_dims(&w);
        let geometry = Geometry::new(k, stride, padding);
        if let Some(node) = node_x {
            let dx = if self.transposed {
                conv::forward(&gv, gs, &wv, w_out, None, geometry, Products::F32).0
            } else {
                conv::backward_input(&gv, gs, &wv, xs, geometry, Products::F32)
            };
            grads.register::<Flex>(node.id, tensor(dx, xs));
        }
        if let Some(node) = node_w {
            // A transposed convolution's weight belongs to the convolution gs -> xs.
            let dw = if self.transposed {
                conv::backward_weight(&gv, gs, &xv, xs, geometry)
            } else {
                conv::backward_weight(&xv, xs, &gv, gs, geometry)
            };
            grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(dw, weight_dims(&w))));
        }
    }
}

#[derive(Debug)]
struct PadBackward;

impl Backward<Flex, 1> for PadBackward {
    type State = [usize; 4];

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        if let Some(node) = node {
            let (gv, gs) = values(&grad);
            let (dx, xs) = pad::backward(&gv, gs, ops.state);
            grads.register::<Flex>(node.id, tensor(dx, xs));
        }
    }
}

/// The instance norm's backward; with an activation, of the norm followed by it.
#[derive(Debug)]
struct NormBackward {
    act: Option<Activation>,
}

impl Backward<Flex, 1> for NormBackward {
    /// the normalised output, 1 / std per plane
    type State = (FlexTensor, Vec<f32>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        if let Some(node) = node {
            let (y, rstd) = ops.state;
            let (gv, gs) = values(&grad);
            let (yv, _) = values(&y);
            let dx = match self.act {
                Some(act) => norm::backward_act(&gv, &yv, &rstd, gs.plane(), act),
                None => norm::backward(&gv, &yv, &rstd, gs.plane()),
            };
            grads.register::<Flex>(node.id, tensor(dx, gs));
        }
    }
}

/// An activation's backward: the sign of its output (its input's, for
/// ReLU and a positive slope) decides where the gradient passes. Keeping
/// the input instead kept the convolution output before it alive, which
/// burn's own op lets go: +45 MiB at the peak of a small training step.
#[derive(Debug)]
struct ActivationBackward(Activation);

impl Backward<Flex, 1> for ActivationBackward {
    /// the activation's output
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        if let Some(node) = node {
            let (gv, gs) = values(&grad);
            let (yv, _) = values(&ops.state);
            grads.register::<Flex>(node.id, tensor(norm::activation_backward(&gv, &yv, gs.plane(), self.0), gs));
        }
    }
}

/// The blurs are linear with fixed filters: the backward pass needs only the input's shape.
#[derive(Debug)]
struct BlurBackward(Blur);

impl Backward<Flex, 1> for BlurBackward {
    /// the input's shape
    type State = Nchw;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        if let Some(node) = node {
            let xs = ops.state;
            let (gv, gs) = values(&grad);
            let dx = match self.0 {
                Blur::Down(taps) => blur::down_backward(&gv, gs, xs, taps),
                Blur::Up(taps) => blur::up_backward(&gv, gs, xs, taps),
            };
            grads.register::<Flex>(node.id, tensor(dx, xs));
        }
    }
}

fn blur_tracked<C: CheckpointStrategy>(x: AdTensor, blur: Blur) -> AdTensor {
    let [n, c, h, w] = x.primitive().shape().dims::<4>();
    match BlurBackward(blur).prepare::<C>([x.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(Nchw::new(n, c, h, w), blur.forward(x.primitive())),
        OpsKind::UnTracked(prep) => prep.finish(blur.forward(x.primitive())),
    }
}

type AdTensor = FloatTensor<Autodiff<Flex>>;

impl<C: CheckpointStrategy> CpuKernels for Autodiff<Flex, C> {
    fn conv2d_fast(x: AdTensor, weight: AdTensor, stride: usize, padding: usize) -> AdTensor {
        match (ConvBackward { transposed: false }).prepare::<C>([x.node(), weight.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let out = conv_forward(x.primitive(), weight.primitive(), stride, padding);
                prep.finish((x.into_primitive(), weight.into_primitive(), stride, padding), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(conv_forward(x.primitive(), weight.primitive(), stride, padding)),
        }
    }

    fn conv_transpose2d_fast(x: AdTensor, weight: AdTensor, stride: usize, padding: usize, output_padding: usize) -> AdTensor {
        let forward = |x: &FlexTensor, w: &FlexTensor| conv_transpose_forward(x, w, stride, padding, output_padding);
        match (ConvBackward { transposed: true }).prepare::<C>([x.node(), weight.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let out = forward(x.primitive(), weight.primitive());
                prep.finish((x.into_primitive(), weight.into_primitive(), stride, padding), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(x.primitive(), weight.primitive())),
        }
    }

    fn reflect_pad_fast(x: AdTensor, pads: [usize; 4]) -> AdTensor {
        match PadBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(pads, pad_forward(x.primitive(), pads)),
            OpsKind::UnTracked(prep) => prep.finish(pad_forward(x.primitive(), pads)),
        }
    }

    fn instance_norm_fast(x: AdTensor, eps: f64) -> AdTensor {
        let (y, rstd) = norm_forward(x.primitive(), eps);
        match (NormBackward { act: None }).prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((y.clone(), rstd), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn instance_norm_act_fast(x: AdTensor, eps: f64, act: Activation) -> AdTensor {
        match (NormBackward { act: Some(act) }).prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (xv, xs) = values(x.primitive());
                let (y, a, rstd) = norm::forward_act(&xv, xs.plane(), eps, act);
                prep.finish((tensor(y, xs), rstd), tensor(a, xs))
            }
            OpsKind::UnTracked(prep) => prep.finish(<Flex as CpuKernels>::instance_norm_act_fast(x.primitive().clone(), eps, act)),
        }
    }

    fn activation_fast(x: AdTensor, act: Activation) -> AdTensor {
        let y = <Flex as CpuKernels>::activation_fast(x.primitive().clone(), act);
        match ActivationBackward(act).prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(y.clone(), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn blur_down_fast(x: AdTensor, taps: [f32; 3]) -> AdTensor {
        blur_tracked::<C>(x, Blur::Down(taps))
    }

    fn blur_up_fast(x: AdTensor, taps: [f32; 4]) -> AdTensor {
        blur_tracked::<C>(x, Blur::Up(taps))
    }
}

/// Whether the kernels can take a tensor of this dtype and shape.
pub fn supports(dtype: DType, shape: &Shape) -> bool {
    dtype == DType::F32 && shape.num_dims() == 4
}
