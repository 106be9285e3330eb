//! Training: the official CycleGAN optimisation over an unaligned dataset,
//! with checkpoints that resume exactly, a loss log, sample grids and a
//! report page.
//!
//! Randomness is keyed by position: weight init from the seed, each epoch's
//! data plan from (seed, epoch), dropout masks from (seed, iteration), and
//! the image pool and penalty draws from a generator saved with every
//! checkpoint. A resumed run therefore draws exactly what an uninterrupted
//! one would have.

pub mod adam;
pub mod image_pool;
pub mod losses;
pub mod model;
pub mod options;
pub mod report;
pub mod run_dir;
pub mod schedule;
pub mod step;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::tensor::Device;
use indicatif::{ProgressBar, ProgressStyle};

use crate::data::loader::{Loader, stack};
use crate::data::transforms::Transform;
use crate::data::unaligned::UnalignedDataset;
use crate::error::{Error, Result};
use crate::image_io::ImageData;
use crate::rng::Rng;
use adam::Adam;
use image_pool::ImagePool;
use model::CycleGan;
use options::TrainOptions;
use run_dir::{LossRecord, RunDir, TrainState};
use schedule::Schedule;
use step::{Losses, Objective, Trainer};

/// Stream of the run's generator used for weight init.
const INIT_STREAM: u64 = 1;
/// Stream used by the image pools and the gradient penalty.
const STEP_STREAM: u64 = 2;

/// How a training run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// All epochs done.
    Finished,
    /// `--max-iters` reached.
    IterationLimit,
    /// Interrupted (Ctrl-C); `latest` was saved.
    Interrupted,
}

pub struct Outcome {
    pub ending: Ending,
    pub iterations: u64,
    pub epoch: usize,
    pub seconds: f64,
    pub run: RunDir,
}

/// Train (or, with `resume`, continue training) as `opts` says. `stop` is
/// polled after every iteration: when set, `latest` is saved and training ends.
pub fn run(opts: &TrainOptions, resume: bool, stop: Arc<AtomicBool>) -> Result<Outcome> {
    opts.validate().map_err(Error::Usage)?;
    let (dir_a, dir_b) = opts.data_dirs().map_err(Error::Usage)?;
    let dataset = Arc::new(UnalignedDataset::open(&dir_a, &dir_b, opts.max_dataset_size)?);
    let run = RunDir::new(opts.output_dir().map_err(Error::Usage)?);
    let device = opts.device.device().map_err(Error::Usage)?.autodiff();
    if opts.device != crate::device::DeviceChoice::Cpu {
        // BENCHMARKS.md, GPU: with fusion off, wgpu matches PyTorch's first
        // iteration but drifts by up to 2% by the third; no real GPU checked yet.
        eprintln!(
            "warning: training on a GPU has not been checked against PyTorch on real hardware yet; \
             scripts/gpu-check.sh does that check"
        );
    }

    let seed = Rng::seed_from(opts.seed);
    let mut trainer = Trainer {
        nets: CycleGan::new(
            &opts.generator(opts.input_nc, opts.output_nc),
            &opts.discriminator(opts.input_nc),
            &opts.initializer(),
            &mut seed.fork(INIT_STREAM),
            &device,
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
    };
    let mut state = if resume {
        let dir = run.latest_complete().ok_or_else(|| {
            Error::Usage(format!("{}: no checkpoint to resume from (checkpoints/latest is missing)", run.root.display()))
        })?;
        let state = run.load_checkpoint(&dir, &mut trainer, opts.beta1, &device)?;
        run.truncate_losses(state.iteration)?;
        state
    } else {
        run.create()?;
        if let Some(init) = &opts.init {
            trainer.nets.load_combined(init)?;
        }
        TrainState {
            epoch: 1,
            epoch_samples: 0,
            iteration: 0,
            schedule: Schedule::new(opts.lr_policy, opts.n_epochs, opts.n_epochs_decay, opts.lr_decay_iters),
            opt_g_steps: 0,
            opt_d_steps: 0,
            step_rng: seed.fork(STEP_STREAM).state(),
            epoch_g_loss: 0.0,
            epoch_steps: 0,
        }
    };
    run.write_options(opts)?;
    let mut step_rng = Rng::from_state(&state.step_rng).map_err(|e| Error::checkpoint(&run.latest(), e))?;

    let transform = |channels| Transform {
        preprocess: opts.preprocess,
        load_size: opts.load_size,
        crop_size: opts.crop_size,
        filter: opts.resize_filter,
        channels,
        min_size: opts.net_g.min_size() as u32,
    };
    let mut loader = Loader::new(dataset.clone(), transform(opts.input_nc), transform(opts.output_nc), opts.workers);
    let total_epochs = opts.n_epochs + opts.n_epochs_decay;
    let started = Instant::now();
    let start_iteration = state.iteration;
    let (entries, changed) = (opts.entries(), opts.non_defaults());
    let report = |run: &RunDir, status: &str| report::write_report(run, &entries, &changed, status);
    let mut ending = Ending::Finished;

    'epochs: while state.epoch <= total_epochs {
        let epoch = state.epoch;
        let plan = dataset.plan(&seed, epoch, opts.serial_batches, !opts.no_flip);
        let batches = plan.len().div_ceil(opts.batch_size) as u64;
        loader.start(plan.into_iter().skip(state.epoch_samples));
        let lr = opts.lr * state.schedule.factor(epoch);
        let bar = epoch_bar(epoch, total_epochs, batches, (state.epoch_samples / opts.batch_size) as u64);
        loop {
            let tick = Instant::now();
            let Some((real_a, real_b)) = next_batch(&mut loader, opts.batch_size, &device, &bar)? else { break };
            let n = real_a.dims()[0];
            if opts.dropout {
                device.seed(opts.seed ^ (state.iteration + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            }
            let (losses, visuals) = trainer.step(real_a, real_b, lr, &mut step_rng);
            state.iteration += 1;
            state.epoch_samples += n;
            state.epoch_g_loss += losses.generator_total();
            state.epoch_steps += 1;
            bar.inc(1);
            let it = state.iteration;
            if it % opts.print_freq == 0 {
                bar.set_message(short_losses(&losses));
                run.append_losses(&LossRecord { epoch, iter: it, lr, losses, seconds: tick.elapsed().as_secs_f64() })?;
            }
            if it % opts.display_freq == 0 {
                report::save_samples(&run, it, &visuals)?;
                report(&run, &format!("training: epoch {epoch} of {total_epochs}"))?;
            }
            let interrupted = stop.load(Ordering::SeqCst);
            let at_limit = opts.max_iters.is_some_and(|m| it >= m);
            if it % opts.save_latest_freq == 0 || interrupted || at_limit {
                save(&run, &trainer, &mut state, &step_rng)?;
            }
            if interrupted || at_limit {
                ending = if interrupted { Ending::Interrupted } else { Ending::IterationLimit };
                bar.abandon();
                break 'epochs;
            }
        }
        bar.finish_and_clear();
        let mean_g = state.epoch_g_loss / state.epoch_steps.max(1) as f64;
        eprintln!(
            "epoch {epoch}/{total_epochs} done: iteration {}, lr {lr:.2e}, mean generator loss {mean_g:.4}, {:.0} s so far",
            state.iteration,
            started.elapsed().as_secs_f64()
        );
        state.schedule.end_epoch(mean_g);
        state.epoch += 1;
        state.epoch_samples = 0;
        state.epoch_g_loss = 0.0;
        state.epoch_steps = 0;
        save(&run, &trainer, &mut state, &step_rng)?;
        if epoch % opts.save_epoch_freq == 0 || epoch == total_epochs {
            let dir = run.epoch_dir(epoch);
            run.save_checkpoint(&dir, &trainer, &state)?;
        }
    }
    let status = match ending {
        Ending::Finished => "finished",
        Ending::IterationLimit => "stopped at --max-iters",
        Ending::Interrupted => "interrupted; resume with --resume",
    };
    report(&run, status)?;
    Ok(Outcome {
        ending,
        iterations: state.iteration - start_iteration,
        epoch: state.epoch.min(total_epochs),
        seconds: started.elapsed().as_secs_f64(),
        run,
    })
}

fn save(run: &RunDir, trainer: &Trainer, state: &mut TrainState, step_rng: &Rng) -> Result<()> {
    state.step_rng = step_rng.state();
    state.opt_g_steps = trainer.opt_g.steps();
    state.opt_d_steps = trainer.opt_d.steps();
    run.save_checkpoint(&run.latest(), trainer, state)
}

/// The next batch of (A, B) tensors, reporting skipped files; `None` at the end of the epoch.
fn next_batch(
    loader: &mut Loader,
    batch_size: usize,
    device: &Device,
    bar: &ProgressBar,
) -> Result<Option<(burn::tensor::Tensor<4>, burn::tensor::Tensor<4>)>> {
    let mut a: Vec<ImageData> = Vec::with_capacity(batch_size);
    let mut b: Vec<ImageData> = Vec::with_capacity(batch_size);
    while a.len() < batch_size {
        let Some(loaded) = loader.next_sample() else { break };
        let loaded = loaded?;
        for skipped in &loaded.skipped {
            bar.suspend(|| eprintln!("warning: skipping {skipped}"));
        }
        a.push(loaded.a);
        b.push(loaded.b);
    }
    if a.is_empty() {
        return Ok(None);
    }
    Ok(Some((stack(&a, device)?, stack(&b, device)?)))
}

fn epoch_bar(epoch: usize, total: usize, batches: u64, done: u64) -> ProgressBar {
    let bar = ProgressBar::new(batches);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "epoch {epoch}/{total} {{bar:24}} {{pos}}/{{len}} {{per_sec}} ETA {{eta}} | {{msg}}"
        ))
        .expect("valid template"),
    );
    bar.set_position(done);
    bar
}

fn short_losses(l: &Losses) -> String {
    l.named().iter().map(|(k, v)| format!("{k} {v:.3}")).collect::<Vec<_>>().join(" ")
}
