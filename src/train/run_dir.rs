//! The run folder:
//!
//! ```text
//! RUN_DIR/
//!   options.toml          every option of the run (non-defaults listed at the top)
//!   losses.jsonl          one line per logged iteration
//!   metrics.jsonl         FID and KID per evaluation (with --eval-a/--eval-b)
//!   report.html           loss curves and samples, refreshed while training
//!   samples/              image grids: real_A fake_B rec_A idt_B / real_B fake_A rec_B idt_A
//!                         (CUT: real_A fake_B real_B idt_B)
//!   checkpoints/latest/   G_A, G_B, D_A, D_B .safetensors (CUT: G, D, F), optimizer.safetensors,
//!                         pool.safetensors (CycleGAN's image pools), state.json
//!   checkpoints/epoch_N/  the same, kept every --save-epoch-freq epochs
//!   checkpoints/best/     the same, at the lowest mean FID so far (with --eval-a/--eval-b)
//! ```
//!
//! A checkpoint folder is written beside its final name and renamed into
//! place, so a crash or a full disk while saving leaves the previous one whole.

use std::io::Write;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::options::TrainOptions;
use super::state::TrainState;
use super::step::Losses;
use super::trainer::Trainer;
use crate::error::{Error, Result};
use crate::fs;

pub struct RunDir {
    pub root: PathBuf,
}

/// One line of `metrics.jsonl`: FID and KID of each direction on the
/// held-out folders (`a2b`: G_A's translations of --eval-a against --eval-b;
/// CUT runs translate A to B only, and have no `b2a`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricRecord {
    pub epoch: usize,
    pub iter: u64,
    pub fid_a2b: f64,
    pub kid_a2b: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fid_b2a: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid_b2a: Option<f64>,
    /// What `checkpoints/best` minimises: the mean of the directions' FIDs.
    pub fid_mean: f64,
}

/// One line of `losses.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossRecord {
    pub epoch: usize,
    pub iter: u64,
    pub lr: f64,
    #[serde(flatten)]
    pub losses: Losses,
    /// Wall-clock seconds of this iteration (data wait included).
    pub seconds: f64,
}

impl RunDir {
    pub fn new(root: &Path) -> Self {
        Self { root: root.to_path_buf() }
    }

    /// A network's file in a checkpoint folder (or in a run folder, for `--model RUN`).
    pub fn net_file(dir: &Path, name: &str) -> PathBuf {
        dir.join(format!("{name}.safetensors"))
    }

    /// The optimisers' moments in a checkpoint folder.
    pub fn optimizer_file(dir: &Path) -> PathBuf {
        dir.join("optimizer.safetensors")
    }

    /// CycleGAN's image pools in a checkpoint folder.
    pub fn pool_file(dir: &Path) -> PathBuf {
        dir.join("pool.safetensors")
    }

    /// The counters of a checkpoint folder.
    pub fn state_file(dir: &Path) -> PathBuf {
        dir.join("state.json")
    }

    /// The file of the network `name` that `--model PATH` means when PATH is
    /// a run folder or one of its checkpoint folders: there, else in the
    /// run's `checkpoints/latest`.
    pub fn find_net(path: &Path, name: &str) -> Option<PathBuf> {
        [path.to_path_buf(), path.join("checkpoints").join("latest")].into_iter().map(|d| Self::net_file(&d, name)).find(|f| f.is_file())
    }

    pub fn options_path(&self) -> PathBuf {
        self.root.join("options.toml")
    }
    pub fn losses_path(&self) -> PathBuf {
        self.root.join("losses.jsonl")
    }
    pub fn samples_dir(&self) -> PathBuf {
        self.root.join("samples")
    }
    pub fn report_path(&self) -> PathBuf {
        self.root.join("report.html")
    }
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }
    pub fn latest(&self) -> PathBuf {
        self.checkpoints().join("latest")
    }
    pub fn epoch_dir(&self, epoch: usize) -> PathBuf {
        self.checkpoints().join(format!("epoch_{epoch}"))
    }
    pub fn best_dir(&self) -> PathBuf {
        self.checkpoints().join("best")
    }
    pub fn metrics_path(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    /// Create the folders of a new run. Refuses a folder that already holds a run.
    pub fn create(&self) -> Result<()> {
        if self.options_path().exists() {
            return Err(Error::Usage(format!(
                "{}: already holds a training run; pass --resume to continue it, or choose another --output",
                self.root.display()
            )));
        }
        for dir in [self.root.clone(), self.samples_dir(), self.checkpoints()] {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        Ok(())
    }

    pub fn write_options(&self, options: &TrainOptions) -> Result<()> {
        let changed = options.non_defaults();
        let mut text = String::from("# cyclegan train options. Changed from the defaults: ");
        text.push_str(if changed.is_empty() { "none" } else { "" });
        text.push_str(&changed.join(", "));
        text.push_str("\n\n");
        // every option in force, the method's defaults written out
        text.push_str(&options.resolved().to_toml());
        fs::write_bytes_atomic(&self.options_path(), text.as_bytes())
    }

    pub fn append_losses(&self, record: &LossRecord) -> Result<()> {
        append_line(&self.losses_path(), record)
    }

    pub fn append_metrics(&self, record: &MetricRecord) -> Result<()> {
        append_line(&self.metrics_path(), record)
    }

    /// The logged loss records (see [`read_log`]).
    pub fn read_losses(&self) -> Result<Vec<LossRecord>> {
        Ok(read_log(&self.losses_path())?.into_iter().map(|(_, record)| record).collect())
    }

    /// The logged evaluations (see [`read_log`]).
    pub fn read_metrics(&self) -> Result<Vec<MetricRecord>> {
        Ok(read_log(&self.metrics_path())?.into_iter().map(|(_, record)| record).collect())
    }

    /// Drop what the logs hold of iterations after `iteration` (a resumed run
    /// logs them again). The lines kept are kept as written; an unreadable
    /// log is an error, never rewritten.
    pub fn truncate_logs(&self, iteration: u64) -> Result<()> {
        truncate_log::<LossRecord>(&self.losses_path(), iteration)?;
        truncate_log::<MetricRecord>(&self.metrics_path(), iteration)
    }

    /// Save everything needed to continue, into `dir`, replacing it atomically.
    pub fn save_checkpoint(&self, dir: &Path, trainer: &Trainer, state: &mut TrainState) -> Result<()> {
        let staging = dir.with_file_name(format!("{}.new", dir.file_name().and_then(|n| n.to_str()).unwrap_or("ckpt")));
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
        }
        std::fs::create_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
        trainer.save(&staging, state)?;
        let json = serde_json::to_string_pretty(state).expect("state serializes");
        fs::write_bytes_atomic(&Self::state_file(&staging), json.as_bytes())?;
        replace_dir(&staging, dir)
    }

    /// The newest complete checkpoint folder of the run.
    pub fn latest_complete(&self) -> Option<PathBuf> {
        let latest = self.latest();
        let old = self.checkpoints().join("latest.old");
        [latest, old].into_iter().find(|d| Self::state_file(d).is_file())
    }

    /// Restore a trainer's networks, optimisers and pools and the counters.
    pub fn load_checkpoint(&self, dir: &Path, trainer: &mut Trainer, beta1: f64, device: &Device) -> Result<TrainState> {
        let state_path = Self::state_file(dir);
        let text = std::fs::read_to_string(&state_path).map_err(|e| Error::io(&state_path, e))?;
        let state: TrainState =
            serde_json::from_str(&text).map_err(|e| Error::checkpoint(&state_path, format!("unreadable ({e})")))?;
        trainer.load(dir, &state, beta1, device)?;
        Ok(state)
    }
}

/// A line of a `.jsonl` log, by the iteration it belongs to.
pub trait Logged: Serialize + DeserializeOwned {
    fn iteration(&self) -> u64;
}

impl Logged for LossRecord {
    fn iteration(&self) -> u64 {
        self.iter
    }
}

impl Logged for MetricRecord {
    fn iteration(&self) -> u64 {
        self.iter
    }
}

fn append_line(path: &Path, record: &impl Serialize) -> Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| Error::io(path, e))?;
    let line = serde_json::to_string(record).expect("records serialize");
    writeln!(f, "{line}").map_err(|e| Error::io(path, e))
}

/// Each record of a `.jsonl` log with its line as written. No log yet is an
/// empty one; a line that is not a record is an error naming it, except a
/// torn last line (no newline: the process died while writing it), which is left out.
fn read_log<T: Logged>(path: &Path) -> Result<Vec<(String, T)>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    let torn = !text.is_empty() && !text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut records = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        match serde_json::from_str(line) {
            Ok(record) => records.push((line.to_string(), record)),
            Err(_) if torn && i + 1 == lines.len() => {}
            Err(e) => return Err(Error::run_file(path, format!("line {} is not a record of this log ({e}); fix or delete it", i + 1))),
        }
    }
    Ok(records)
}

fn truncate_log<T: Logged>(path: &Path, iteration: u64) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let kept: String =
        read_log::<T>(path)?.into_iter().filter(|(_, r)| r.iteration() <= iteration).map(|(line, _)| line + "\n").collect();
    fs::write_bytes_atomic(path, kept.as_bytes())
}

/// Put `staging` where `target` is, atomically as far as readers can tell:
/// the old folder is moved aside first and removed only once the new one is in place.
fn replace_dir(staging: &Path, target: &Path) -> Result<()> {
    let old = target.with_file_name(format!("{}.old", target.file_name().and_then(|n| n.to_str()).unwrap_or("ckpt")));
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    }
    if target.exists() {
        std::fs::rename(target, &old).map_err(|e| Error::io(target, e))?;
    }
    std::fs::rename(staging, target).map_err(|e| Error::io(target, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    }
    Ok(())
}
