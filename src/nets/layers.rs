//! The layers the CycleGAN networks are built from, each exposing its tensors
//! under PyTorch's names (`weight`, `bias`, `running_mean`, ...).
//!
//! Training mode (batch statistics, dropout) is on exactly when the input
//! lives on an autodiff device, as in burn's own layers: a network made for
//! inference with `Module::valid()` always runs in evaluation mode.

use burn::module::{Module, Param, RunningState};
use burn::tensor::{DType, Device, Distribution, FloatDType, Tensor};

use super::init::Initializer;
use super::named::{NamedTensors, Slot, SlotRole};
use super::{NormKind, key};
use crate::ops;
use crate::rng::Rng;

/// `nn.Conv2d` with zero padding (reflection padding is a separate layer, as in PyTorch).
#[derive(Module, Debug)]
pub struct Conv2d {
    /// `[out, in, k, k]`
    pub weight: Param<Tensor<4>>,
    pub bias: Option<Param<Tensor<1>>>,
    pub stride: usize,
    pub padding: usize,
}

impl Conv2d {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        channels: [usize; 2],
        kernel: usize,
        stride: usize,
        padding: usize,
        bias: bool,
        init: &Initializer,
        rng: &mut Rng,
        device: &Device,
    ) -> Self {
        let [c_in, c_out] = channels;
        let weight = init.conv_weight([c_out, c_in, kernel, kernel], rng, device);
        let bias = bias.then(|| init.bias(c_out, device));
        Self { weight, bias, stride, padding }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        ops::conv2d(x, self.weight.val(), self.bias.as_ref().map(|b| b.val()), self.stride, self.padding)
    }

    /// The output and its directional derivative along `dx` (the conv is affine:
    /// the derivative is the conv without bias).
    pub fn forward_tangent(&self, x: Tensor<4>, dx: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        (self.forward(x), ops::conv2d(dx, self.weight.val(), None, self.stride, self.padding))
    }
}

impl NamedTensors for Conv2d {
    fn visit_named(&mut self, prefix: &str, f: &mut dyn FnMut(String, Slot<'_>)) {
        f(key(prefix, "weight"), Slot::Weight(&mut self.weight));
        if let Some(bias) = &mut self.bias {
            f(key(prefix, "bias"), Slot::Vector(bias, SlotRole::Bias));
        }
    }
}

/// `nn.ConvTranspose2d`; the weight keeps PyTorch's `[in, out, k, k]` layout, as burn's does.
#[derive(Module, Debug)]
pub struct ConvTranspose2d {
    /// `[in, out, k, k]`
    pub weight: Param<Tensor<4>>,
    pub bias: Option<Param<Tensor<1>>>,
    pub stride: usize,
    pub padding: usize,
    pub output_padding: usize,
}

impl ConvTranspose2d {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        channels: [usize; 2],
        kernel: usize,
        stride: usize,
        padding: usize,
        output_padding: usize,
        bias: bool,
        init: &Initializer,
        rng: &mut Rng,
        device: &Device,
    ) -> Self {
        let [c_in, c_out] = channels;
        let weight = init.conv_weight([c_in, c_out, kernel, kernel], rng, device);
        let bias = bias.then(|| init.bias(c_out, device));
        Self { weight, bias, stride, padding, output_padding }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let bias = self.bias.as_ref().map(|b| b.val());
        ops::conv_transpose2d(x, self.weight.val(), bias, self.stride, self.padding, self.output_padding)
    }
}

impl NamedTensors for ConvTranspose2d {
    fn visit_named(&mut self, prefix: &str, f: &mut dyn FnMut(String, Slot<'_>)) {
        f(key(prefix, "weight"), Slot::Weight(&mut self.weight));
        if let Some(bias) = &mut self.bias {
            f(key(prefix, "bias"), Slot::Vector(bias, SlotRole::Bias));
        }
    }
}

/// `nn.Linear`: `y = x W^T + b`, `W` stored `[out, in]`.
#[derive(Module, Debug)]
pub struct Linear {
    pub weight: Param<Tensor<2>>,
    pub bias: Param<Tensor<1>>,
}

impl Linear {
    pub fn new([c_in, c_out]: [usize; 2], init: &Initializer, rng: &mut Rng, device: &Device) -> Self {
        Self { weight: init.linear_weight([c_out, c_in], rng, device), bias: init.bias(c_out, device) }
    }

    /// Rows of `x` `[n, in]` to `[n, out]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        x.matmul(self.weight.val().transpose()) + self.bias.val().unsqueeze_dim(0)
    }
}

impl NamedTensors for Linear {
    fn visit_named(&mut self, prefix: &str, f: &mut dyn FnMut(String, Slot<'_>)) {
        f(key(prefix, "weight"), Slot::Matrix(&mut self.weight));
        f(key(prefix, "bias"), Slot::Vector(&mut self.bias, SlotRole::Bias));
    }
}

/// PyTorch's default `eps` for both instance and batch norm.
pub const NORM_EPS: f64 = 1e-5;
/// PyTorch's default batch-norm momentum for the running statistics.
const BATCH_NORM_MOMENTUM: f64 = 0.1;

/// A learned per-channel scale and shift (`weight`, `bias`).
#[derive(Module, Debug)]
pub struct Affine {
    pub weight: Param<Tensor<1>>,
    pub bias: Param<Tensor<1>>,
}

/// Batch norm's running statistics (`running_mean`, `running_var`). Read them
/// with `value_sync()`: burn's `RunningState` holds updates back until then.
#[derive(Module, Debug)]
pub struct RunningStats {
    pub mean: RunningState<Tensor<1>>,
    pub var: RunningState<Tensor<1>>,
}

/// One normalisation layer of the kind chosen by `--norm`.
#[derive(Module, Debug)]
pub struct Norm {
    #[module(skip)]
    pub kind: NormKind,
    pub affine: Option<Affine>,
    pub running: Option<RunningStats>,
}

impl Norm {
    pub fn new(kind: NormKind, channels: usize, init: &Initializer, rng: &mut Rng, device: &Device) -> Self {
        let affine = match kind {
            NormKind::InstanceAffine | NormKind::Batch => Some(Affine {
                weight: init.norm_weight(channels, rng, device),
                bias: Param::from_tensor(Tensor::zeros([channels], device)),
            }),
            NormKind::Instance | NormKind::None => None,
        };
        let running = (kind == NormKind::Batch).then(|| RunningStats {
            mean: RunningState::new(Tensor::zeros([channels], device)),
            var: RunningState::new(Tensor::ones([channels], device)),
        });
        Self { kind, affine, running }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_with(x, &mut NormStats::PerImage)
    }

    /// The forward pass with instance-norm statistics from `stats` (see [`NormStats`]).
    pub fn forward_with(&self, x: Tensor<4>, stats: &mut NormStats) -> Tensor<4> {
        let y = match self.kind {
            NormKind::None => return x,
            NormKind::Instance | NormKind::InstanceAffine => stats.instance_norm(x),
            NormKind::Batch => self.batch_norm(x),
        };
        match &self.affine {
            Some(affine) => {
                let c = affine.weight.dims()[0];
                y * affine.weight.val().reshape([1, c, 1, 1]) + affine.bias.val().reshape([1, c, 1, 1])
            }
            None => y,
        }
    }

    /// `relu(self.forward_with(x, stats))`: for instance norm without affine
    /// on each image's own statistics, one op ([`ops::instance_norm_act`]).
    pub fn forward_relu_with(&self, x: Tensor<4>, stats: &mut NormStats) -> Tensor<4> {
        if self.fuses_activation() && matches!(stats, NormStats::PerImage) {
            return ops::instance_norm_act(x, NORM_EPS, ops::Activation::Relu);
        }
        ops::activation(self.forward_with(x, stats), ops::Activation::Relu)
    }

    /// `leaky_relu(self.forward(x), slope)`, one op where [`Self::forward_relu_with`] is.
    pub fn forward_leaky_relu(&self, x: Tensor<4>, slope: f64) -> Tensor<4> {
        if self.fuses_activation() {
            return ops::instance_norm_act(x, NORM_EPS, ops::Activation::LeakyRelu(slope as f32));
        }
        ops::activation(self.forward(x), ops::Activation::LeakyRelu(slope as f32))
    }

    /// Whether the norm and a following activation can be one op: instance norm without affine.
    fn fuses_activation(&self) -> bool {
        matches!(self.kind, NormKind::Instance) && self.affine.is_none()
    }

    /// The output and its directional derivative along `dx`. The running
    /// statistics are not updated.
    pub fn forward_tangent(&self, x: Tensor<4>, dx: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let [n, c, h, w] = x.dims();
        let (y, dy) = match self.kind {
            NormKind::None => return (x, dx),
            // y = (x - m) / s with m, s over each plane (instance) or each channel (batch):
            // dy = (dx - mean(dx)) / s - (x - m) * mean((x - m) dx) / s^3
            NormKind::Instance | NormKind::InstanceAffine => {
                let flat = x.reshape([n, c, h * w]);
                let dflat = dx.reshape([n, c, h * w]);
                let (y, dy) = normalize_tangent(flat, dflat, 2);
                (y.reshape([n, c, h, w]), dy.reshape([n, c, h, w]))
            }
            NormKind::Batch if x.device().is_autodiff() => {
                let flat = x.swap_dims(0, 1).reshape([c, n * h * w]);
                let dflat = dx.swap_dims(0, 1).reshape([c, n * h * w]);
                let (y, dy) = normalize_tangent(flat, dflat, 1);
                (y.reshape([c, n, h, w]).swap_dims(0, 1), dy.reshape([c, n, h, w]).swap_dims(0, 1))
            }
            NormKind::Batch => {
                let running = self.running.as_ref().expect("batch norm has running statistics");
                let s = (running.var.value_sync().reshape([1, c, 1, 1]) + NORM_EPS).sqrt();
                (self.batch_norm(x), dx / s)
            }
        };
        match &self.affine {
            Some(affine) => {
                let g = affine.weight.val().reshape([1, c, 1, 1]);
                (y * g.clone() + affine.bias.val().reshape([1, c, 1, 1]), dy * g)
            }
            None => (y, dy),
        }
    }

    /// Normalise with batch statistics while training (updating the running
    /// ones as PyTorch does, with the unbiased variance), with the running
    /// statistics otherwise. Returns the normalised input before the affine.
    fn batch_norm(&self, x: Tensor<4>) -> Tensor<4> {
        let running = self.running.as_ref().expect("batch norm has running statistics");
        let [n, c, h, w] = x.dims();
        if x.device().is_autodiff() {
            let flat = x.clone().swap_dims(0, 1).reshape([c, n * h * w]);
            let (var, mean) = flat.var_mean_bias(1);
            let count = (n * h * w) as f64;
            let unbiased = var.clone().detach().reshape([c]) * (count / (count - 1.0).max(1.0));
            let m = BATCH_NORM_MOMENTUM;
            running.mean.update(running.mean.value_sync() * (1.0 - m) + mean.clone().detach().reshape([c]) * m);
            running.var.update(running.var.value_sync() * (1.0 - m) + unbiased * m);
            let mean = mean.reshape([1, c, 1, 1]);
            let var = var.reshape([1, c, 1, 1]);
            (x - mean) / (var + NORM_EPS).sqrt()
        } else {
            let mean = running.mean.value_sync().reshape([1, c, 1, 1]);
            let var = running.var.value_sync().reshape([1, c, 1, 1]);
            (x - mean) / (var + NORM_EPS).sqrt()
        }
    }
}

impl NamedTensors for Norm {
    fn visit_named(&mut self, prefix: &str, f: &mut dyn FnMut(String, Slot<'_>)) {
        if let Some(affine) = &mut self.affine {
            f(key(prefix, "weight"), Slot::Vector(&mut affine.weight, SlotRole::NormWeight));
            f(key(prefix, "bias"), Slot::Vector(&mut affine.bias, SlotRole::NormBias));
        }
        if let Some(running) = &mut self.running {
            f(key(prefix, "running_mean"), Slot::Running(&mut running.mean));
            f(key(prefix, "running_var"), Slot::Running(&mut running.var));
            f(key(prefix, "num_batches_tracked"), Slot::Counter);
        }
    }
}

/// Where instance norms take their statistics from. Translating a large
/// image tile by tile must not normalise each tile by its own statistics
/// (the tiles would disagree, and seams would show): the statistics of the
/// whole image are recorded once, then applied to every tile.
pub enum NormStats {
    /// Each image's own statistics: the network as trained.
    PerImage,
    /// Each image's own statistics, recorded (mean and variance per channel,
    /// in the order the norms run; batch of one).
    Record(Vec<[Tensor<1>; 2]>),
    /// Recorded statistics, used in the same order instead of the input's own.
    Apply { stats: Vec<[Tensor<1>; 2]>, next: usize },
}

impl NormStats {
    fn instance_norm(&mut self, x: Tensor<4>) -> Tensor<4> {
        let dtype = x.dtype();
        if !matches!(self, NormStats::PerImage) && matches!(dtype, DType::F16 | DType::BF16) {
            // statistics of half-precision data are taken in f32 (sums of squares overflow f16)
            return self.instance_norm(x.cast(FloatDType::F32)).cast(FloatDType::from(dtype));
        }
        let [n, c, h, w] = x.dims();
        let normalize = |x: Tensor<4>, mean: Tensor<1>, var: Tensor<1>| {
            (x - mean.reshape([1, c, 1, 1])) / (var.reshape([1, c, 1, 1]) + NORM_EPS).sqrt()
        };
        match self {
            NormStats::PerImage => ops::instance_norm(x, NORM_EPS),
            NormStats::Record(recorded) => {
                assert_eq!(n, 1, "statistics are recorded for one image");
                let (var, mean) = x.clone().reshape([c, h * w]).var_mean_bias(1);
                let (mean, var) = (mean.reshape([c]), var.reshape([c]));
                recorded.push([mean.clone(), var.clone()]);
                normalize(x, mean, var)
            }
            NormStats::Apply { stats, next } => {
                let [mean, var] = stats.get(*next).expect("as many statistics as instance norms").clone();
                *next += 1;
                normalize(x, mean, var)
            }
        }
    }
}

/// Zero mean, unit variance along `dim`, and the derivative of that along `dx`.
fn normalize_tangent<const D: usize>(x: Tensor<D>, dx: Tensor<D>, dim: usize) -> (Tensor<D>, Tensor<D>) {
    let (var, mean) = x.clone().var_mean_bias(dim);
    let s = (var + NORM_EPS).sqrt();
    let xc = x - mean;
    let cov = (xc.clone() * dx.clone()).mean_dim(dim);
    let dy = (dx.clone() - dx.mean_dim(dim)) / s.clone() - xc.clone() * cov / s.clone().powi_scalar(3);
    (xc / s, dy)
}

/// LeakyReLU and its derivative along `dx` (the slope where the input is negative).
pub fn leaky_relu_tangent(x: Tensor<4>, dx: Tensor<4>, slope: f64) -> (Tensor<4>, Tensor<4>) {
    let negative = x.clone().lower_elem(0.0);
    let dy = dx.clone().mask_where(negative, dx * slope);
    (burn::tensor::activation::leaky_relu(x, slope), dy)
}

/// `nn.Dropout(0.5)`: active only while training.
#[derive(Module, Debug)]
pub struct Dropout {
    pub enabled: bool,
}

impl Dropout {
    const P: f64 = 0.5;

    /// Masks come from the device's random generator, which training reseeds
    /// every iteration so that a resumed run draws the same masks.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if !self.enabled || !x.device().is_autodiff() {
            return x;
        }
        let keep = Tensor::<4>::random(x.shape(), Distribution::Bernoulli(1.0 - Self::P), &x.device());
        x * keep / (1.0 - Self::P)
    }
}

/// Reflection padding by `p` on every side (`nn.ReflectionPad2d(p)`).
pub fn reflect_pad(x: Tensor<4>, p: usize) -> Tensor<4> {
    ops::reflect_pad(x, [p, p, p, p])
}
