//! The CycleGAN objective (paper section 3, official `GANLoss` and
//! `cal_gradient_penalty`):
//!
//! - adversarial: LSGAN (mean squared error to 1 for real, 0 for fake, the
//!   paper's choice), vanilla (binary cross-entropy on logits), or WGAN-GP
//!   (mean critic score, with a gradient penalty on the discriminator);
//! - cycle: L1(G_B(G_A(a)), a) * lambda_A and the B side (paper eq. 2);
//! - identity: L1(G_A(b), b) * lambda_B * lambda_identity and the A side
//!   (paper section 5.2; helps keep colours).

use burn::tensor::activation::relu;
use burn::tensor::{Tensor, TensorData};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use crate::nets::Discriminator;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum GanMode {
    /// Least squares (the CycleGAN default).
    Lsgan,
    /// Binary cross-entropy on the discriminator's logits (the original GAN).
    Vanilla,
    /// Wasserstein loss with gradient penalty.
    Wgangp,
}

/// Penalty weight and target gradient norm of WGAN-GP (the official defaults).
pub const GP_LAMBDA: f64 = 10.0;
const GP_TARGET: f64 = 1.0;

impl GanMode {
    /// The adversarial loss of discriminator outputs `pred` against "real" or "fake".
    pub fn loss(self, pred: Tensor<4>, target_is_real: bool) -> Tensor<1> {
        match self {
            GanMode::Lsgan => {
                let target = if target_is_real { 1.0 } else { 0.0 };
                (pred - target).square().mean()
            }
            // BCEWithLogits, in the stable form max(x, 0) - x * t + log(1 + exp(-|x|)).
            GanMode::Vanilla => {
                let t = if target_is_real { 1.0 } else { 0.0 };
                let stable = relu(pred.clone()) - pred.clone() * t + (pred.abs().neg().exp() + 1.0).log();
                stable.mean()
            }
            GanMode::Wgangp => {
                if target_is_real {
                    pred.mean().neg()
                } else {
                    pred.mean()
                }
            }
        }
    }
}

/// L1 distance, averaged.
pub fn l1(a: Tensor<4>, b: Tensor<4>) -> Tensor<1> {
    (a - b).abs().mean()
}

/// WGAN-GP's penalty `lambda * mean_i (||grad_x D(x_i)|| - 1)^2` at points
/// `x = alpha * real + (1 - alpha) * fake`, one `alpha` per image.
///
/// burn differentiates once, so the penalty's gradient with respect to the
/// discriminator's weights (PyTorch's `create_graph=True`) takes a detour:
/// with `S = sum D(x)`, `g = grad_x S` and `v = d(penalty)/dg` held fixed,
/// that gradient is `d/dtheta (g . v)`, and `g . v` is the directional
/// derivative of `S` along `v`, which a forward-mode pass
/// ([`Discriminator::forward_tangent`]) computes as an ordinary function of
/// the weights. Its weight gradient is then a plain backward pass.
pub struct GradientPenalty {
    /// The penalty's value.
    pub value: f64,
    /// A scalar whose weight gradient is the penalty's weight gradient.
    pub surrogate: Tensor<1>,
}

pub fn gradient_penalty(d: &Discriminator, real: Tensor<4>, fake: Tensor<4>, alpha: &[f32]) -> GradientPenalty {
    let device = real.device();
    let [n, c, h, w] = real.dims();
    assert_eq!(alpha.len(), n, "one alpha per image");
    let alpha = Tensor::<4>::from_data(TensorData::new(alpha.to_vec(), [n, 1, 1, 1]), &device);
    let x = (real.detach() * alpha.clone() + fake.detach() * (alpha.neg() + 1.0)).detach();

    // g = grad_x S at x
    let x_tracked = x.clone().require_grad();
    let grads = d.forward(x_tracked.clone()).sum().backward();
    let g = x_tracked.grad(&grads).expect("input gradient").reshape([n, c * h * w]);
    let norms = (g.clone() + 1e-16).square().sum_dim(1).sqrt(); // [n, 1], as (g + 1e-16).norm(2, dim=1)
    let value = (norms.clone() - GP_TARGET).square().mean().into_scalar::<f32>() as f64 * GP_LAMBDA;

    // v = d(penalty)/dg = lambda * 2 (|g| - 1) / |g| * g / n, then g . v as a function of the weights
    let coef = (norms.clone() - GP_TARGET) / norms * (2.0 * GP_LAMBDA / n as f64);
    let v = Tensor::<4>::from_inner((g * coef).reshape([n, c, h, w]));
    let (_, directional) = d.forward_tangent(x, v);
    GradientPenalty { value, surrogate: directional.sum() }
}

/// Fresh interpolation weights for the penalty, one per image.
pub fn penalty_alphas(n: usize, rng: &mut crate::rng::Rng) -> Vec<f32> {
    (0..n).map(|_| rng.uniform() as f32).collect()
}
