//! Helpers shared by the tests: fixtures, comparisons, running the binary.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Tensor, TensorData};
use cyclegan::checkpoint::{self, StateDict};
use cyclegan::nets::{GeneratorArch, GeneratorConfig, NormKind};

pub fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests").join("fixtures").join(name)
}

/// The checkout the fixtures are in: where cargo runs the tests, else where they
/// were built, else the current folder (a test binary carried to another
/// machine, as `scripts/gpu-check.sh` does, runs from the checkout's root).
fn repo_root() -> PathBuf {
    if let Ok(dir) = std::env::var("CARGO_MANIFEST_DIR") {
        return dir.into();
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR"));
    if built.join("tests").join("fixtures").is_dir() {
        return built.to_path_buf();
    }
    PathBuf::from(".")
}

/// A fixture file: tensors and its string metadata.
pub struct Fixture {
    pub tensors: StateDict,
    pub meta: HashMap<String, String>,
}

impl Fixture {
    pub fn open(name: &str) -> Self {
        let (tensors, meta) = checkpoint::read_safetensors(&fixture(&format!("{name}.safetensors"))).unwrap();
        Self { tensors, meta }
    }

    pub fn data(&self, key: &str) -> TensorData {
        self.tensors.get(key).unwrap_or_else(|| panic!("fixture lacks {key}")).clone()
    }

    pub fn tensor<const D: usize>(&self, key: &str, device: &burn::tensor::Device) -> Tensor<D> {
        Tensor::from_data(self.data(key), device)
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.meta.get(key).map(String::as_str)
    }

    pub fn num(&self, key: &str) -> Option<usize> {
        self.meta.get(key).map(|v| v.parse().unwrap())
    }
}

/// The generator a fixture's metadata describes (CycleGAN's and CUT's fixtures).
pub fn generator_config(fx: &Fixture) -> GeneratorConfig {
    GeneratorConfig {
        arch: GeneratorArch::from_name(fx.str("arch").unwrap()).unwrap(),
        input_nc: fx.num("input_nc").unwrap_or(3),
        output_nc: fx.num("output_nc").unwrap_or(3),
        ngf: fx.num("ngf").unwrap(),
        norm: NormKind::from_name(fx.str("norm").unwrap_or("instance")).unwrap(),
        dropout: fx.str("dropout") == Some("true"),
        antialias: fx.str("antialias") == Some("true"),
        antialias_up: fx.str("antialias_up") == Some("true"),
    }
}

pub fn floats(data: &TensorData) -> Vec<f32> {
    data.clone().convert::<f32>().try_into_vec::<f32>().unwrap()
}

/// ||got - want|| / ||want||.
pub fn rel_l2(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    let num: f64 = got.iter().zip(want).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum();
    let den: f64 = want.iter().map(|b| (*b as f64).powi(2)).sum();
    (num / den.max(1e-30)).sqrt()
}

pub fn assert_close(what: &str, got: &TensorData, want: &TensorData, tol: f64) {
    assert_eq!(got.shape().to_vec(), want.shape().to_vec(), "{what}: shapes differ");
    let err = rel_l2(&floats(got), &floats(want));
    assert!(err < tol, "{what}: relative L2 error {err:.3e} over {tol:.0e}");
}

/// A parameter's gradient against the fixture's `grad.<key>`, to `tol`
/// relative L2. A conv bias followed by instance norm has an exactly zero
/// gradient (the norm removes the mean) and both sides hold rounding noise
/// only: that noise is measured against the layer's weight gradient instead.
pub fn assert_param_grad(what: &str, fx: &Fixture, key: &str, got: &TensorData, tol: f64) {
    let norm = |key: &str| floats(&fx.data(&format!("grad.{key}"))).iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
    let want = fx.data(&format!("grad.{key}"));
    let sibling = key.strip_suffix(".bias").map(|p| norm(&format!("{p}.weight"))).unwrap_or(0.0);
    if norm(key) < 1e-4 * sibling {
        let err = floats(got).iter().zip(floats(&want)).map(|(a, b)| (*a as f64 - b as f64).powi(2)).sum::<f64>().sqrt() / sibling;
        assert!(err < tol, "{what}: error {err:.3e} of the weight gradient's norm");
    } else {
        assert_close(what, got, &want, tol);
    }
}

/// The `cyclegan` binary built for this test run.
pub fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_cyclegan"))
}

/// Run the binary; returns (success, stdout, stderr).
pub fn run(args: &[&str]) -> (bool, String, String) {
    let out = bin().args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// The records of a run's `losses.jsonl`.
pub fn losses(run_dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run_dir.join("losses.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A dataroot in `dir` with `n` images per domain (`trainA`, `trainB`):
/// the fixtures' two training images first (in the order the PyTorch
/// reference trained on them), then other fixture images.
pub fn dataset(dir: &Path, n: usize) -> (PathBuf, PathBuf) {
    let (a, b) = (dir.join("trainA"), dir.join("trainB"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let sources_a = [fixture("train_a0.png"), fixture("train_a1.png"), fixture("img_square.png")];
    let sources_b = [fixture("train_b0.png"), fixture("train_b1.png"), fixture("img_odd.png")];
    for i in 0..n {
        std::fs::copy(&sources_a[i % 3], a.join(format!("a{i}.png"))).unwrap();
        std::fs::copy(&sources_b[i % 3], b.join(format!("b{i}.png"))).unwrap();
    }
    (a, b)
}

pub fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// The device the golden tests run on: `CYCLEGAN_TEST_DEVICE` (cpu, cuda, wgpu; cpu by default).
pub fn device() -> burn::tensor::Device {
    use clap::ValueEnum;
    let name = std::env::var("CYCLEGAN_TEST_DEVICE").unwrap_or_else(|_| "cpu".into());
    cyclegan::device::DeviceChoice::from_str(&name, true)
        .unwrap_or_else(|e| panic!("CYCLEGAN_TEST_DEVICE: {e}"))
        .device()
        .unwrap_or_else(|e| panic!("CYCLEGAN_TEST_DEVICE: {e}"))
}

/// Relative tolerance of the golden tests: 1e-5, or `CYCLEGAN_TEST_TOL` (GPUs
/// reduce in other orders, some multiply in TF32).
pub fn tolerance() -> f64 {
    std::env::var("CYCLEGAN_TEST_TOL").ok().and_then(|v| v.parse().ok()).unwrap_or(1e-5)
}

/// A command that must be refused: a failing exit, `expected` in its error,
/// and the error on one line. `what` names the case in failure messages.
pub fn assert_refused(what: &dyn std::fmt::Debug, ok: bool, err: &str, expected: &str) {
    assert!(!ok, "accepted: {what:?}");
    assert!(err.contains(expected), "{what:?}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{what:?}: not one line: {err}");
}
