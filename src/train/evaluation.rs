//! Evaluation while training (`--eval-a`, `--eval-b`): FID and KID of each
//! generator's translations of the held-out folders, as `cyclegan eval
//! --model` computes them. The real sides' features are computed once. The
//! generators run in inference mode on copies, and nothing here draws from
//! the training's random streams, so a run with evaluation trains exactly as
//! one without (and resumes exactly).

use std::path::PathBuf;

use burn::tensor::Device;

use super::options::TrainOptions;
use super::run_dir::MetricRecord;
use super::step::GeneratorView;
use crate::checkpoint::Direction;
use crate::error::Result;
use crate::evaluate::features::{DEFAULT_BATCH, FeatureSet};
use crate::evaluate::inception::Inception;
use crate::evaluate::kid::KidOptions;
use crate::evaluate::report::{self, Side};
use crate::evaluate::weights;
use crate::translate::Translator;

pub struct Evaluator {
    net: Inception,
    dir_a: PathBuf,
    dir_b: PathBuf,
    real_a: FeatureSet,
    real_b: FeatureSet,
    device: Device,
    /// Files of the held-out folders that could not be read, and any note on the weights.
    pub warnings: Vec<String>,
}

impl Evaluator {
    /// The evaluator the options ask for, if any: loads Inception and the real sides' features.
    pub fn open(opts: &TrainOptions, device: &Device) -> Result<Option<Self>> {
        let (Some(dir_a), Some(dir_b)) = (&opts.eval_a, &opts.eval_b) else { return Ok(None) };
        let loaded = weights::load(opts.inception.as_deref(), device)?;
        let real = |dir: &PathBuf| report::folder_side(&loaded.net, dir, DEFAULT_BATCH, &mut |_, _| {});
        let (real_a, real_b): (Side, Side) = (real(dir_a)?, real(dir_b)?);
        let warnings = loaded.warning.into_iter().chain(real_a.skipped.iter().chain(&real_b.skipped).map(|e| format!("skipping {e}"))).collect();
        Ok(Some(Self {
            net: loaded.net,
            dir_a: dir_a.clone(),
            dir_b: dir_b.clone(),
            real_a: real_a.set,
            real_b: real_b.set,
            device: device.clone(),
            warnings,
        }))
    }

    /// FID and KID of each generator's translations: G_A's (or CUT's G's)
    /// of the A folder against the B folder, and G_B's the other way.
    pub fn evaluate(&self, generators: &[GeneratorView], epoch: usize, iter: u64) -> Result<MetricRecord> {
        let mut scores: [Option<(f64, f64)>; 2] = [None, None];
        for g in generators {
            let (inputs, real, slot) = match g.direction {
                Direction::A2B => (&self.dir_a, &self.real_b, 0),
                Direction::B2A => (&self.dir_b, &self.real_a, 1),
            };
            let translator = Translator::from_generator(g.net.clone(), g.config.clone(), g.direction, &self.device);
            let fake = report::translated_side(&self.net, &translator, inputs, DEFAULT_BATCH, &mut |_, _| {})?;
            let s = report::scores(real, &fake.set, KidOptions::default());
            scores[slot] = Some((s.fid, s.kid));
        }
        let (fid_a2b, kid_a2b) = scores[0].expect("every method has an A to B generator");
        let b2a = scores[1];
        let fid_mean = b2a.map_or(fid_a2b, |(fid, _)| (fid_a2b + fid) / 2.0);
        Ok(MetricRecord { epoch, iter, fid_a2b, kid_a2b, fid_b2a: b2a.map(|s| s.0), kid_b2a: b2a.map(|s| s.1), fid_mean })
    }
}
