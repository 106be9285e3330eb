//! The tensor operations the networks spend their time in: convolution,
//! transposed convolution, reflection padding, instance norm and CUT's
//! anti-aliased down- and upsampling.
//!
//! Each has one entry point here. On the CPU backend (flex) it runs the
//! kernels of [`cpu`] through a burn backend extension with handwritten
//! backward passes ([`extension`]); on every other backend, and with
//! `CYCLEGAN_KERNELS=burn` in the environment, it runs the plain composition
//! of burn ops ([`composite`]), which is also what the kernels are tested
//! against.

pub mod composite;
pub(crate) mod cpu;
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

pub use cpu::Products;
pub use cpu::norm::Activation;

thread_local! {
    /// What the CPU kernels' convolution products compute in on this thread.
    static PRODUCTS: std::cell::Cell<Products> = const { std::cell::Cell::new(Products::F32) };
}

/// Run `f` with the forward convolutions (and transposed convolutions) on
/// the CPU computing their matrix products in `products`: the kernels are
/// called on the thread that runs the ops, so a scope is enough, and no
/// network needs to carry the setting. Gradients are always f32.
pub fn with_products<R>(products: Products, f: impl FnOnce() -> R) -> R {
    struct Restore(Products);
    impl Drop for Restore {
        fn drop(&mut self) {
            PRODUCTS.with(|p| p.set(self.0));
        }
    }
    let _restore = Restore(PRODUCTS.with(|p| p.replace(products)));
    f()
}

/// What [`with_products`] set on this thread (f32 outside it).
pub(crate) fn products() -> Products {
    PRODUCTS.with(|p| p.get())
}

/// Whether `x` lives on flex (with or without autodiff) in a form the kernels take.
fn fast(x: &Tensor<4>) -> bool {
    if !fast_kernels_enabled() || !extension::supports(x.dtype(), &x.shape()) {
        return false;
    }
    on_cpu(&x.device())
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

/// Whether `device` is the CPU (flex, with or without autodiff).
pub(crate) fn on_cpu(device: &burn::tensor::Device) -> bool {
    match device.as_dispatch() {
        DispatchDevice::Flex(_) => true,
        DispatchDevice::Autodiff(inner) => matches!(**inner, DispatchDevice::Flex(_)),
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

/// Whether inference on `device` can run on the CPU kernels' plain
/// buffers directly (flex without autodiff, and the kernels not switched off).
pub(crate) fn raw_kernels(device: &burn::tensor::Device) -> bool {
    fast_kernels_enabled() && matches!(device.as_dispatch(), DispatchDevice::Flex(_))
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

/// The 2-D filter `taps^T taps` that [`blur_down`] and [`blur_up`] apply, row-major
/// (the official `filt` buffer's kernel; the reference path convolves with it).
pub fn blur_filter(taps: &[f32]) -> Vec<f32> {
    taps.iter().flat_map(|a| taps.iter().map(move |b| a * b)).collect()
}

/// Anti-aliased downsampling: reflection pad by 1, the 3x3 filter
/// `taps^T taps` on every channel alone, stride 2 (a depthwise convolution).
pub fn blur_down(x: Tensor<4>, taps: [f32; 3]) -> Tensor<4> {
    if !fast(&x) {
        return composite::blur_down(x, taps);
    }
    Tensor::from_dispatch(<Dispatch as CpuKernels>::blur_down_fast(x.into_dispatch(), taps))
}

/// Anti-aliased upsampling to twice the size: replication pad by 1, the
/// stride-2 transposed convolution with the 4x4 filter `taps^T taps` on
/// every channel alone, cropped by one pixel on each side.
pub fn blur_up(x: Tensor<4>, taps: [f32; 4]) -> Tensor<4> {
    if !fast(&x) {
        return composite::blur_up(x, taps);
    }
    Tensor::from_dispatch(<Dispatch as CpuKernels>::blur_up_fast(x.into_dispatch(), taps))
}

/// Instance normalisation without affine: each `(n, c)` plane to zero mean and
/// unit (biased) variance, `eps` added to the variance.
pub fn instance_norm(x: Tensor<4>, eps: f64) -> Tensor<4> {
    if !fast(&x) {
        return composite::instance_norm(x, eps);
    }
    Tensor::from_dispatch(<Dispatch as CpuKernels>::instance_norm_fast(x.into_dispatch(), eps))
}

/// [`instance_norm`] followed by `act`; on the CPU one op each way, not two
/// passes over the activations.
pub fn instance_norm_act(x: Tensor<4>, eps: f64, act: Activation) -> Tensor<4> {
    if !fast(&x) {
        return composite::activation(composite::instance_norm(x, eps), act);
    }
    Tensor::from_dispatch(<Dispatch as CpuKernels>::instance_norm_act_fast(x.into_dispatch(), eps, act))
}

/// `act(x)` with no norm before it; on the CPU one op each way. A leaky
/// ReLU's slope must be positive (its backward pass reads the output's sign).
pub fn activation(x: Tensor<4>, act: Activation) -> Tensor<4> {
    assert!(!matches!(act, Activation::LeakyRelu(s) if s <= 0.0), "a leaky ReLU's slope must be positive");
    if !fast(&x) {
        return composite::activation(x, act);
    }
    Tensor::from_dispatch(<Dispatch as CpuKernels>::activation_fast(x.into_dispatch(), act))
}

/// The scalars of one Adam step (PyTorch's `torch.optim.Adam`), in the f32
/// its element-wise operations compute in.
#[derive(Clone, Copy, Debug)]
pub struct AdamCoefficients {
    pub one_minus_beta1: f32,
    pub beta2: f32,
    pub one_minus_beta2: f32,
    /// `sqrt(1 - beta2^t)`
    pub bias2_sqrt: f32,
    pub eps: f32,
    /// `lr / (1 - beta1^t)`
    pub step_size: f32,
}

/// One Adam step on a flattened parameter: the parameter, first and second
/// moment after it, in that order. On the CPU (plain flex) one parallel
/// pass updating the three in place where nothing else holds them
/// ([`cpu::adam`]); elsewhere the composition of burn ops.
pub fn adam_step(param: Tensor<1>, grad: Tensor<1>, m: Tensor<1>, v: Tensor<1>, c: AdamCoefficients) -> [Tensor<1>; 3] {
    let device = param.device();
    if !raw_kernels(&device) || param.dtype() != burn::tensor::DType::F32 {
        return composite::adam_step(param, grad, m, v, c);
    }
    let n = param.dims()[0];
    // into_data hands over a tensor's buffer without a copy when nothing
    // else holds it (the moments, and the parameter once its graph is gone)
    let values = |t: Tensor<1>| t.into_data().try_into_vec::<f32>().expect("f32 values");
    let (mut p, g, mut mv, mut vv) = (values(param), values(grad), values(m), values(v));
    cpu::adam::step(&mut p, &g, &mut mv, &mut vv, c);
    [p, mv, vv].map(|x| Tensor::from_data(burn::tensor::TensorData::new(x, [n]), &device))
}

#[cfg(test)]
mod tests {
    //! Each fast op against the plain composition of burn ops: values and gradients.

    use super::*;
    use burn::tensor::{Device, Distribution, TensorData};

    fn rand<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::random(shape, Distribution::Uniform(-1.0, 1.0), device)
    }

    fn assert_close<const D: usize>(what: &str, got: Tensor<D>, want: Tensor<D>) {
        let (g, w): (Vec<f32>, Vec<f32>) = (
            got.into_data().convert::<f32>().try_into_vec().unwrap(),
            want.into_data().convert::<f32>().try_into_vec().unwrap(),
        );
        let num: f64 = g.iter().zip(&w).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum();
        let den: f64 = w.iter().map(|b| (*b as f64).powi(2)).sum();
        let rel = (num / den.max(1e-30)).sqrt();
        assert!(rel < 1e-5, "{what}: relative error {rel:.2e}");
    }

    /// Run `f` on fresh tracked copies of `inputs`, return the output and the input gradients of `sum(out * probe)`.
    fn value_and_grads(
        f: &dyn Fn(Tensor<4>, Tensor<4>) -> Tensor<4>,
        x: &TensorData,
        w: &TensorData,
        device: &Device,
    ) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
        let x = Tensor::<4>::from_data(x.clone(), device).require_grad();
        let w = Tensor::<4>::from_data(w.clone(), device).require_grad();
        let y = f(x.clone(), w.clone());
        let probe = Tensor::<4>::from_data(
            TensorData::new((0..y.shape().num_elements()).map(|i| ((i * 37) % 17) as f32 / 8.0 - 1.0).collect::<Vec<_>>(), y.shape()),
            device,
        );
        let grads = (y.clone() * probe).sum().backward();
        (y.inner(), x.grad(&grads).unwrap(), w.grad(&grads).unwrap())
    }

    fn compare(name: &str, fast: &dyn Fn(Tensor<4>, Tensor<4>) -> Tensor<4>, slow: &dyn Fn(Tensor<4>, Tensor<4>) -> Tensor<4>, xs: [usize; 4], ws: [usize; 4]) {
        let device = Device::flex().autodiff();
        let x = rand(xs, &device).into_data();
        let w = rand(ws, &device).into_data();
        let (yf, dxf, dwf) = value_and_grads(fast, &x, &w, &device);
        let (ys, dxs, dws) = value_and_grads(slow, &x, &w, &device);
        assert_close(&format!("{name}: output"), yf, ys);
        assert_close(&format!("{name}: input gradient"), dxf, dxs);
        assert_close(&format!("{name}: weight gradient"), dwf, dws);
    }

    /// The one-pass CPU Adam against burn's ops: the same bits, steps 1 and
    /// 5 (bias corrections far from one and near it), zeros and a gradient
    /// of zero among the values.
    #[test]
    fn adam_step_matches_burn_bit_for_bit() {
        let device = Device::flex();
        if !raw_kernels(&device) {
            return; // CYCLEGAN_KERNELS=burn: both sides would be burn's ops
        }
        let n = 10_007; // several parallel chunks and a short last one
        let mut values = rand([n], &device).into_data().try_to_vec::<f32>().unwrap();
        values[..3].copy_from_slice(&[0.0, -0.0, 1e-30]);
        let param = Tensor::<1>::from_data(TensorData::new(values, [n]), &device);
        let grad = rand([n], &device) * 2.0 - 1.0;
        let grad = grad.clone().mask_fill(grad.lower_elem(-0.9), 0.0);
        let (mut fast, mut slow) = ([param.clone(), param.zeros_like(), param.zeros_like()], [param.clone(), param.zeros_like(), param.zeros_like()]);
        for t in 1..=5 {
            let c = AdamCoefficients {
                one_minus_beta1: 0.5,
                beta2: 0.999,
                one_minus_beta2: (1.0 - 0.999f64) as f32,
                bias2_sqrt: (1.0 - 0.999f64.powi(t)).sqrt() as f32,
                eps: 1e-8,
                step_size: (2e-4 / (1.0 - 0.5f64.powi(t))) as f32,
            };
            let [p, m, v] = fast;
            fast = adam_step(p, grad.clone() * t as f32, m, v, c);
            let [p, m, v] = slow;
            slow = composite::adam_step(p, grad.clone() * t as f32, m, v, c);
            for (what, a, b) in [("param", &fast[0], &slow[0]), ("exp_avg", &fast[1], &slow[1]), ("exp_avg_sq", &fast[2], &slow[2])] {
                let (a, b) = (a.to_data().try_to_vec::<f32>().unwrap(), b.to_data().try_to_vec::<f32>().unwrap());
                let differ = a.iter().zip(&b).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
                assert_eq!(differ, 0, "step {t}: {what} differs in {differ} of {n} values");
            }
        }
        assert!(fast[0].clone().sub(param).abs().max().into_scalar::<f32>() > 0.0, "the parameter moved");
    }

    #[test]
    fn convolutions_match_burn() {
        for (k, stride, pad, ci, co, size) in [(3, 1, 0, 32, 24, 11), (7, 1, 0, 3, 16, 20), (7, 1, 3, 16, 3, 13), (3, 2, 1, 8, 16, 15), (4, 2, 1, 3, 8, 16), (4, 1, 1, 16, 1, 9)] {
            compare(
                &format!("conv {k}x{k} s{stride} p{pad} {ci}->{co}"),
                &|x, w| conv2d(x, w, None, stride, pad),
                &|x, w| composite::conv2d(x, w, None, stride, pad),
                [2, ci, size, size],
                [co, ci, k, k],
            );
        }
        for (k, stride, pad, out_pad, ci, co, size) in [(3, 2, 1, 1, 32, 16, 8), (4, 2, 1, 0, 8, 3, 7), (4, 2, 1, 0, 16, 16, 4)] {
            compare(
                &format!("conv transpose {k}x{k} s{stride} {ci}->{co}"),
                &|x, w| conv_transpose2d(x, w, None, stride, pad, out_pad),
                &|x, w| composite::conv_transpose2d(x, w, None, stride, pad, out_pad),
                [2, ci, size, size],
                [ci, co, k, k],
            );
        }
    }

    #[test]
    fn pad_norm_and_activations_match_burn() {
        // the weight input is unused: these ops take one tensor (it multiplies in so it gets a gradient)
        let scale = |w: Tensor<4>| w.mean().reshape([1, 1, 1, 1]);
        compare(
            "reflect pad",
            &|x, w| reflect_pad(x, [1, 3, 2, 0]) * scale(w),
            &|x, w| composite::reflect_pad(x, [1, 3, 2, 0]) * scale(w),
            [2, 3, 7, 6],
            [1, 1, 1, 2],
        );
        compare(
            "instance norm",
            &|x, w| instance_norm(x * 3.0 + 1.0, 1e-5) * scale(w),
            &|x, w| composite::instance_norm(x * 3.0 + 1.0, 1e-5) * scale(w),
            [2, 4, 9, 7],
            [1, 1, 1, 2],
        );
        for act in [Activation::Relu, Activation::LeakyRelu(0.2)] {
            compare(
                &format!("{act:?} alone"),
                &|x, w| activation(x, act) * scale(w),
                &|x, w| composite::activation(x, act) * scale(w),
                [2, 4, 9, 7],
                [1, 1, 1, 2],
            );
            compare(
                &format!("instance norm and {act:?}"),
                &|x, w| instance_norm_act(x * 3.0 + 1.0, 1e-5, act) * scale(w),
                &|x, w| composite::activation(composite::instance_norm(x * 3.0 + 1.0, 1e-5), act) * scale(w),
                [2, 4, 9, 7],
                [1, 1, 1, 2],
            );
        }
    }

    #[test]
    fn blurs_match_burn() {
        // The blurs have no weights: the second input is a factor of the output's
        // shape, so its gradient is checked element by element (one scalar factor
        // gave a single cancelling sum that missed 1e-5 in about one run in twenty).
        let (down, up) = ([0.25, 0.5, 0.25], [0.25, 0.75, 0.75, 0.25]);
        for [h, w] in [[9, 6], [2, 3], [16, 16]] {
            compare(
                &format!("blur down {h}x{w}"),
                &|x, k| blur_down(x, down) * k,
                &|x, k| composite::blur_down(x, down) * k,
                [2, 3, h, w],
                [2, 3, (h - 1) / 2 + 1, (w - 1) / 2 + 1],
            );
            compare(
                &format!("blur up {h}x{w}"),
                &|x, k| blur_up(x, up) * k,
                &|x, k| composite::blur_up(x, up) * k,
                [2, 3, h, w],
                [2, 3, 2 * h, 2 * w],
            );
        }
    }
}
