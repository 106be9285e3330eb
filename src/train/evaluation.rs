//! Evaluation while training (`--eval-a`, `--eval-b`): FID and KID of both
//! generators' translations of the held-out folders, as `cyclegan eval
//! --model` computes them. The real sides' features are computed once. The
//! generators run in inference mode on copies, and nothing here draws from
//! the training's random streams, so a run with evaluation trains exactly as
//! one without (and resumes exactly).

use std::path::PathBuf;

use burn::tensor::Device;

use super::model::CycleGan;
use super::options::TrainOptions;
use super::run_dir::MetricRecord;
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

    /// FID and KID of G_A's translations of the A folder against the B
    /// folder, and of G_B's the other way.
    pub fn evaluate(&self, nets: &CycleGan, epoch: usize, iter: u64) -> Result<MetricRecord> {
        let score = |direction: Direction| -> Result<(f64, f64)> {
            let (g, config, inputs, real) = match direction {
                Direction::A2B => (&nets.g_a, &nets.g_a_config, &self.dir_a, &self.real_b),
                Direction::B2A => (&nets.g_b, &nets.g_b_config, &self.dir_b, &self.real_a),
            };
            let translator = Translator::from_generator(g.clone(), config.clone(), direction, &self.device);
            let fake = report::translated_side(&self.net, &translator, inputs, DEFAULT_BATCH, &mut |_, _| {})?;
            let s = report::scores(real, &fake.set, KidOptions::default());
            Ok((s.fid, s.kid))
        };
        let (fid_a2b, kid_a2b) = score(Direction::A2B)?;
        let (fid_b2a, kid_b2a) = score(Direction::B2A)?;
        Ok(MetricRecord { epoch, iter, fid_a2b, kid_a2b, fid_b2a, kid_b2a, fid_mean: (fid_a2b + fid_b2a) / 2.0 })
    }
}
