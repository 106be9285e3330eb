//! One optimisation step, exactly as the official `optimize_parameters`:
//!
//! 1. forward: `fake_B = G_A(real_A)`, `rec_A = G_B(fake_B)`,
//!    `fake_A = G_B(real_B)`, `rec_B = G_A(fake_A)`;
//! 2. generator step with the discriminators frozen: adversarial + cycle +
//!    identity losses, one Adam step on G_A and G_B together;
//! 3. discriminator step on the fakes of step 1 passed through the image
//!    pools: each D loss is `(real + fake) / 2` (plus the gradient penalty
//!    for WGAN-GP), one Adam step on D_A and D_B together.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::adam::Adam;
use super::image_pool::ImagePool;
use super::losses::{GanMode, gradient_penalty, l1, penalty_alphas};
use super::model::CycleGan;
use super::options::TrainOptions;
use crate::nets::Initializer;
use crate::rng::Rng;

/// The eight official losses of one step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[allow(non_snake_case)]
pub struct Losses {
    pub D_A: f64,
    pub G_A: f64,
    pub cycle_A: f64,
    pub idt_A: f64,
    pub D_B: f64,
    pub G_B: f64,
    pub cycle_B: f64,
    pub idt_B: f64,
}

impl Losses {
    /// The official names, in the official order (also the keys of `losses.jsonl`).
    pub const NAMES: [&'static str; 8] = ["D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B"];

    pub fn named(&self) -> [(&'static str, f64); 8] {
        let values = [self.D_A, self.G_A, self.cycle_A, self.idt_A, self.D_B, self.G_B, self.cycle_B, self.idt_B];
        std::array::from_fn(|i| (Self::NAMES[i], values[i]))
    }

    /// The generators' total loss.
    pub fn generator_total(&self) -> f64 {
        self.G_A + self.G_B + self.cycle_A + self.cycle_B + self.idt_A + self.idt_B
    }
}

/// The images of one step, for sample grids (first row: the A side).
pub struct Visuals {
    pub real_a: Tensor<4>,
    pub fake_b: Tensor<4>,
    pub rec_a: Tensor<4>,
    pub idt_b: Option<Tensor<4>>,
    pub real_b: Tensor<4>,
    pub fake_a: Tensor<4>,
    pub rec_b: Tensor<4>,
    pub idt_a: Option<Tensor<4>>,
}

/// Loss weights and mode.
#[derive(Clone, Copy, Debug)]
pub struct Objective {
    pub gan_mode: GanMode,
    pub lambda_a: f64,
    pub lambda_b: f64,
    pub lambda_identity: f64,
}

/// Everything the optimisation changes.
pub struct Trainer {
    pub nets: CycleGan,
    pub opt_g: Adam,
    pub opt_d: Adam,
    /// Generated A images (for D_B) and generated B images (for D_A).
    pub pool_fake_a: ImagePool,
    pub pool_fake_b: ImagePool,
    pub objective: Objective,
}

/// Several one-element losses read back in one transfer.
fn values(losses: Vec<Tensor<1>>) -> Vec<f64> {
    let data = Tensor::cat(losses, 0).detach().into_data();
    data.iter::<f32>().map(f64::from).collect()
}

impl Trainer {
    /// The networks, optimisers and pools `opts` describe, with weights from
    /// `init` (drawn from `rng` in the official order: G_A, G_B, D_A, D_B).
    pub fn new(opts: &TrainOptions, init: &Initializer, rng: &mut Rng, device: &Device) -> Self {
        Self {
            nets: CycleGan::new(
                &opts.generator(opts.input_nc, opts.output_nc),
                &opts.discriminator(opts.input_nc),
                init,
                rng,
                device,
            ),
            opt_g: Adam::new(opts.beta1),
            opt_d: Adam::new(opts.beta1),
            pool_fake_a: ImagePool::new(opts.pool_size),
            pool_fake_b: ImagePool::new(opts.pool_size),
            objective: Objective {
                gan_mode: opts.gan_mode,
                lambda_a: opts.lambda_a,
                lambda_b: opts.lambda_b,
                lambda_identity: opts.lambda_identity,
            },
        }
    }

    pub fn step(&mut self, real_a: Tensor<4>, real_b: Tensor<4>, lr: f64, rng: &mut Rng) -> (Losses, Visuals) {
        let obj = self.objective;
        let n = &self.nets;

        // 1. forward
        let fake_b = n.g_a.forward(real_a.clone());
        let rec_a = n.g_b.forward(fake_b.clone());
        let fake_a = n.g_b.forward(real_b.clone());
        let rec_b = n.g_a.forward(fake_a.clone());

        // 2. generators, discriminators frozen (their weights get no gradient)
        let d_a = n.d_a.clone().no_grad();
        let d_b = n.d_b.clone().no_grad();
        let (loss_idt_a, loss_idt_b, idt_a, idt_b) = if obj.lambda_identity > 0.0 {
            let idt_a = n.g_a.forward(real_b.clone());
            let idt_b = n.g_b.forward(real_a.clone());
            let la = l1(idt_a.clone(), real_b.clone()) * (obj.lambda_b * obj.lambda_identity);
            let lb = l1(idt_b.clone(), real_a.clone()) * (obj.lambda_a * obj.lambda_identity);
            (Some(la), Some(lb), Some(idt_a.detach()), Some(idt_b.detach()))
        } else {
            (None, None, None, None)
        };
        let loss_g_a = obj.gan_mode.loss(d_a.forward(fake_b.clone()), true);
        let loss_g_b = obj.gan_mode.loss(d_b.forward(fake_a.clone()), true);
        let loss_cycle_a = l1(rec_a.clone(), real_a.clone()) * obj.lambda_a;
        let loss_cycle_b = l1(rec_b.clone(), real_b.clone()) * obj.lambda_b;
        let mut total = loss_g_a.clone() + loss_g_b.clone() + loss_cycle_a.clone() + loss_cycle_b.clone();
        if let (Some(a), Some(b)) = (&loss_idt_a, &loss_idt_b) {
            total = total + a.clone() + b.clone();
        }
        // The losses come back in one transfer per phase, not one per loss
        // (each read is a round trip on a GPU).
        let zero = || Tensor::<1>::zeros([1], &real_a.device());
        let g_values = values(vec![
            loss_g_a.clone(),
            loss_g_b.clone(),
            loss_cycle_a.clone(),
            loss_cycle_b.clone(),
            loss_idt_a.clone().unwrap_or_else(zero),
            loss_idt_b.clone().unwrap_or_else(zero),
        ]);
        // Keep plain copies of what outlives the generator graph.
        let (fake_a, fake_b) = (fake_a.detach(), fake_b.detach());
        let (rec_a, rec_b) = (rec_a.detach(), rec_b.detach());
        let grads = total.backward();
        let mut g_nets: [(&str, &mut dyn crate::nets::NamedTensors); 2] =
            [("G_A", &mut self.nets.g_a), ("G_B", &mut self.nets.g_b)];
        self.opt_g.step(lr, &mut g_nets, &grads);
        drop(grads);

        // 3. discriminators, on pooled fakes from before the generator step
        let pooled_b = self.pool_fake_b.query(fake_b.clone(), rng);
        let (loss_d_a, gp_a) = self.discriminator_loss(true, real_b.clone(), pooled_b, rng);
        let pooled_a = self.pool_fake_a.query(fake_a.clone(), rng);
        let (loss_d_b, gp_b) = self.discriminator_loss(false, real_a.clone(), pooled_a, rng);
        let mut d_total = loss_d_a.clone() + loss_d_b.clone();
        for gp in [&gp_a, &gp_b].into_iter().flatten() {
            d_total = d_total + gp.surrogate.clone();
        }
        let d_values = values(vec![loss_d_a.clone(), loss_d_b.clone()]);
        let grads = d_total.backward();
        let mut d_nets: [(&str, &mut dyn crate::nets::NamedTensors); 2] =
            [("D_A", &mut self.nets.d_a), ("D_B", &mut self.nets.d_b)];
        self.opt_d.step(lr, &mut d_nets, &grads);

        let penalty = |gp: &Option<super::losses::GradientPenalty>| gp.as_ref().map_or(0.0, |g| g.value);
        let losses = Losses {
            D_A: d_values[0] + penalty(&gp_a),
            G_A: g_values[0],
            cycle_A: g_values[2],
            idt_A: g_values[4],
            D_B: d_values[1] + penalty(&gp_b),
            G_B: g_values[1],
            cycle_B: g_values[3],
            idt_B: g_values[5],
        };
        let visuals = Visuals {
            real_a,
            fake_b,
            rec_a,
            idt_b,
            real_b,
            fake_a,
            rec_b,
            idt_a,
        };
        (losses, visuals)
    }

    /// `(GAN(D(real), real) + GAN(D(fake), fake)) / 2`, and the gradient penalty for WGAN-GP.
    /// `for_a` picks D_A (judging B images) rather than D_B.
    fn discriminator_loss(
        &self,
        for_a: bool,
        real: Tensor<4>,
        fake: Tensor<4>,
        rng: &mut Rng,
    ) -> (Tensor<1>, Option<super::losses::GradientPenalty>) {
        let d = if for_a { &self.nets.d_a } else { &self.nets.d_b };
        let mode = self.objective.gan_mode;
        let loss = (mode.loss(d.forward(real.clone()), true) + mode.loss(d.forward(fake.clone()), false)) * 0.5;
        let gp = (mode == GanMode::Wgangp).then(|| {
            let alphas = penalty_alphas(real.dims()[0], rng);
            gradient_penalty(d, real, fake, &alphas)
        });
        (loss, gp)
    }
}
