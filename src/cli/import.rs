//! `cyclegan import`: a PyTorch checkpoint in, a self-describing safetensors file out.

use std::path::PathBuf;

use clap::Args;

use crate::checkpoint::{self, Direction, NetConfig, NetInfo};
use crate::error::Error;
use crate::nets::{GeneratorArch, GeneratorConfig, NormKind};

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The PyTorch checkpoint (a state_dict saved with torch.save), or a safetensors file.
    pub model: PathBuf,
    /// Where to write the safetensors file.
    #[arg(long, short)]
    pub output: PathBuf,
    /// Generator architecture; inferred from the keys when left out.
    #[arg(long = "arch", value_enum)]
    pub arch: Option<GeneratorArch>,
    /// Generator filters in the first layer (with --arch; inferred otherwise).
    #[arg(long, requires = "arch")]
    pub ngf: Option<usize>,
    /// Normalisation (with --arch; inferred otherwise).
    #[arg(long, value_enum, requires = "arch")]
    pub norm: Option<NormKind>,
    /// The generator was built with dropout.
    #[arg(long)]
    pub dropout: bool,
    /// Input channels (with --arch; inferred otherwise).
    #[arg(long, requires = "arch")]
    pub input_nc: Option<usize>,
    /// Output channels (with --arch; inferred otherwise).
    #[arg(long, requires = "arch")]
    pub output_nc: Option<usize>,
    /// Record which way the generator translates (G_A of the official code is a2b).
    #[arg(long, value_enum)]
    pub direction: Option<Direction>,
}

pub fn run(args: ImportArgs) -> anyhow::Result<()> {
    let raw = checkpoint::read_raw(&args.model)?;
    let tensors = checkpoint::normalize(raw.tensors);
    let inferred = match raw.info {
        Some(info) => Ok(info.config),
        None => checkpoint::infer(&tensors),
    };
    let config = match (args.arch, inferred) {
        (None, Ok(config)) => with_overrides(config, &args),
        (None, Err(why)) => return Err(Error::checkpoint(&args.model, why).into()),
        (Some(arch), inferred) => {
            // Sizes the keys show (ngf, channels, norm) still apply under another --arch.
            let base = match inferred {
                Ok(NetConfig::Generator(g)) => GeneratorConfig { arch, dropout: g.dropout && g.arch == arch, ..g },
                _ => GeneratorConfig::new(arch),
            };
            with_overrides(NetConfig::Generator(base), &args)
        }
    };
    config.validate().map_err(|e| Error::network(&args.model, e))?;
    let info = NetInfo { config: config.clone(), direction: args.direction, model: None };
    let device = burn::tensor::Device::flex();
    let mut rng = crate::rng::Rng::seed_from(0);
    let init = crate::nets::Initializer::ForLoading;
    let what = match &config {
        NetConfig::Generator(g) => {
            let mut net = g.init(&init, &mut rng, &device);
            tensors.load_into(&mut net).map_err(|e| {
                Error::checkpoint(&args.model, format!("does not fit a {} generator: {e}", g.arch.name()))
            })?;
            checkpoint::save(&args.output, &net, &info)?;
            format!(
                "{} generator (ngf {}, {} norm, {} -> {} channels{}{})",
                g.arch.name(),
                g.ngf,
                g.norm.name(),
                g.input_nc,
                g.output_nc,
                if g.dropout { ", dropout" } else { "" },
                match (g.antialias, g.antialias_up) {
                    (true, true) => ", anti-aliased (CUT)",
                    (true, false) => ", anti-aliased downsampling (CUT)",
                    (false, true) => ", anti-aliased upsampling (CUT)",
                    (false, false) => "",
                }
            )
        }
        NetConfig::Discriminator(d) => {
            let mut net = d.init(&init, &mut rng, &device);
            tensors.load_into(&mut net).map_err(|e| {
                Error::checkpoint(&args.model, format!("does not fit a {} discriminator: {e}", d.arch.name()))
            })?;
            checkpoint::save(&args.output, &net, &info)?;
            format!("{} discriminator (ndf {}, {} norm, {} layers)", d.arch.name(), d.ndf, d.norm.name(), d.n_layers)
        }
        NetConfig::PatchSampler(f) => {
            let mut net = f.init(&init, &mut rng, &device);
            tensors.load_into(&mut net).map_err(|e| Error::checkpoint(&args.model, format!("does not fit CUT's netF: {e}")))?;
            checkpoint::save(&args.output, &net, &info)?;
            format!("CUT netF ({}, {} layers, nc {})", f.kind.name(), f.channels.len(), f.nc)
        }
    };
    println!("imported {what} -> {}", args.output.display());
    Ok(())
}

fn with_overrides(config: NetConfig, args: &ImportArgs) -> NetConfig {
    match config {
        NetConfig::Generator(mut g) => {
            g.ngf = args.ngf.unwrap_or(g.ngf);
            g.norm = args.norm.unwrap_or(g.norm);
            g.input_nc = args.input_nc.unwrap_or(g.input_nc);
            g.output_nc = args.output_nc.unwrap_or(g.output_nc);
            g.dropout |= args.dropout;
            NetConfig::Generator(g)
        }
        d => d,
    }
}
