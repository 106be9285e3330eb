//! CycleGAN's training (Zhu et al. 2017): the four networks, their
//! optimisers and image pools, and one optimisation step exactly as the
//! official `optimize_parameters`:
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

mod nets;

pub use nets::{CycleGan, NetName};

use std::collections::HashMap;
use std::path::Path;

use super::adam::Adam;
use super::image_pool::ImagePool;
use super::losses::{GanMode, GradientPenalty, gradient_penalty, l1, penalty_alphas};
use super::net_files::{self, NamedNets};
use super::options::ValidOptions;
use super::run_dir::RunDir;
use super::state::{Optimiser, TrainState};
use super::step::{GeneratorView, Losses, StepOutput, Visuals, scalars};
use crate::checkpoint::{self, Direction, StateDict};
use crate::error::Result;
use crate::nets::Initializer;
use crate::rng::Rng;

/// The official names of the eight losses, in the official order.
pub const LOSS_NAMES: [&str; 8] = ["D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B"];

/// Loss weights and mode.
#[derive(Clone, Copy, Debug)]
pub struct Objective {
    pub gan_mode: GanMode,
    pub lambda_a: f64,
    pub lambda_b: f64,
    pub lambda_identity: f64,
}

/// Everything the optimisation changes.
pub struct CycleGanTrainer {
    pub nets: CycleGan,
    pub opt_g: Adam,
    pub opt_d: Adam,
    /// Generated A images (for D_B) and generated B images (for D_A).
    pub pool_fake_a: ImagePool,
    pub pool_fake_b: ImagePool,
    pub objective: Objective,
}

impl CycleGanTrainer {
    /// The networks, optimisers and pools `opts` describe, with weights from
    /// `init` (drawn from `rng` in the official order: G_A, G_B, D_A, D_B).
    pub fn new(opts: &ValidOptions, init: &Initializer, rng: &mut Rng, device: &Device) -> Self {
        let weights = opts.cycle_weights();
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
            pool_fake_a: ImagePool::new(opts.pool_size()),
            pool_fake_b: ImagePool::new(opts.pool_size()),
            objective: Objective {
                gan_mode: opts.gan_mode,
                lambda_a: weights.lambda_a,
                lambda_b: weights.lambda_b,
                lambda_identity: weights.lambda_identity,
            },
        }
    }

    pub fn step(&mut self, real_a: Tensor<4>, real_b: Tensor<4>, lr: f64, rng: &mut Rng) -> StepOutput {
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
        let g_values = scalars(vec![
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
        let mut grads = total.backward();
        let mut g_nets: [(&str, &mut dyn crate::nets::NamedTensors); 2] =
            [("G_A", &mut self.nets.g_a), ("G_B", &mut self.nets.g_b)];
        self.opt_g.step(lr, &mut g_nets, &mut grads);
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
        let d_values = scalars(vec![loss_d_a.clone(), loss_d_b.clone()]);
        let mut grads = d_total.backward();
        let mut d_nets: [(&str, &mut dyn crate::nets::NamedTensors); 2] =
            [("D_A", &mut self.nets.d_a), ("D_B", &mut self.nets.d_b)];
        self.opt_d.step(lr, &mut d_nets, &mut grads);

        let penalty = |gp: &Option<GradientPenalty>| gp.as_ref().map_or(0.0, |g| g.value);
        // the official order: D_A G_A cycle_A idt_A D_B G_B cycle_B idt_B
        let values = [
            d_values[0] + penalty(&gp_a),
            g_values[0],
            g_values[2],
            g_values[4],
            d_values[1] + penalty(&gp_b),
            g_values[1],
            g_values[3],
            g_values[5],
        ];
        let losses = Losses::from_pairs(&std::array::from_fn::<_, 8, _>(|i| (LOSS_NAMES[i], values[i])));
        let visuals = Visuals {
            rows: vec![
                vec![Some(real_a), Some(fake_b), Some(rec_a), idt_b],
                vec![Some(real_b), Some(fake_a), Some(rec_b), idt_a],
            ],
        };
        StepOutput { losses, generator_loss: g_values.iter().sum(), visuals }
    }

    /// `(GAN(D(real), real) + GAN(D(fake), fake)) / 2`, and the gradient penalty for WGAN-GP.
    /// `for_a` picks D_A (judging B images) rather than D_B.
    fn discriminator_loss(
        &self,
        for_a: bool,
        real: Tensor<4>,
        fake: Tensor<4>,
        rng: &mut Rng,
    ) -> (Tensor<1>, Option<GradientPenalty>) {
        let d = if for_a { &self.nets.d_a } else { &self.nets.d_b };
        let mode = self.objective.gan_mode;
        let loss = (mode.loss(d.forward(real.clone()), true) + mode.loss(d.forward(fake.clone()), false)) * 0.5;
        let gp = (mode == GanMode::Wgangp).then(|| {
            let alphas = penalty_alphas(real.dims()[0], rng);
            gradient_penalty(d, real, fake, &alphas)
        });
        (loss, gp)
    }

    pub fn generators(&self) -> Vec<GeneratorView<'_>> {
        let n = &self.nets;
        vec![
            GeneratorView { direction: Direction::A2B, net: &n.g_a, config: &n.g_a_config },
            GeneratorView { direction: Direction::B2A, net: &n.g_b, config: &n.g_b_config },
        ]
    }

    /// The four networks, both optimisers' moments (`optimizer.safetensors`,
    /// under `G.` and `D.`) and the image pools (`pool.safetensors`).
    pub fn save(&self, dir: &Path, state: &mut TrainState) -> Result<()> {
        self.nets.save(dir)?;
        net_files::save_optimisers(dir, &[(Optimiser::G, &self.opt_g), (Optimiser::D, &self.opt_d)], state)?;
        let mut pool = StateDict::default();
        for (name, p) in [("fake_A", &self.pool_fake_a), ("fake_B", &self.pool_fake_b)] {
            for (i, img) in p.contents().into_iter().enumerate() {
                pool.insert(format!("{name}.{i:04}"), img);
            }
        }
        checkpoint::save_dict(&RunDir::pool_file(dir), &pool, HashMap::new())
    }

    pub fn load(&mut self, dir: &Path, state: &TrainState, beta1: f64, device: &burn::tensor::Device) -> Result<()> {
        self.nets.load(dir)?;
        net_files::load_optimisers(dir, &mut [(Optimiser::G, &mut self.opt_g), (Optimiser::D, &mut self.opt_d)], state, beta1, device)?;
        let (mut pool, _) = checkpoint::read_safetensors(&RunDir::pool_file(dir))?;
        for (name, slot) in [("fake_A", &mut self.pool_fake_a), ("fake_B", &mut self.pool_fake_b)] {
            let part = pool.take_prefix(name);
            let images = part.iter().map(|(_, d)| d.clone()).collect();
            *slot = ImagePool::restore(slot.capacity(), images, device);
        }
        Ok(())
    }
}
