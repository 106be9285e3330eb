//! Translating images with a trained generator: any size in, the same size
//! out, one file or whole folders.

mod padding;
mod precision;
mod tiling;

pub use padding::pad_to_fit;
pub use precision::Precision;
pub use tiling::{Tiling, translate_tiled};

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use image::DynamicImage;
use image::imageops::FilterType;

use crate::checkpoint::{self, Direction};
use crate::data::folder::FoundImage;
use crate::error::{Error, Result};
use crate::image_io::{self, ImageData};
use crate::nets::{Generator, GeneratorConfig};
use crate::train::cut::CutNet;
use crate::train::run_dir::RunDir;

/// A generator ready to translate images.
pub struct Translator {
    pub net: Generator,
    pub config: GeneratorConfig,
    pub direction: Option<Direction>,
    pub source: PathBuf,
    pub precision: Precision,
    device: Device,
}

impl Translator {
    /// Open a generator from a checkpoint file, a `.pth`, or a training run
    /// folder (where `direction` picks G_A or G_B).
    pub fn open(model: &Path, direction: Direction, device: &Device) -> Result<Self> {
        let file = resolve_model(model, direction)?;
        let translator = Self::open_file(&file, device)?;
        if let Some(recorded) = translator.direction
            && recorded != direction
            && !model.is_dir()
        {
            return Err(Error::checkpoint(
                &file,
                format!(
                    "translates {}, not {}; use the {} checkpoint (or a run folder) for --direction {}",
                    recorded.name(),
                    direction.name(),
                    direction.generator(),
                    direction.name()
                ),
            ));
        }
        Ok(translator)
    }

    /// Open the generator in `file`, whichever direction it records.
    pub fn open_file(file: &Path, device: &Device) -> Result<Self> {
        let loaded = checkpoint::load_generator(file, device)?;
        Ok(Self {
            net: loaded.net.valid(),
            config: loaded.config,
            direction: loaded.direction,
            source: file.to_path_buf(),
            precision: Precision::F32,
            device: device.clone(),
        })
    }

    /// Translate with a generator in memory (evaluation while training);
    /// `net` is taken for inference (no autodiff, dropout off).
    pub fn from_generator(net: Generator, config: GeneratorConfig, direction: Direction, device: &Device) -> Self {
        Self {
            net: net.valid(),
            config,
            direction: Some(direction),
            source: PathBuf::from(format!("<{} in training>", direction.generator())),
            precision: Precision::F32,
            device: device.clone(),
        }
    }

    /// Run in `precision` from now on (as [`Precision::on`] settles it for
    /// the device: on the CPU, bf16 keeps f32 tensors and rounds only the
    /// convolutions' products).
    pub fn with_precision(mut self, precision: Precision) -> Result<Self> {
        precision.check(&self.device)?;
        if !precision.cpu_products(&self.device) {
            self.net = precision.cast(self.net);
        }
        self.precision = precision;
        Ok(self)
    }

    /// An image as a network input: on the device, in the network's precision.
    pub fn input(&self, image: &ImageData) -> Tensor<4> {
        let x = image.to_tensor(&self.device);
        if self.precision == Precision::F32 || self.precision.cpu_products(&self.device) { x } else { x.cast(self.precision.dtype()) }
    }

    /// `f` (which runs the network) in this translator's precision.
    pub fn run<R>(&self, f: impl FnOnce(&Generator) -> R) -> R {
        if self.precision.cpu_products(&self.device) {
            crate::ops::with_products(crate::ops::Products::Bf16, || f(&self.net))
        } else {
            f(&self.net)
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Translate one image of any size: reflect-pad bottom and right to a
    /// size the architecture takes, run, crop back.
    pub fn translate(&self, image: &ImageData) -> ImageData {
        let x = self.input(image);
        let (x, h, w) = pad_to_fit(x, self.config.arch);
        self.run(|net| ImageData::from_tensor(net.forward(x).slice([0..1, 0..self.config.output_nc, 0..h, 0..w])))
    }
}

/// The generator file a `--model` argument names. In a run folder (or one
/// of its checkpoint folders) that is G_A or G_B for CycleGAN, and G, which
/// translates A to B only, for CUT.
pub fn resolve_model(model: &Path, direction: Direction) -> Result<PathBuf> {
    if !model.is_dir() {
        if !model.exists() {
            return Err(Error::checkpoint(model, "no such file or folder"));
        }
        return Ok(model.to_path_buf());
    }
    let name = direction.generator();
    if let Some(file) = RunDir::find_net(model, name) {
        return Ok(file);
    }
    if let Some(cut) = RunDir::find_net(model, CutNet::G.official()) {
        return match direction {
            Direction::A2B => Ok(cut),
            Direction::B2A => Err(Error::checkpoint(model, "is a CUT run: its one generator translates A to B only")),
        };
    }
    let file = RunDir::net_file(Path::new(""), name);
    Err(Error::checkpoint(model, format!("is a folder without {0} or checkpoints/latest/{0}: not a training run", file.display())))
}

/// The generators a `--model` path names, each loaded once with the way it
/// translates: every direction of a run folder (both for CycleGAN, A to B
/// for CUT), or a file's own (the one it records; a2b when it records none).
/// `serve` and `eval` open theirs here.
pub fn open_generators(path: &Path, device: &Device) -> Result<Vec<(Direction, Translator)>> {
    if path.is_dir() {
        let found = run_directions(path);
        if found.is_empty() {
            resolve_model(path, Direction::A2B)?; // says why the folder is not a run
        }
        return found.into_iter().map(|d| Ok((d, Translator::open(path, d, device)?))).collect();
    }
    let file = resolve_model(path, Direction::A2B)?; // says so if there is no such file
    let translator = Translator::open_file(&file, device)?;
    Ok(vec![(translator.direction.unwrap_or(Direction::A2B), translator)])
}

/// The directions a run folder's generators translate (both for CycleGAN, A to B for CUT).
pub fn run_directions(run: &Path) -> Vec<Direction> {
    [Direction::A2B, Direction::B2A].into_iter().filter(|&d| resolve_model(run, d).is_ok()).collect()
}

/// What to translate and how (`cyclegan translate`).
#[derive(Clone, Debug)]
pub struct TranslateJob {
    pub inputs: Vec<PathBuf>,
    pub output: PathBuf,
    /// Scale each image so its width is this (aspect kept) before translating.
    pub load_size: Option<u32>,
    /// Translate images larger than a tile tile by tile.
    pub tiling: Option<Tiling>,
}

/// What a translate run did.
#[derive(Debug, Default)]
pub struct Summary {
    pub translated: usize,
    pub failed: Vec<Error>,
    pub seconds: f64,
}

/// Where each input's translation goes: `output` itself for a single file
/// input, else `output/<relative path>` (an unwritable extension becomes `.png`).
pub fn plan_outputs(job: &TranslateJob, found: &[FoundImage]) -> Result<Vec<PathBuf>> {
    let single_file = job.inputs.len() == 1 && found.len() == 1 && !job.inputs[0].is_dir();
    if single_file {
        if image_io::output_format(&job.output).is_none() {
            if job.output.is_dir() {
                return Ok(vec![output_name(&job.output, &found[0].relative)]);
            }
            return Err(Error::image(&job.output, "unknown output format: use a .png, .jpg, .webp, .bmp or .tif name"));
        }
        return Ok(vec![job.output.clone()]);
    }
    if job.output.is_file() {
        return Err(Error::Usage(format!(
            "{}: is a file, but {} images need an output folder",
            job.output.display(),
            found.len()
        )));
    }
    Ok(found.iter().map(|f| output_name(&job.output, &f.relative)).collect())
}

fn output_name(dir: &Path, relative: &Path) -> PathBuf {
    let out = dir.join(relative);
    if image_io::output_format(&out).is_some() { out } else { out.with_extension("png") }
}

/// Translate the images found for `job` (by [`crate::data::folder::find_images`] on its
/// inputs), calling `progress` after each. Failures of single images are
/// collected, not fatal.
pub fn run(translator: &Translator, job: &TranslateJob, found: &[FoundImage], mut progress: impl FnMut(&Path)) -> Result<Summary> {
    let outputs = plan_outputs(job, found)?;
    let start = Instant::now();
    let mut summary = Summary::default();
    for (input, output) in found.iter().zip(&outputs) {
        match translate_file(translator, &input.path, output, job.load_size, job.tiling) {
            Ok(()) => summary.translated += 1,
            Err(e) => summary.failed.push(e),
        }
        progress(&input.path);
    }
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

/// Read, translate (tile by tile if tiling is asked for and the image is
/// larger than a tile), and write one image.
pub fn translate_file(
    translator: &Translator,
    input: &Path,
    output: &Path,
    load_size: Option<u32>,
    tiling: Option<Tiling>,
) -> Result<()> {
    let out = translate_image(translator, image_io::decode(input)?, load_size, tiling)?;
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    image_io::save(output, &out)
}

/// Translate a decoded image as [`translate_file`] does, without the files.
pub fn translate_image(
    translator: &Translator,
    img: DynamicImage,
    load_size: Option<u32>,
    tiling: Option<Tiling>,
) -> Result<ImageData> {
    translate_data(translator, &prepare(img, load_size, translator.config.input_nc), tiling)
}

/// The size an image of `width` x `height` has after `--load-size`.
pub fn loaded_size(width: u32, height: u32, load_size: Option<u32>) -> (u32, u32) {
    match load_size {
        Some(w) => (w, ((height as f64 * w as f64 / width as f64).round() as u32).max(1)),
        None => (width, height),
    }
}

/// An image as the network takes it: rescaled to `--load-size` if given, with
/// the network's input channels.
pub fn prepare(mut img: DynamicImage, load_size: Option<u32>, input_nc: usize) -> ImageData {
    let (width, height) = loaded_size(img.width(), img.height(), load_size);
    if (width, height) != (img.width(), img.height()) {
        img = img.resize_exact(width, height, FilterType::CatmullRom);
    }
    image_io::to_data(&img, input_nc)
}

/// Translate a prepared image, tile by tile if tiling is asked for and it is larger than a tile.
pub fn translate_data(translator: &Translator, data: &ImageData, tiling: Option<Tiling>) -> Result<ImageData> {
    Ok(match tiling {
        Some(t) if data.width.max(data.height) > t.tile => translate_tiled(translator, data, t)?,
        _ => translator.translate(data),
    })
}
