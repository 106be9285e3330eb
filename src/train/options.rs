//! `cyclegan train` options: the official ones with their official defaults,
//! plus ours. Each default is written once, on its field; the same struct is
//! read from `--config FILE` (TOML, kebab-case keys as on the command line)
//! and written to `RUN_DIR/options.toml`.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

use crate::data::transforms::{Preprocess, ResizeFilter};
use crate::device::DeviceChoice;
use crate::nets::{
    DiscriminatorArch, DiscriminatorConfig, GeneratorArch, GeneratorConfig, InitType, Initializer, NormKind, PatchFeatures,
    patch_sample::MAX_NC,
};
use crate::train::losses::GanMode;
use crate::train::method::Method;
use crate::train::schedule::LrPolicy;

#[derive(Args, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TrainOptions {
    // --- data -------------------------------------------------------------
    /// Folder of domain A images.
    #[arg(long)]
    pub data_a: Option<PathBuf>,
    /// Folder of domain B images.
    #[arg(long)]
    pub data_b: Option<PathBuf>,
    /// Official layout: DIR/trainA and DIR/trainB.
    #[arg(long, conflicts_with_all = ["data_a", "data_b"])]
    pub dataroot: Option<PathBuf>,
    /// Run folder: checkpoints, losses, samples, report.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Use at most this many images of each domain (the first, by sorted path).
    #[arg(long)]
    pub max_dataset_size: Option<usize>,
    /// Images per batch.
    #[arg(long, default_value_t = 1)]
    pub batch_size: usize,
    /// Scale images to this size (see --preprocess).
    #[arg(long, default_value_t = 286)]
    pub load_size: u32,
    /// Then crop to this size.
    #[arg(long, default_value_t = 256)]
    pub crop_size: u32,
    /// How images are scaled and cropped when loaded.
    #[arg(long, value_enum, default_value_t = Preprocess::ResizeAndCrop)]
    pub preprocess: Preprocess,
    /// Filter used when resizing.
    #[arg(long, value_enum, default_value_t = ResizeFilter::Bicubic)]
    pub resize_filter: ResizeFilter,
    /// Do not flip images horizontally at random.
    #[arg(long)]
    pub no_flip: bool,
    /// Take A in order and B as A's index modulo |B| (no shuffling, no random pairs).
    #[arg(long)]
    pub serial_batches: bool,
    /// Threads decoding and augmenting images.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,

    // --- method ---------------------------------------------------------------
    /// Training method: cyclegan, or cut / fastcut (contrastive unpaired translation, Park et al. 2020:
    /// one generator, A to B only). Each sets its official code's defaults for the options that say so.
    #[arg(long, value_enum, default_value_t = Method::CycleGan)]
    pub model: Method,

    // --- networks -----------------------------------------------------------
    /// Generator architecture.
    #[arg(long = "netG", value_enum, default_value_t = GeneratorArch::Resnet9Blocks)]
    #[serde(rename = "netG")]
    pub net_g: GeneratorArch,
    /// Discriminator architecture.
    #[arg(long = "netD", value_enum, default_value_t = DiscriminatorArch::Basic)]
    #[serde(rename = "netD")]
    pub net_d: DiscriminatorArch,
    /// Strided layers of the n_layers discriminator.
    #[arg(long, default_value_t = 3)]
    pub n_layers_d: usize,
    /// Generator filters in the first conv layer.
    #[arg(long, default_value_t = 64)]
    pub ngf: usize,
    /// Discriminator filters in the first conv layer.
    #[arg(long, default_value_t = 64)]
    pub ndf: usize,
    /// Channels of domain A images (1 gray, 3 RGB, 4 RGBA).
    #[arg(long, default_value_t = 3)]
    pub input_nc: usize,
    /// Channels of domain B images.
    #[arg(long, default_value_t = 3)]
    pub output_nc: usize,
    /// Normalisation layers.
    #[arg(long, value_enum, default_value_t = NormKind::Instance)]
    pub norm: NormKind,
    /// Weight initialisation [default: normal; cut and fastcut: xavier].
    #[arg(long, value_enum)]
    pub init_type: Option<InitType>,
    /// Scale of normal, xavier and orthogonal init.
    #[arg(long, default_value_t = 0.02)]
    pub init_gain: f64,
    /// Dropout in the generators (off for CycleGAN, as in the official code).
    #[arg(long)]
    pub dropout: bool,
    /// Start from these weights: one safetensors file with all four networks
    /// under G_A., G_B., D_A., D_B. (official key names).
    #[arg(long)]
    pub init: Option<PathBuf>,

    // --- optimisation ---------------------------------------------------------
    /// Epochs at the initial learning rate [default: 100; cut: 200; fastcut: 150].
    #[arg(long)]
    pub n_epochs: Option<usize>,
    /// Epochs over which the learning rate decays (linear policy) [default: 100; cut: 200; fastcut: 50].
    #[arg(long)]
    pub n_epochs_decay: Option<usize>,
    /// Initial learning rate of Adam.
    #[arg(long, default_value_t = 2e-4)]
    pub lr: f64,
    /// Adam's beta1 (beta2 is 0.999, eps 1e-8, as PyTorch).
    #[arg(long, default_value_t = 0.5)]
    pub beta1: f64,
    /// Adversarial loss.
    #[arg(long, value_enum, default_value_t = GanMode::Lsgan)]
    pub gan_mode: GanMode,
    /// Generated images kept to train the discriminators on (0: none) (cyclegan) [default: 50].
    #[arg(long)]
    pub pool_size: Option<usize>,
    /// Learning-rate schedule.
    #[arg(long, value_enum, default_value_t = LrPolicy::Linear)]
    pub lr_policy: LrPolicy,
    /// Step policy: multiply the rate by 0.1 every this many epochs.
    #[arg(long, default_value_t = 50)]
    pub lr_decay_iters: usize,
    /// Weight of the cycle loss A -> B -> A (cyclegan) [default: 10].
    #[arg(long)]
    pub lambda_a: Option<f64>,
    /// Weight of the cycle loss B -> A -> B (cyclegan) [default: 10].
    #[arg(long)]
    pub lambda_b: Option<f64>,
    /// Weight of the identity loss, relative to the cycle weights; 0 disables it (cyclegan) [default: 0.5].
    #[arg(long)]
    pub lambda_identity: Option<f64>,

    // --- CUT and FastCUT ---------------------------------------------------------
    /// Weight of the adversarial loss G_GAN (cut, fastcut) [default: 1].
    #[arg(long = "lambda-gan")]
    #[serde(rename = "lambda-gan")]
    pub lambda_gan: Option<f64>,
    /// Weight of the PatchNCE loss (cut, fastcut) [default: cut 1; fastcut 10].
    #[arg(long = "lambda-nce")]
    #[serde(rename = "lambda-nce")]
    pub lambda_nce: Option<f64>,
    /// Also apply PatchNCE to G(B) against B, an identity term (cut, fastcut) [default: cut true; fastcut false].
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub nce_idt: Option<bool>,
    /// Generator layers (indices of the official nn.Sequential) the PatchNCE loss compares (cut, fastcut)
    /// [default: 0,4,8,12,16].
    #[arg(long, value_delimiter = ',', value_name = "I,J,...")]
    pub nce_layers: Option<Vec<usize>>,
    /// Take the negatives from every image of the batch, not only the patch's own (cut, fastcut; for
    /// single-image training) [default: false].
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub nce_includes_all_negatives_from_minibatch: Option<bool>,
    /// How patches become PatchNCE features: mlp_sample (a two-layer MLP per layer) or sample (none)
    /// (cut, fastcut) [default: mlp_sample].
    #[arg(long = "netF", value_enum)]
    #[serde(rename = "netF")]
    pub net_f: Option<PatchFeatures>,
    /// Width of netF's MLPs (cut, fastcut) [default: 256].
    #[arg(long = "netF-nc")]
    #[serde(rename = "netF-nc")]
    pub net_f_nc: Option<usize>,
    /// Temperature of the PatchNCE loss (cut, fastcut) [default: 0.07].
    #[arg(long = "nce-T")]
    #[serde(rename = "nce-T")]
    pub nce_t: Option<f64>,
    /// Patches per layer and image for PatchNCE (cut, fastcut) [default: 256].
    #[arg(long)]
    pub num_patches: Option<usize>,
    /// Translate horizontally flipped inputs half the time and compare their features flipped back
    /// (cut, fastcut) [default: cut false; fastcut true].
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub flip_equivariance: Option<bool>,
    /// Strided convolutions instead of anti-aliased downsampling in G and D (cut, fastcut).
    #[arg(long)]
    pub no_antialias: bool,
    /// Transposed convolutions instead of anti-aliased upsampling in G (cut, fastcut).
    #[arg(long)]
    pub no_antialias_up: bool,
    /// Seed of every random choice (init, data order, augmentation, image pool, dropout).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop after this many iterations (for a quick look, or a benchmark).
    #[arg(long)]
    pub max_iters: Option<u64>,

    // --- output ---------------------------------------------------------------
    /// Save checkpoints/latest every this many iterations.
    #[arg(long, default_value_t = 5000)]
    pub save_latest_freq: u64,
    /// Save checkpoints/epoch_N every this many epochs.
    #[arg(long, default_value_t = 5)]
    pub save_epoch_freq: usize,
    /// Log losses (losses.jsonl, terminal) every this many iterations.
    #[arg(long, default_value_t = 100)]
    pub print_freq: u64,
    /// Save a sample grid and refresh report.html every this many iterations.
    #[arg(long, default_value_t = 400)]
    pub display_freq: u64,

    // --- evaluation while training ----------------------------------------------
    /// Held-out domain A images: with --eval-b, FID and KID of both directions go to
    /// metrics.jsonl and the report, and the best checkpoint (lowest mean FID) to checkpoints/best.
    #[arg(long, requires = "eval_b")]
    pub eval_a: Option<PathBuf>,
    /// Held-out domain B images (see --eval-a).
    #[arg(long, requires = "eval_a")]
    pub eval_b: Option<PathBuf>,
    /// Evaluate every this many iterations (default: at the end of each epoch).
    #[arg(long, requires = "eval_a")]
    pub eval_freq: Option<u64>,
    /// pytorch-fid's Inception weights for --eval-a/--eval-b (found or fetched when left out, as by `cyclegan eval`).
    #[arg(long, value_name = "FILE", requires = "eval_a")]
    pub inception: Option<PathBuf>,
    /// Where tensors live.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    pub device: DeviceChoice,
}

impl Default for TrainOptions {
    /// The defaults are those on the fields' `#[arg]` attributes.
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            options: TrainOptions,
        }
        <Wrapper as clap::Parser>::parse_from(["train"]).options
    }
}

/// A bad option, found before any work starts: one line naming it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OptionError(pub String);

impl From<String> for OptionError {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for OptionError {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

/// Options whose settings passed [`TrainOptions::check`] (or, with the data
/// and run folders, [`TrainOptions::validated`]). Trainers take only these,
/// so no path builds one from unchecked options.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidOptions(TrainOptions);

impl std::ops::Deref for ValidOptions {
    type Target = TrainOptions;
    fn deref(&self) -> &TrainOptions {
        &self.0
    }
}

impl TrainOptions {
    /// Domain folders, from --data-a/--data-b or --dataroot.
    pub fn data_dirs(&self) -> Result<(PathBuf, PathBuf), OptionError> {
        match (&self.data_a, &self.data_b, &self.dataroot) {
            (Some(a), Some(b), None) => Ok((a.clone(), b.clone())),
            (None, None, Some(root)) => Ok((root.join("trainA"), root.join("trainB"))),
            _ => Err("give both --data-a and --data-b, or --dataroot (holding trainA and trainB)".into()),
        }
    }

    pub fn output_dir(&self) -> Result<&Path, OptionError> {
        self.output.as_deref().ok_or_else(|| "give the run folder with --output".into())
    }

    /// Check everything that can be checked without reading images: where
    /// the data and the run folder are, and [`Self::check`]'s settings.
    pub fn validate(&self) -> Result<(), OptionError> {
        self.data_dirs()?;
        self.output_dir()?;
        Ok(self.check_settings()?)
    }

    /// [`Self::validate`], keeping the options as checked: what a session trains with.
    pub fn validated(self) -> Result<ValidOptions, OptionError> {
        self.validate()?;
        Ok(ValidOptions(self))
    }

    /// The settings checked (everything but where the data and the run folder
    /// are): what a [`crate::train::trainer::Trainer`] can be built from.
    pub fn check(self) -> Result<ValidOptions, OptionError> {
        self.check_settings()?;
        Ok(ValidOptions(self))
    }

    fn check_settings(&self) -> Result<(), String> {
        // NaN passes every `<` and `>` below, and an infinity is no weight or
        // rate either: refused by name first (also from --config files, which clap never sees).
        let floats = [
            ("--init-gain", Some(self.init_gain)),
            ("--lr", Some(self.lr)),
            ("--beta1", Some(self.beta1)),
            ("--lambda-a", self.lambda_a),
            ("--lambda-b", self.lambda_b),
            ("--lambda-identity", self.lambda_identity),
            ("--lambda-gan", self.lambda_gan),
            ("--lambda-nce", self.lambda_nce),
            ("--nce-T", self.nce_t),
        ];
        if let Some((name, v)) = floats.iter().find_map(|(name, v)| v.filter(|v| !v.is_finite()).map(|v| (name, v))) {
            return Err(format!("{name} {v} is not a finite number"));
        }
        if self.preprocess.crops() && self.preprocess.resizes() && self.crop_size > self.load_size {
            return Err(format!(
                "--crop-size {} is larger than --load-size {}: nothing to crop from",
                self.crop_size, self.load_size
            ));
        }
        // The networks' own check, the one checkpoints pass too; --n-layers-d
        // is checked even where --netD basic ignores it.
        let nets = [self.generator(self.input_nc, self.output_nc).validate(), self.discriminator(self.output_nc).validate()];
        let n_layers = DiscriminatorConfig { n_layers: self.n_layers_d, ..self.discriminator(self.input_nc) };
        for check in nets.into_iter().chain([n_layers.validate()]) {
            check.map_err(|e| format!("{}: {e}", e.option()))?;
        }
        let positive = [
            ("--batch-size", self.batch_size),
            ("--workers", self.workers),
            ("--save-epoch-freq", self.save_epoch_freq),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        for (name, v) in [("--save-latest-freq", self.save_latest_freq), ("--print-freq", self.print_freq), ("--display-freq", self.display_freq)] {
            if v == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        if self.eval_a.is_some() != self.eval_b.is_some() {
            return Err("give both --eval-a and --eval-b, or neither".into());
        }
        for (name, v) in [("--eval-freq", self.eval_freq), ("--max-iters", self.max_iters), ("--max-dataset-size", self.max_dataset_size.map(|n| n as u64))] {
            if v == Some(0) {
                return Err(format!("{name} must be at least 1"));
            }
        }
        self.validate_method()?;
        if self.n_epochs() + self.n_epochs_decay() == 0 {
            return Err("--n-epochs plus --n-epochs-decay must be at least 1".into());
        }
        if self.lr_policy == LrPolicy::Step && self.lr_decay_iters == 0 {
            return Err("--lr-decay-iters must be at least 1 with --lr-policy step".into());
        }
        if self.lr.is_nan() || self.lr <= 0.0 || !(0.0..1.0).contains(&self.beta1) {
            return Err("--lr must be positive and --beta1 in [0, 1)".into());
        }
        let cycle = self.cycle_weights();
        if cycle.lambda_a < 0.0 || cycle.lambda_b < 0.0 || cycle.lambda_identity < 0.0 {
            return Err("loss weights must not be negative".into());
        }
        if self.model == Method::CycleGan && cycle.lambda_identity > 0.0 && self.input_nc != self.output_nc {
            return Err(format!(
                "--lambda-identity needs --input-nc equal to --output-nc (got {} and {}); pass --lambda-identity 0",
                self.input_nc, self.output_nc
            ));
        }
        let multiple = self.net_g.size_multiple() as u32;
        if let Some(size) = self.preprocess.fixed_size(self.load_size, self.crop_size)
            && size < self.min_image_size() as u32
        {
            return Err(format!("{}; --crop-size is {size}", self.min_image_size_reason()));
        }
        if let Some(size) = self.preprocess.fixed_size(self.load_size, self.crop_size)
            && !size.is_multiple_of(multiple)
        {
            return Err(format!(
                "{} needs images whose sides are multiples of {multiple}, but training images will be {size} px; \
                 change --crop-size/--load-size",
                self.net_g.name()
            ));
        }
        Ok(())
    }

    /// Options of the other method, refused; and CUT's own checks.
    fn validate_method(&self) -> Result<(), String> {
        let model = self.model.name();
        if self.model.is_cut() {
            let cycle_only = [("--lambda-a", self.lambda_a), ("--lambda-b", self.lambda_b), ("--lambda-identity", self.lambda_identity)];
            if let Some((flag, _)) = cycle_only.iter().find(|(_, v)| v.is_some()) {
                return Err(format!("{flag} weighs CycleGAN's cycle and identity losses; --model {model} has neither (its weights are --lambda-gan and --lambda-nce)"));
            }
            if self.pool_size.is_some() {
                return Err(format!("--pool-size: --model {model} trains D on the current translations only (the official code keeps no image pool)"));
            }
            if !self.net_g.is_resnet() {
                return Err(format!(
                    "--model {model} compares features of the ResNet generator's layers: use --netG resnet_9blocks or resnet_6blocks, not {}",
                    self.net_g.name()
                ));
            }
            let cut = self.cut();
            let len = self.generator(self.input_nc, self.output_nc).sequential_len();
            if cut.nce_layers.is_empty() || !cut.nce_layers.windows(2).all(|w| w[0] < w[1]) {
                return Err("--nce-layers must list layer indices in ascending order, e.g. 0,4,8,12,16".into());
            }
            if let Some(bad) = cut.nce_layers.iter().find(|&&i| i >= len) {
                return Err(format!("--nce-layers {bad}: the {} generator has layers 0 to {}", self.net_g.name(), len - 1));
            }
            for (flag, v) in [("--num-patches", cut.num_patches), ("--netF-nc", cut.net_f_nc)] {
                if v == 0 {
                    return Err(format!("{flag} must be at least 1"));
                }
            }
            if cut.net_f_nc > MAX_NC {
                return Err(format!("--netF-nc {}: at most {MAX_NC} (the official default is 256)", cut.net_f_nc));
            }
            if cut.lambda_gan.is_nan() || cut.lambda_gan < 0.0 || cut.lambda_nce.is_nan() || cut.lambda_nce < 0.0 {
                return Err("loss weights must not be negative".into());
            }
            if self.input_nc != self.output_nc {
                return Err(format!(
                    "--model {model} runs its translations through the generator again (PatchNCE compares their features with the input's), \
                     which needs --input-nc equal to --output-nc (got {} and {})",
                    self.input_nc, self.output_nc
                ));
            }
            if cut.nce_t.is_nan() || cut.nce_t <= 0.0 {
                return Err("--nce-T must be positive".into());
            }
        } else {
            let cut_only = [
                ("--lambda-gan", self.lambda_gan.is_some()),
                ("--lambda-nce", self.lambda_nce.is_some()),
                ("--nce-idt", self.nce_idt.is_some()),
                ("--nce-layers", self.nce_layers.is_some()),
                ("--nce-includes-all-negatives-from-minibatch", self.nce_includes_all_negatives_from_minibatch.is_some()),
                ("--netF", self.net_f.is_some()),
                ("--netF-nc", self.net_f_nc.is_some()),
                ("--nce-T", self.nce_t.is_some()),
                ("--num-patches", self.num_patches.is_some()),
                ("--flip-equivariance", self.flip_equivariance.is_some()),
                ("--no-antialias", self.no_antialias),
                ("--no-antialias-up", self.no_antialias_up),
            ];
            if let Some((flag, _)) = cut_only.iter().find(|(_, given)| *given) {
                return Err(format!("{flag} is an option of CUT and FastCUT; it does nothing with --model {model} (add --model cut or fastcut)"));
            }
        }
        Ok(())
    }

    pub fn n_epochs(&self) -> usize {
        self.n_epochs.unwrap_or(self.model.defaults().n_epochs)
    }

    pub fn n_epochs_decay(&self) -> usize {
        self.n_epochs_decay.unwrap_or(self.model.defaults().n_epochs_decay)
    }

    pub fn pool_size(&self) -> usize {
        self.pool_size.unwrap_or(50)
    }

    pub fn init_type(&self) -> InitType {
        self.init_type.unwrap_or(self.model.defaults().init_type)
    }

    /// CycleGAN's loss weights.
    pub fn cycle_weights(&self) -> CycleWeights {
        CycleWeights {
            lambda_a: self.lambda_a.unwrap_or(10.0),
            lambda_b: self.lambda_b.unwrap_or(10.0),
            lambda_identity: self.lambda_identity.unwrap_or(0.5),
        }
    }

    /// CUT's options, with the defaults of `--model` (the official code's).
    pub fn cut(&self) -> CutOptions {
        let d = self.model.defaults();
        CutOptions {
            lambda_gan: self.lambda_gan.unwrap_or(1.0),
            lambda_nce: self.lambda_nce.unwrap_or(d.lambda_nce),
            nce_idt: self.nce_idt.unwrap_or(d.nce_idt),
            nce_layers: self.nce_layers.clone().unwrap_or_else(|| vec![0, 4, 8, 12, 16]),
            all_negatives: self.nce_includes_all_negatives_from_minibatch.unwrap_or(false),
            net_f: self.net_f.unwrap_or(PatchFeatures::MlpSample),
            net_f_nc: self.net_f_nc.unwrap_or(256),
            nce_t: self.nce_t.unwrap_or(0.07),
            num_patches: self.num_patches.unwrap_or(256),
            flip_equivariance: self.flip_equivariance.unwrap_or(d.flip_equivariance),
        }
    }

    /// The generator (G_A's shape for CycleGAN; CUT's one generator).
    pub fn generator(&self, input_nc: usize, output_nc: usize) -> GeneratorConfig {
        let cut = self.model.is_cut();
        GeneratorConfig {
            arch: self.net_g,
            input_nc,
            output_nc,
            ngf: self.ngf,
            norm: self.norm,
            dropout: self.dropout,
            antialias: cut && !self.no_antialias && self.net_g.is_resnet(),
            antialias_up: cut && !self.no_antialias_up && self.net_g.is_resnet(),
        }
    }

    /// The smallest training image side both networks take.
    pub fn min_image_size(&self) -> usize {
        self.net_g.min_size().max(self.discriminator(self.input_nc).min_size())
    }

    /// Which network sets [`Self::min_image_size`], in the user's words.
    pub fn min_image_size_reason(&self) -> String {
        let (g, d) = (self.net_g.min_size(), self.discriminator(self.input_nc).min_size());
        if g >= d {
            format!("the {} generator needs images of at least {g} px", self.net_g.name())
        } else {
            format!("the {} discriminator needs images of at least {d} px", self.net_d_description())
        }
    }

    fn net_d_description(&self) -> String {
        match self.net_d {
            DiscriminatorArch::NLayers => format!("n_layers ({})", self.n_layers_d),
            arch => arch.name().to_string(),
        }
    }

    pub fn discriminator(&self, input_nc: usize) -> DiscriminatorConfig {
        let n_layers = if self.net_d == DiscriminatorArch::Basic { 3 } else { self.n_layers_d };
        DiscriminatorConfig {
            arch: self.net_d,
            input_nc,
            ndf: self.ndf,
            n_layers,
            norm: self.norm,
            // as the official code: the PixelGAN has no anti-aliased variant
            antialias: self.model.is_cut() && !self.no_antialias && self.net_d != DiscriminatorArch::Pixel,
        }
    }

    pub fn initializer(&self) -> Initializer {
        Initializer::new(self.init_type(), self.init_gain)
    }

    /// These options with every default of their method written out (for
    /// the report and the options file header).
    pub fn resolved(&self) -> TrainOptions {
        let mut o = self.clone();
        o.n_epochs = Some(self.n_epochs());
        o.n_epochs_decay = Some(self.n_epochs_decay());
        o.init_type = Some(self.init_type());
        if self.model.is_cut() {
            let c = self.cut();
            o.lambda_gan = Some(c.lambda_gan);
            o.lambda_nce = Some(c.lambda_nce);
            o.nce_idt = Some(c.nce_idt);
            o.nce_layers = Some(c.nce_layers);
            o.nce_includes_all_negatives_from_minibatch = Some(c.all_negatives);
            o.net_f = Some(c.net_f);
            o.net_f_nc = Some(c.net_f_nc);
            o.nce_t = Some(c.nce_t);
            o.num_patches = Some(c.num_patches);
            o.flip_equivariance = Some(c.flip_equivariance);
        } else {
            o.pool_size = Some(self.pool_size());
            let c = self.cycle_weights();
            o.lambda_a = Some(c.lambda_a);
            o.lambda_b = Some(c.lambda_b);
            o.lambda_identity = Some(c.lambda_identity);
        }
        o
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("options serialize")
    }

    pub fn from_toml(text: &str) -> Result<Self, OptionError> {
        // Missing keys take the defaults: merge the file over a serialized default.
        let mut table: toml::Table = toml::from_str(&Self::default().to_toml()).expect("defaults parse");
        let given: toml::Table = toml::from_str(text).map_err(|e| OptionError(e.message().to_string()))?;
        table.extend(given);
        table.try_into().map_err(|e: toml::de::Error| OptionError(e.message().to_string()))
    }

    /// Every option in force as `(key, value)` text (defaults of the method written out), for the report.
    pub fn entries(&self) -> Vec<(String, String)> {
        let table: toml::Table = toml::from_str(&self.resolved().to_toml()).expect("options parse");
        table.into_iter().map(|(k, v)| (k, v.to_string().trim_matches('"').to_string())).collect()
    }

    /// The keys whose value differs from the method's default (the official code marks these too).
    pub fn non_defaults(&self) -> Vec<String> {
        // against the defaults of the same method, --model itself apart
        let defaults: std::collections::HashMap<_, _> =
            Self { model: self.model, ..Self::default() }.entries().into_iter().collect();
        let changed = self.entries().into_iter().filter(|(k, v)| defaults.get(k) != Some(v)).map(|(k, _)| k);
        (self.model != Method::default()).then(|| "model".to_string()).into_iter().chain(changed).collect()
    }
}

/// CycleGAN's loss weights, defaults filled in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CycleWeights {
    pub lambda_a: f64,
    pub lambda_b: f64,
    pub lambda_identity: f64,
}

/// CUT's and FastCUT's options, defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct CutOptions {
    pub lambda_gan: f64,
    pub lambda_nce: f64,
    pub nce_idt: bool,
    pub nce_layers: Vec<usize>,
    pub all_negatives: bool,
    pub net_f: PatchFeatures,
    pub net_f_nc: usize,
    pub nce_t: f64,
    pub num_patches: usize,
    pub flip_equivariance: bool,
}

/// Names shown to users for a value-enum value.
pub fn value_name<T: ValueEnum>(v: &T) -> String {
    v.to_possible_value().map(|p| p.get_name().to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[derive(clap::Parser)]
    struct Wrapper {
        #[command(flatten)]
        options: TrainOptions,
    }

    /// An option's default that depends on the method is stated in its help
    /// (`[default: 50]`, `[default: cut 1; fastcut 10]`) and filled in by
    /// code: this holds the two to one fact, for every method the help names.
    #[test]
    fn stated_defaults_are_the_defaults_in_force() {
        let methods = [Method::CycleGan, Method::Cut, Method::Fastcut];
        let resolved: Vec<toml::Table> = methods
            .iter()
            .map(|&model| toml::from_str(&TrainOptions { model, ..TrainOptions::default() }.resolved().to_toml()).unwrap())
            .collect();
        let same = |stated: &str, value: &toml::Value| {
            let written = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Array(a) => a.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(","),
                v => v.to_string(),
            };
            match (stated.parse::<f64>(), written.parse::<f64>()) {
                (Ok(a), Ok(b)) => a == b,
                _ => stated == written,
            }
        };
        let mut checked = 0;
        for arg in Wrapper::command().get_arguments() {
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let Some(stated) = help.split("[default: ").nth(1).and_then(|s| s.split(']').next()) else { continue };
            let long = arg.get_long().expect("options are long flags");
            // the methods the option is for: a tag like "(cyclegan)" or "(cut, fastcut)", else all
            let for_methods: Vec<Method> =
                methods.iter().copied().filter(|m| !help.contains("(cut, fastcut") || m.is_cut()).filter(|m| !help.contains("(cyclegan") || !m.is_cut()).collect();
            let mut rest: Vec<Method> = for_methods.clone();
            let mut general = None;
            let by_name = |name: &str| methods.iter().copied().find(|m| m.name() == name.trim());
            for part in stated.split(';').map(str::trim) {
                // "cut and fastcut: xavier", "cut: 200", "cut 1", or a value for the others
                let (names, value) = match part.split_once(':') {
                    Some((names, value)) if names.split(" and ").all(|n| by_name(n).is_some()) => (names.split(" and ").collect(), value.trim()),
                    _ => match part.split_once(' ') {
                        Some((name, value)) if by_name(name).is_some() => (vec![name], value.trim()),
                        _ => (vec![], part),
                    },
                };
                if names.is_empty() {
                    general = Some(value);
                }
                for m in names.into_iter().filter_map(by_name) {
                    let i = methods.iter().position(|x| *x == m).unwrap();
                    assert!(resolved[i].contains_key(long), "--{long}: {} writes no default out", m.name());
                    assert!(same(value, &resolved[i][long]), "--{long}: help says {value} for {}, in force {}", m.name(), resolved[i][long]);
                    rest.retain(|x| *x != m);
                    checked += 1;
                }
            }
            if let Some(value) = general {
                for m in rest {
                    let i = methods.iter().position(|x| *x == m).unwrap();
                    assert!(resolved[i].contains_key(long), "--{long}: {} writes no default out", m.name());
                    assert!(same(value, &resolved[i][long]), "--{long}: help says {value} for {}, in force {}", m.name(), resolved[i][long]);
                    checked += 1;
                }
            }
        }
        assert!(checked >= 25, "{checked} stated defaults checked");
    }
}
