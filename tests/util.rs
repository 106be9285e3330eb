//! Helpers shared by the tests: fixtures, comparisons, running the binary.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write;
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
/// reduce in other orders, some multiply in TF32), which may only tighten it
/// on CI (`CI` set), where the CPU must meet 1e-5.
pub fn tolerance() -> f64 {
    const CPU: f64 = 1e-5;
    let asked = std::env::var("CYCLEGAN_TEST_TOL").ok().map(|v| v.parse::<f64>().unwrap_or_else(|_| panic!("CYCLEGAN_TEST_TOL={v} is not a number")));
    match asked {
        Some(tol) if std::env::var_os("CI").is_some() && (tol.is_nan() || tol > CPU) => panic!("CYCLEGAN_TEST_TOL={tol} would loosen the parity bounds on CI"),
        Some(tol) => tol,
        None => CPU,
    }
}

/// A command that must be refused: a failing exit, `expected` in its error,
/// and the error on one line. `what` names the case in failure messages.
pub fn assert_refused(what: &dyn std::fmt::Debug, ok: bool, err: &str, expected: &str) {
    assert!(!ok, "accepted: {what:?}");
    assert!(err.contains(expected), "{what:?}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{what:?}: not one line: {err}");
}

/// A tensor for [`pth`]: storage elements, then the view's offset, shape, stride.
pub struct View {
    pub key: &'static str,
    pub storage: Vec<f32>,
    pub offset: i64,
    pub shape: Vec<i64>,
    pub stride: Vec<i64>,
}

impl View {
    /// `value` seen as `shape` through stride 0 (what `torch.zeros(1).expand(...)` saves).
    pub fn expanded(key: &'static str, value: f32, shape: &[i64]) -> Self {
        Self { key, storage: vec![value], offset: 0, shape: shape.to_vec(), stride: vec![0; shape.len()] }
    }

    /// A contiguous tensor.
    pub fn dense(key: &'static str, storage: Vec<f32>, shape: &[usize]) -> Self {
        let mut stride = vec![1i64; shape.len()];
        for d in (0..shape.len().saturating_sub(1)).rev() {
            stride[d] = stride[d + 1] * shape[d + 1] as i64;
        }
        Self { key, storage, offset: 0, shape: shape.iter().map(|&s| s as i64).collect(), stride }
    }
}

/// A `torch.save` zip file (PyTorch >= 1.6 layout) holding `views`, pickled
/// as PyTorch pickles a state dict (protocol 2, `_rebuild_tensor_v2`).
pub fn pth(views: &[View]) -> Vec<u8> {
    fn int(v: i64) -> Vec<u8> {
        let mut b = vec![0x8a, 8]; // LONG1, 8 bytes
        b.extend(v.to_le_bytes());
        b
    }
    fn text(s: &str) -> Vec<u8> {
        let mut b = vec![b'X'];
        b.extend((s.len() as u32).to_le_bytes());
        b.extend(s.as_bytes());
        b
    }
    fn tuple(items: Vec<Vec<u8>>) -> Vec<u8> {
        let mut b = vec![b'('];
        items.into_iter().for_each(|i| b.extend(i));
        b.push(b't');
        b
    }
    let mut p = b"\x80\x02}(".to_vec();
    for (i, v) in views.iter().enumerate() {
        p.extend(text(v.key));
        p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n");
        let mut storage = tuple(vec![
            text("storage"),
            b"ctorch\nFloatStorage\n".to_vec(),
            text(&i.to_string()),
            text("cpu"),
            int(v.storage.len() as i64),
        ]);
        storage.push(b'Q'); // BINPERSID
        p.extend(tuple(vec![
            storage,
            int(v.offset),
            tuple(v.shape.iter().map(|&s| int(s)).collect()),
            tuple(v.stride.iter().map(|&s| int(s)).collect()),
            vec![0x89], // False: requires_grad
            b"ccollections\nOrderedDict\n)R".to_vec(),
        ]));
        p.push(b'R');
    }
    p.extend(b"u.");
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", stored).unwrap();
    zip.write_all(&p).unwrap();
    for (i, v) in views.iter().enumerate() {
        zip.start_file(format!("archive/data/{i}"), stored).unwrap();
        zip.write_all(&v.storage.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    }
    zip.finish().unwrap().into_inner()
}
