//! CUT and FastCUT's training (Park, Efros, Zhang, Zhu, "Contrastive
//! Learning for Unpaired Image-to-Image Translation", ECCV 2020), one step
//! exactly as the official `CUTModel.optimize_parameters`:
//!
//! 1. forward: `fake = G(real)` where `real` is real_A, with real_B after it
//!    when `--nce-idt` (so `idt_B = G(real_B)` comes from the same pass),
//!    all flipped left-right on a coin toss with `--flip-equivariance`;
//! 2. discriminator step first: `(GAN(D(fake_B), fake) + GAN(D(real_B), real)) / 2`;
//! 3. then the generator and netF together, D frozen (after its update):
//!    `lambda_GAN * GAN(D(fake_B), real)` plus the PatchNCE loss between
//!    real_A and fake_B (averaged over the NCE layers, times lambda_NCE),
//!    averaged with the one between real_B and idt_B when `--nce-idt`.
//!
//! The patch positions and the flip are drawn through [`Draws`], from the
//! training's step generator (saved with every checkpoint, so a resumed run
//! draws the same), or replayed from a record (the parity tests replay the
//! official code's draws).

mod nce;
mod nets;

pub use nce::patch_nce;
pub use nets::{CutNet, CutNets};

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::adam::Adam;
use super::losses::{GanMode, gradient_penalty};
use super::net_files::{self, NamedNets};
use super::options::{CutOptions, ValidOptions};
use super::state::{Optimiser, TrainState};
use super::step::{GeneratorView, Losses, StepOutput, Visuals, scalars};
use crate::checkpoint::Direction;
use crate::error::Result;
use crate::nets::{Initializer, NamedTensors, PatchFeatures};
use crate::rng::Rng;

/// The random choices of a CUT step.
pub trait Draws {
    /// Whether this step's inputs are flipped (`--flip-equivariance`; the
    /// official `np.random.random() < 0.5`).
    fn flip(&mut self) -> bool;
    /// `count` distinct positions out of `0..positions`, in random order (all
    /// of them when there are fewer): the first `count` of a random permutation.
    fn patch_ids(&mut self, positions: usize, count: usize) -> Vec<usize>;
    /// A uniform draw in `[0, 1)` (the interpolation points of WGAN-GP's penalty).
    fn uniform(&mut self) -> f64;
}

impl Draws for Rng {
    fn flip(&mut self) -> bool {
        self.uniform() < 0.5
    }

    fn patch_ids(&mut self, positions: usize, count: usize) -> Vec<usize> {
        // a partial Fisher-Yates shuffle: the first `count` places of a uniform permutation
        let count = count.min(positions);
        let mut ids: Vec<usize> = (0..positions).collect();
        for i in 0..count {
            let j = i + self.below(positions - i);
            ids.swap(i, j);
        }
        ids.truncate(count);
        ids
    }

    fn uniform(&mut self) -> f64 {
        Rng::uniform(self)
    }
}

/// The official names of the losses, in the official order (`NCE_Y` only with `--nce-idt`).
pub const LOSS_NAMES: [&str; 6] = ["G_GAN", "D_real", "D_fake", "G", "NCE", "NCE_Y"];

/// Everything the optimisation changes.
pub struct CutTrainer {
    pub nets: CutNets,
    pub opt_g: Adam,
    pub opt_d: Adam,
    pub opt_f: Adam,
    pub objective: CutOptions,
    pub gan_mode: GanMode,
}

impl CutTrainer {
    /// The networks and optimisers `opts` describe, with weights from `init`
    /// (drawn from `rng` in the official order: G, D, F).
    pub fn new(opts: &ValidOptions, init: &Initializer, rng: &mut Rng, device: &Device) -> Self {
        let cut = opts.cut();
        let nets = CutNets::new(
            opts.model,
            opts.generator(opts.input_nc, opts.output_nc),
            opts.discriminator(opts.output_nc),
            cut.net_f,
            cut.net_f_nc,
            &cut.nce_layers,
            init,
            rng,
            device,
        );
        Self { nets, opt_g: Adam::new(opts.beta1), opt_d: Adam::new(opts.beta1), opt_f: Adam::new(opts.beta1), objective: cut, gan_mode: opts.gan_mode }
    }

    pub fn step(&mut self, real_a: Tensor<4>, real_b: Tensor<4>, lr: f64, rng: &mut Rng) -> StepOutput {
        self.step_with(real_a, real_b, lr, rng)
    }

    /// One step, with the random choices from `draws`.
    pub fn step_with(&mut self, real_a: Tensor<4>, real_b: Tensor<4>, lr: f64, draws: &mut dyn Draws) -> StepOutput {
        let obj = self.objective.clone();
        let n = real_a.dims()[0];

        // 1. forward
        let mut real = if obj.nce_idt { Tensor::cat(vec![real_a.clone(), real_b.clone()], 0) } else { real_a.clone() };
        let flipped = obj.flip_equivariance && draws.flip();
        if flipped {
            real = real.flip([3]);
        }
        let fake = self.nets.g.forward(real);
        let fake_b = fake.clone().narrow(0, 0, n);
        let idt_b = obj.nce_idt.then(|| fake.narrow(0, n, n));

        // 2. discriminator
        let mode = self.gan_mode;
        let d = &self.nets.d;
        let loss_d_fake = mode.loss(d.forward(fake_b.clone().detach()), false);
        let loss_d_real = mode.loss(d.forward(real_b.clone()), true);
        let mut loss_d = (loss_d_fake.clone() + loss_d_real.clone()) * 0.5;
        if mode == GanMode::Wgangp {
            let alphas: Vec<f32> = (0..n).map(|_| draws.uniform() as f32).collect();
            loss_d = loss_d + gradient_penalty(d, real_b.clone(), fake_b.clone().detach(), &alphas).surrogate;
        }
        let d_values = scalars(vec![loss_d_fake, loss_d_real]);
        let mut grads = loss_d.backward();
        self.opt_d.step(lr, &mut [("D", &mut self.nets.d as &mut dyn NamedTensors)], &mut grads);
        drop(grads);

        // 3. generator and netF, the updated discriminator frozen
        let zero = || Tensor::<1>::zeros([1], &real_a.device());
        let d = self.nets.d.clone().no_grad();
        let loss_g_gan = if obj.lambda_gan > 0.0 { mode.loss(d.forward(fake_b.clone()), true) * obj.lambda_gan } else { zero() };
        let (loss_nce, loss_nce_y) = if obj.lambda_nce > 0.0 {
            let nce = self.nce(real_a.clone(), fake_b.clone(), flipped, draws);
            let nce_y = idt_b.as_ref().map(|idt| self.nce(real_b.clone(), idt.clone(), flipped, draws));
            (nce, nce_y)
        } else {
            (zero(), idt_b.as_ref().map(|_| zero()))
        };
        let nce_both = match &loss_nce_y {
            Some(y) => (loss_nce.clone() + y.clone()) * 0.5,
            None => loss_nce.clone(),
        };
        let loss_g = loss_g_gan.clone() + nce_both;
        let g_values = scalars(vec![loss_g_gan, loss_g.clone(), loss_nce, loss_nce_y.unwrap_or_else(zero)]);
        let mut grads = loss_g.backward();
        self.opt_g.step(lr, &mut [("G", &mut self.nets.g as &mut dyn NamedTensors)], &mut grads);
        if obj.lambda_nce > 0.0 && obj.net_f == PatchFeatures::MlpSample {
            self.opt_f.step(lr, &mut [("F", &mut self.nets.f as &mut dyn NamedTensors)], &mut grads);
        }

        let mut pairs = vec![
            (LOSS_NAMES[0], g_values[0]),
            (LOSS_NAMES[1], d_values[1]),
            (LOSS_NAMES[2], d_values[0]),
            (LOSS_NAMES[3], g_values[1]),
            (LOSS_NAMES[4], g_values[2]),
        ];
        if obj.nce_idt {
            pairs.push((LOSS_NAMES[5], g_values[3]));
        }
        let visuals = Visuals {
            rows: vec![vec![Some(real_a), Some(fake_b.detach()), Some(real_b), idt_b.map(|t| t.detach())]],
        };
        StepOutput { losses: Losses::from_pairs(&pairs), generator_loss: g_values[1], visuals }
    }

    /// `calculate_NCE_loss(src, tgt)`: the generator's features of the
    /// translation `tgt` (flipped back if the inputs were flipped) as queries,
    /// of the source `src` as keys, at the same patch positions of each layer
    /// through netF; the layers' mean PatchNCE loss times lambda_NCE.
    fn nce(&self, src: Tensor<4>, tgt: Tensor<4>, flipped: bool, draws: &mut dyn Draws) -> Tensor<1> {
        let obj = &self.objective;
        let n = src.dims()[0];
        let mut feat_q = self.nets.g.features(tgt, &obj.nce_layers);
        if flipped {
            feat_q = feat_q.into_iter().map(|f| f.flip([3])).collect();
        }
        // The keys carry no gradient (PatchNCE detaches them), so they come
        // from gradient-free copies of G and netF: autodiff then records
        // none of their activations (train256-cut's peak memory 2190 ->
        // 1740 MiB), and the numbers are the same.
        let feat_k = self.nets.g.clone().no_grad().features(src, &obj.nce_layers);
        let ids: Vec<Vec<usize>> = feat_k
            .iter()
            .map(|f| {
                let [_, _, h, w] = f.dims();
                draws.patch_ids(h * w, obj.num_patches)
            })
            .collect();
        let k = self.nets.f.clone().no_grad().forward(&feat_k, &ids);
        let q = self.nets.f.forward(&feat_q, &ids);
        let groups = if obj.all_negatives { 1 } else { n };
        let layers = obj.nce_layers.len() as f64;
        q.into_iter()
            .zip(k)
            .map(|(q, k)| patch_nce(q, k, groups, obj.nce_t).mean() * obj.lambda_nce)
            .reduce(|a, b| a + b)
            .expect("at least one NCE layer")
            / layers
    }

    pub fn generators(&self) -> Vec<GeneratorView<'_>> {
        vec![GeneratorView { direction: Direction::A2B, net: &self.nets.g, config: &self.nets.g_config }]
    }

    /// The three networks and their optimisers' moments (`optimizer.safetensors`, under `G.`, `D.`, `F.`).
    pub fn save(&self, dir: &Path, state: &mut TrainState) -> Result<()> {
        self.nets.save(dir)?;
        let optimisers = [(Optimiser::G, &self.opt_g), (Optimiser::D, &self.opt_d), (Optimiser::F, &self.opt_f)];
        net_files::save_optimisers(dir, &optimisers, state)
    }

    pub fn load(&mut self, dir: &Path, state: &TrainState, beta1: f64, device: &Device) -> Result<()> {
        self.nets.load(dir)?;
        let mut optimisers = [(Optimiser::G, &mut self.opt_g), (Optimiser::D, &mut self.opt_d), (Optimiser::F, &mut self.opt_f)];
        net_files::load_optimisers(dir, &mut optimisers, state, beta1, device)
    }
}
