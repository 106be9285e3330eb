//! A training session: from options (fresh or resumed) through the epochs to
//! the end, saving checkpoints, logging losses, writing samples and the
//! report. It prints nothing: what happens is reported as [`Event`]s, which
//! the command line renders (progress bars, warnings) and other callers may
//! ignore or record.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::tensor::{Device, Tensor};

use super::options::TrainOptions;
use super::report;
use super::evaluation::Evaluator;
use super::run_dir::{LossRecord, MetricRecord, RunDir};
use super::state::{Best, TrainState};
use super::step::Losses;
use super::trainer::Trainer;
use crate::data::loader::{Loader, stack};
use crate::data::transforms::Transform;
use crate::data::unaligned::UnalignedDataset;
use crate::device::DeviceChoice;
use crate::error::{Error, Result};
use crate::image_io::ImageData;
use crate::nets::Initializer;
use crate::rng::Rng;

/// Stream of the run's generator used for weight init.
const INIT_STREAM: u64 = 1;
/// Stream used by the image pools and the gradient penalty.
const STEP_STREAM: u64 = 2;

/// What a session reports while it runs, in order.
#[derive(Debug)]
pub enum Event<'a> {
    /// Something the user should know that does not stop training.
    Warning(String),
    /// A file failed to decode and was skipped (its error says which and why).
    Skipped(&'a Error),
    /// An epoch starts (or resumes, `done` of its `batches` already trained).
    EpochStart { epoch: usize, epochs: usize, batches: u64, done: u64 },
    /// One optimisation step; `logged` holds its losses every `--print-freq` steps.
    Step { iteration: u64, logged: Option<&'a Losses> },
    /// An epoch is done (and `latest` saved).
    EpochEnd { epoch: usize, epochs: usize, iteration: u64, lr: f64, mean_g_loss: f64, seconds: f64 },
    /// The held-out folders were evaluated; `best` when this is the lowest mean FID so far (saved as `checkpoints/best`).
    Evaluated { record: &'a MetricRecord, best: bool },
}

/// How a training run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// All epochs done.
    Finished,
    /// `--max-iters` reached.
    IterationLimit,
    /// Stopped through the `stop` flag (Ctrl-C); `latest` was saved.
    Interrupted,
}

impl Ending {
    /// In words, for the report and the terminal.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Finished => "finished",
            Self::IterationLimit => "stopped at --max-iters",
            Self::Interrupted => "interrupted; resume with --resume",
        }
    }
}

pub struct Outcome {
    pub ending: Ending,
    /// Iterations run by this session (not counting those before a resume).
    pub iterations: u64,
    pub epoch: usize,
    pub seconds: f64,
    pub run: RunDir,
}

/// Train (or, with `resume`, continue training) as `opts` says. `stop` is
/// polled after every iteration: when set, `latest` is saved and training
/// ends. `on_event` hears of progress as it happens.
pub fn run(opts: &TrainOptions, resume: bool, stop: Arc<AtomicBool>, on_event: &mut dyn FnMut(Event)) -> Result<Outcome> {
    let opts = &opts.clone().validated()?;
    let (dir_a, dir_b) = opts.data_dirs()?;
    let dataset = Arc::new(UnalignedDataset::open(&dir_a, &dir_b, opts.max_dataset_size)?);
    let run = RunDir::new(opts.output_dir()?);
    let device = opts.device.device()?.autodiff();
    if matches!(opts.device, DeviceChoice::Cuda | DeviceChoice::Wgpu) {
        // The kernels match PyTorch on jit and on lavapipe's Vulkan
        // (tests/gpu_path.rs), but no GPU has run them yet (BENCHMARKS.md, GPU).
        on_event(Event::Warning(
            "training on a GPU has not been checked against PyTorch on real hardware yet; \
             scripts/gpu-check.sh does that check"
                .into(),
        ));
    }

    let evaluator = Evaluator::open(opts, &opts.device.device()?)?;
    for warning in evaluator.iter().flat_map(|e| &e.warnings) {
        on_event(Event::Warning(warning.clone()));
    }

    let seed = Rng::seed_from(opts.seed);
    // Weights about to be loaded (resume, --init) are not drawn first.
    let init = if resume || opts.init.is_some() { Initializer::ForLoading } else { opts.initializer() };
    let mut trainer = Trainer::new(opts, &init, &mut seed.fork(INIT_STREAM), &device);
    let mut state = if resume {
        let dir = run.latest_complete().ok_or_else(|| {
            Error::Usage(format!("{}: no checkpoint to resume from (checkpoints/latest is missing)", run.root.display()))
        })?;
        let state = run.load_checkpoint(&dir, &mut trainer, opts.beta1, &device)?;
        run.truncate_logs(state.iteration)?;
        state
    } else {
        run.create()?;
        if let Some(init) = &opts.init {
            trainer.load_combined(init)?;
        }
        TrainState::fresh(opts, &seed.fork(STEP_STREAM))
    };
    run.write_options(opts)?;
    let mut step_rng = Rng::from_state(&state.step_rng).map_err(|e| Error::checkpoint(&run.latest(), e))?;

    let data = opts.model.data_policy();
    let transform = |channels, epoch: usize| Transform {
        preprocess: opts.preprocess,
        load_size: if data.crop_size_loads_once_decaying && epoch > opts.n_epochs() { opts.crop_size } else { opts.load_size },
        crop_size: opts.crop_size,
        filter: opts.resize_filter,
        channels,
        min_size: opts.min_image_size() as u32,
    };
    let mut loader = Loader::new(dataset.clone(), transform(opts.input_nc, 1), transform(opts.output_nc, 1), opts.workers);
    let epochs = opts.n_epochs() + opts.n_epochs_decay();
    let started = Instant::now();
    let start_iteration = state.iteration;
    let (entries, changed) = (opts.entries(), opts.non_defaults());
    let report = |run: &RunDir, status: &str| report::write_report(run, opts.model, &entries, &changed, status);
    let mut ending = Ending::Finished;

    'epochs: while state.epoch <= epochs {
        let epoch = state.epoch;
        let mut plan = dataset.plan(&seed, epoch, opts.serial_batches, !opts.no_flip);
        if data.drop_last_incomplete_batch {
            plan.truncate(plan.len() / opts.batch_size * opts.batch_size);
        }
        let batches = plan.len().div_ceil(opts.batch_size) as u64;
        loader.set_transforms(transform(opts.input_nc, epoch), transform(opts.output_nc, epoch));
        loader.start(plan.into_iter().skip(state.epoch_samples));
        let lr = opts.lr * state.schedule.factor(epoch);
        on_event(Event::EpochStart { epoch, epochs, batches, done: (state.epoch_samples / opts.batch_size) as u64 });
        loop {
            let tick = Instant::now();
            let Some((real_a, real_b)) = next_batch(&mut loader, opts.batch_size, &device, on_event)? else { break };
            let n = real_a.dims()[0];
            if opts.dropout {
                device.seed(opts.seed ^ (state.iteration + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            }
            let out = trainer.step(real_a, real_b, lr, &mut step_rng);
            // NaN weights cannot recover: stop before they are saved
            if let Some((name, value)) = out.losses.0.iter().find(|(_, v)| !v.is_finite()) {
                return Err(Error::Diverged { iteration: state.iteration + 1, loss: name.clone(), value: *value });
            }
            state.iteration += 1;
            state.epoch_samples += n;
            state.epoch_g_loss += out.generator_loss;
            state.epoch_steps += 1;
            let it = state.iteration;
            let logged = it % opts.print_freq == 0;
            if logged {
                run.append_losses(&LossRecord { epoch, iter: it, lr, losses: out.losses.clone(), seconds: tick.elapsed().as_secs_f64() })?;
            }
            on_event(Event::Step { iteration: it, logged: logged.then_some(&out.losses) });
            if it % opts.display_freq == 0 {
                report::save_samples(&run, it, &out.visuals)?;
                report(&run, &format!("training: epoch {epoch} of {epochs}"))?;
            }
            if let (Some(e), Some(freq)) = (&evaluator, opts.eval_freq)
                && it % freq == 0
            {
                evaluate(e, &run, &trainer, &mut state, &step_rng, epoch, on_event)?;
            }
            let interrupted = stop.load(Ordering::SeqCst);
            let at_limit = opts.max_iters.is_some_and(|m| it >= m);
            if it % opts.save_latest_freq == 0 || interrupted || at_limit {
                save_latest(&run, &trainer, &mut state, &step_rng)?;
            }
            if interrupted || at_limit {
                ending = if interrupted { Ending::Interrupted } else { Ending::IterationLimit };
                break 'epochs;
            }
        }
        if let (Some(e), None) = (&evaluator, opts.eval_freq) {
            evaluate(e, &run, &trainer, &mut state, &step_rng, epoch, on_event)?;
        }
        let mean_g_loss = state.end_epoch();
        save_latest(&run, &trainer, &mut state, &step_rng)?;
        if epoch % opts.save_epoch_freq == 0 || epoch == epochs {
            run.save_checkpoint(&run.epoch_dir(epoch), &trainer, &mut state)?;
        }
        let seconds = started.elapsed().as_secs_f64();
        on_event(Event::EpochEnd { epoch, epochs, iteration: state.iteration, lr, mean_g_loss, seconds });
    }
    report(&run, ending.describe())?;
    Ok(Outcome {
        ending,
        iterations: state.iteration - start_iteration,
        epoch: state.epoch.min(epochs),
        seconds: started.elapsed().as_secs_f64(),
        run,
    })
}

fn save_latest(run: &RunDir, trainer: &Trainer, state: &mut TrainState, step_rng: &Rng) -> Result<()> {
    save(run, &run.latest(), trainer, state, step_rng)
}

fn save(run: &RunDir, dir: &std::path::Path, trainer: &Trainer, state: &mut TrainState, step_rng: &Rng) -> Result<()> {
    state.step_rng = step_rng.state();
    run.save_checkpoint(dir, trainer, state)
}

/// Score the held-out folders, log it, and keep `checkpoints/best` at the lowest mean FID.
fn evaluate(
    evaluator: &Evaluator,
    run: &RunDir,
    trainer: &Trainer,
    state: &mut TrainState,
    step_rng: &Rng,
    epoch: usize,
    on_event: &mut dyn FnMut(Event),
) -> Result<()> {
    let record = evaluator.evaluate(&trainer.generators(), epoch, state.iteration)?;
    run.append_metrics(&record)?;
    let best = state.best.is_none_or(|b| record.fid_mean < b.fid_mean);
    if best {
        state.best = Some(Best { fid_mean: record.fid_mean, iteration: record.iter });
        save(run, &run.best_dir(), trainer, state, step_rng)?;
    }
    on_event(Event::Evaluated { record: &record, best });
    Ok(())
}

/// The next batch of (A, B) tensors, reporting skipped files; `None` at the end of the epoch.
fn next_batch(
    loader: &mut Loader,
    batch_size: usize,
    device: &Device,
    on_event: &mut dyn FnMut(Event),
) -> Result<Option<(Tensor<4>, Tensor<4>)>> {
    let mut a: Vec<ImageData> = Vec::with_capacity(batch_size);
    let mut b: Vec<ImageData> = Vec::with_capacity(batch_size);
    while a.len() < batch_size {
        let Some(loaded) = loader.next_sample() else { break };
        let loaded = loaded?;
        for skipped in &loaded.skipped {
            on_event(Event::Skipped(skipped));
        }
        a.push(loaded.a);
        b.push(loaded.b);
    }
    if a.is_empty() {
        return Ok(None);
    }
    Ok(Some((stack(&a, device)?, stack(&b, device)?)))
}
