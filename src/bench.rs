//! `cyclegan bench`: time what users wait for, on this machine, the way the
//! PyTorch reference's `time-forward` and `time-train` do: a
//! `resnet_9blocks` generator (ngf 64) forward at 256 px, and a full
//! CycleGAN iteration (two such generators, two basic PatchGANs, ndf 64) at
//! 128 and 256 px; medians after one warm-up run, and each case's peak
//! resident memory (each case runs in a process of its own).

use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use serde::{Deserialize, Serialize};

use crate::evaluate::inception::{INPUT_SIZE, Inception};
use crate::evaluate::psnr_from_mse;
use crate::nets::{GeneratorArch, GeneratorConfig, Initializer};
use crate::peak::Peak;
use crate::rng::Rng;
use crate::train::options::{TrainOptions, ValidOptions};
use crate::train::method::Method;
use crate::train::trainer::Trainer;
use crate::ops::{Products, with_products};
use crate::translate::Precision;

/// The networks of a training case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Nets {
    /// Each method's official defaults (resnet_9blocks, ngf and ndf 64).
    Official,
    /// `-small`: resnet_6blocks with ngf and ndf 32, as small-tile setups
    /// (satellite tiles at 64 px) train.
    Small,
}

/// What one case measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Case {
    /// Generator forward (inference) at `size` px, `batch` images, in `precision`.
    Forward { size: usize, batch: usize, precision: Precision },
    /// One full training iteration of `method` at `size` px, batch 1.
    Train { size: usize, method: Method, nets: Nets },
    /// pytorch-fid's Inception v3 on a batch of `batch` 299x299 images (FID's feature pass).
    Inception { batch: usize },
    /// One core's arithmetic peak with one instruction ([`crate::peak`]).
    Peak(Peak),
}

impl Case {
    pub fn name(&self) -> String {
        match self {
            Case::Forward { size, batch, precision } => {
                let batch = if *batch == 1 { String::new() } else { format!("x{batch}") };
                let precision = match precision {
                    Precision::F32 => String::new(),
                    p => format!("-{}", crate::train::options::value_name(p)),
                };
                format!("forward{size}{batch}{precision}")
            }
            Case::Train { size, method, nets } => {
                let method = if *method == Method::CycleGan { String::new() } else { format!("-{}", method.name()) };
                let nets = if *nets == Nets::Small { "-small" } else { "" };
                format!("train{size}{method}{nets}")
            }
            Case::Inception { batch } => format!("inception{batch}"),
            Case::Peak(p) => p.name().to_string(),
        }
    }

    /// `forwardSIZE[xBATCH][-bf16|-f16]`, `trainSIZE[-cut|-fastcut][-small]` or `inceptionBATCH`;
    /// the error says what is wrong with the name in one line.
    pub fn parse(name: &str) -> Result<Self, String> {
        let unknown = || format!("unknown case {name} (forwardSIZE[xBATCH][-bf16|-f16], trainSIZE[-cut|-fastcut][-small], inceptionBATCH, peak-f32-avx2, peak-f32-avx512, peak-bf16)");
        if let Some(p) = Peak::ALL.into_iter().find(|p| p.name() == name) {
            return match p.missing() {
                None => Ok(Case::Peak(p)),
                Some(what) => Err(format!("case {name}: this CPU has no {what}")),
            };
        }
        let case = Self::parse_name(name).ok_or_else(unknown)?;
        // The sizes the benchmark's own networks take.
        let (size, multiple, min) = match case {
            Case::Forward { batch: 0, .. } | Case::Inception { batch: 0 } => return Err(format!("case {name}: the batch must be at least 1")),
            Case::Forward { size, .. } => (size, GENERATOR.size_multiple(), GENERATOR.min_size()),
            Case::Train { size, method, nets } => {
                let opts = train_options(method, nets);
                (size, opts.net_g.size_multiple(), opts.min_image_size())
            }
            Case::Inception { .. } | Case::Peak(_) => return Ok(case),
        };
        if !size.is_multiple_of(multiple) || size < min {
            return Err(format!("case {name}: the size must be a multiple of {multiple} and at least {min}"));
        }
        Ok(case)
    }

    fn parse_name(name: &str) -> Option<Self> {
        if let Some(rest) = name.strip_prefix("forward") {
            let (rest, precision) = match rest.split_once('-') {
                Some((r, p)) => (r, <Precision as clap::ValueEnum>::from_str(p, true).ok()?),
                None => (rest, Precision::F32),
            };
            let (size, batch) = rest.split_once('x').unwrap_or((rest, "1"));
            return Some(Case::Forward { size: size.parse().ok()?, batch: batch.parse().ok()?, precision });
        }
        if let Some(batch) = name.strip_prefix("inception") {
            return batch.parse().ok().map(|batch| Case::Inception { batch });
        }
        let rest = name.strip_prefix("train")?;
        let (rest, nets) = match rest.strip_suffix("-small") {
            Some(rest) => (rest, Nets::Small),
            None => (rest, Nets::Official),
        };
        let (size, method) = match rest.split_once('-') {
            Some((size, method)) => (size, <Method as clap::ValueEnum>::from_str(method, true).ok()?),
            None => (rest, Method::CycleGan),
        };
        size.parse().ok().map(|size| Case::Train { size, method, nets })
    }

    /// Images per run, for a forward case (its throughput is this over the time).
    pub fn images(&self) -> Option<usize> {
        match self {
            Case::Forward { batch, .. } | Case::Inception { batch } => Some(*batch),
            Case::Train { .. } | Case::Peak(_) => None,
        }
    }

    /// The cases the benchmark runs by default.
    pub fn defaults() -> Vec<Case> {
        vec![
            Case::Forward { size: 256, batch: 1, precision: Precision::F32 },
            Case::Forward { size: 256, batch: 4, precision: Precision::F32 },
            Case::Forward { size: 256, batch: 1, precision: Precision::Bf16 },
            Case::Train { size: 128, method: Method::CycleGan, nets: Nets::Official },
            Case::Train { size: 256, method: Method::CycleGan, nets: Nets::Official },
        ]
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Measurement {
    pub case: String,
    /// Seconds per run, warm-up excluded.
    pub runs: Vec<f64>,
    pub median_s: f64,
    /// Peak resident memory of the process, MiB (Linux; 0 elsewhere).
    pub peak_rss_mib: f64,
    pub threads: usize,
    /// For reduced precision: PSNR (dB) of the output against the f32 output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psnr_vs_f32: Option<f64>,
    /// For a peak case: billions of floating-point operations a second, one core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gflops: Option<f64>,
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Peak resident set size of this process so far (VmHWM), in MiB.
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The forward cases' generator, as the reference's `time-forward` builds it.
const GENERATOR: GeneratorArch = GeneratorArch::Resnet9Blocks;

fn generator(device: &Device, rng: &mut Rng) -> crate::nets::Generator {
    GeneratorConfig::new(GENERATOR).init(&Initializer::default(), rng, device)
}

/// A training case's options: each method's official defaults (resnet_9blocks,
/// basic D, LSGAN; CycleGAN's pool of 50; CUT's netF of 256 and 256 patches per layer).
fn train_options(method: Method, nets: Nets) -> ValidOptions {
    let opts = TrainOptions { model: method, ..TrainOptions::default() };
    let opts = match nets {
        Nets::Official => opts,
        Nets::Small => TrainOptions { net_g: GeneratorArch::Resnet6Blocks, ngf: 32, ndf: 32, ..opts },
    };
    opts.check().expect("each method's defaults are valid, and with the small networks")
}

/// Run one case `repeats` times after a warm-up run.
pub fn measure(case: Case, repeats: usize, device: &Device) -> Measurement {
    let mut rng = Rng::seed_from(0);
    let mut psnr_vs_f32 = None;
    let mut gflops = None;
    let runs: Vec<f64> = match case {
        Case::Forward { size, batch, precision } => {
            let g = generator(device, &mut rng).valid();
            let x = Tensor::<4>::random([batch, 3, size, size], Distribution::Uniform(-1.0, 1.0), device);
            let products = if precision.cpu_products(device) { Products::Bf16 } else { Products::F32 };
            let (g, x) = if precision == Precision::F32 {
                (g, x)
            } else if products == Products::Bf16 {
                // the CPU's bf16: f32 tensors, bf16 products
                let reference = g.forward(x.clone());
                let reduced = with_products(products, || g.forward(x.clone()));
                psnr_vs_f32 = Some(psnr(reference, reduced));
                (g, x)
            } else {
                let reference = g.forward(x.clone());
                let g = precision.cast(g);
                let x = x.cast(precision.dtype());
                let reduced = g.forward(x.clone()).cast(burn::tensor::FloatDType::F32);
                psnr_vs_f32 = Some(psnr(reference, reduced));
                (g, x)
            };
            (0..=repeats)
                .map(|_| {
                    let t = Instant::now();
                    let _ = with_products(products, || g.forward(x.clone()).into_data());
                    t.elapsed().as_secs_f64()
                })
                .skip(1)
                .collect()
        }
        Case::Train { size, method, nets } => {
            let ad = device.clone().autodiff();
            let opts = train_options(method, nets);
            let mut trainer = Trainer::new(&opts, &opts.initializer(), &mut rng, &ad);
            let a = Tensor::<4>::random([1, 3, size, size], Distribution::Uniform(-1.0, 1.0), &ad);
            let b = Tensor::<4>::random([1, 3, size, size], Distribution::Uniform(-1.0, 1.0), &ad);
            (0..=repeats)
                .map(|_| {
                    let t = Instant::now();
                    let _ = trainer.step(a.clone(), b.clone(), 2e-4, &mut rng);
                    t.elapsed().as_secs_f64()
                })
                .skip(1)
                .collect()
        }
        Case::Peak(p) => {
            // 2^25 rounds: 0.1-0.3 s at the 40-170 GFLOP/s cores have.
            const ROUNDS: u64 = 1 << 25;
            let runs: Vec<f64> = (0..=repeats)
                .map(|_| {
                    let t = Instant::now();
                    std::hint::black_box(p.run(std::hint::black_box(ROUNDS)));
                    t.elapsed().as_secs_f64()
                })
                .skip(1)
                .collect();
            gflops = Some(p.flops(ROUNDS) / median(&runs) / 1e9);
            runs
        }
        Case::Inception { batch } => {
            // weights do not change the arithmetic: a small constant everywhere but the norms' variance
            let mut source = |key: &str, shape: &[usize]| {
                let v = if key.ends_with("running_var") || key.ends_with("bn.weight") { 1.0 } else { 0.01 };
                Ok(vec![v; shape.iter().product()])
            };
            let net = Inception::build(&mut source, device).expect("all tensors given");
            let mut rng = Rng::seed_from(0);
            let x: Vec<f32> = (0..batch * 3 * INPUT_SIZE * INPUT_SIZE).map(|_| rng.uniform() as f32 * 2.0 - 1.0).collect();
            (0..=repeats)
                .map(|_| {
                    let t = Instant::now();
                    let _ = net.features(x.clone(), batch);
                    t.elapsed().as_secs_f64()
                })
                .skip(1)
                .collect()
        }
    };
    Measurement {
        case: case.name(),
        median_s: median(&runs),
        runs,
        peak_rss_mib: peak_rss_mib(),
        threads: if matches!(case, Case::Peak(_)) { 1 } else { rayon::current_num_threads() },
        psnr_vs_f32,
        gflops,
    }
}

/// PSNR of `b` against `a`, both in [-1, 1] (peak-to-peak 2), in dB.
fn psnr(a: Tensor<4>, b: Tensor<4>) -> f64 {
    psnr_from_mse((a - b).square().mean().into_scalar::<f32>() as f64, 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Case names parse to what they say and print back the same.
    #[test]
    fn case_names_round_trip() {
        for (name, case) in [
            ("train64-small", Case::Train { size: 64, method: Method::CycleGan, nets: Nets::Small }),
            ("train256-cut-small", Case::Train { size: 256, method: Method::Cut, nets: Nets::Small }),
            ("train128", Case::Train { size: 128, method: Method::CycleGan, nets: Nets::Official }),
            ("forward256x4-bf16", Case::Forward { size: 256, batch: 4, precision: Precision::Bf16 }),
        ] {
            assert_eq!(Case::parse(name), Ok(case), "{name}");
            assert_eq!(case.name(), name);
        }
        assert!(Case::parse("train64-small-cut").is_err());
    }
}
