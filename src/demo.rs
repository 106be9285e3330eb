//! `cyclegan demo`: the whole job on a dataset shipped inside the binary.
//! Train a small CycleGAN on emoji (Noto style -> Twemoji style) for a few
//! minutes, translate the held-out test emoji, and score the translations
//! against their aligned Twemoji twins.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use burn::tensor::Device;
use image::RgbImage;
use include_dir::{Dir, include_dir};

use crate::checkpoint::Direction;
use crate::data::folder;
use crate::error::{Error, Result};
use crate::evaluate::psnr_u8;
use crate::image_io;
use crate::nets::GeneratorArch;
use crate::train::{self, Event, Outcome, options::TrainOptions};
use crate::translate::{self, TranslateJob, Translator};

static DATASET: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/demo/emoji");

/// The demo's training settings: small networks at the emoji's native 64 px.
pub fn options(output: &Path, epochs: usize) -> TrainOptions {
    TrainOptions {
        dataroot: Some(output.join("data")),
        output: Some(output.to_path_buf()),
        net_g: GeneratorArch::Resnet6Blocks,
        ngf: 16,
        ndf: 16,
        load_size: 64,
        crop_size: 64,
        n_epochs: Some(epochs.div_ceil(2)),
        n_epochs_decay: Some(epochs / 2),
        print_freq: 10,
        display_freq: 65,
        save_latest_freq: 500,
        save_epoch_freq: epochs.max(1),
        ..TrainOptions::default()
    }
}

/// Write the embedded dataset to `dir` (trainA, trainB, testA, testB).
pub fn unpack_dataset(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    DATASET.extract(dir).map_err(|e| Error::io(dir, e))
}

/// How the test translations compare with their twins.
pub struct Score {
    pub images: usize,
    /// Mean PSNR of the untranslated A images against the B twins (the baseline).
    pub psnr_before: f64,
    /// Mean PSNR of G_A(A) against the B twins.
    pub psnr_after: f64,
    pub comparison: PathBuf,
}

pub struct DemoOutcome {
    pub training: Outcome,
    pub score: Score,
}

/// Train (reporting to `on_event`), translate the test set and score it.
pub fn run(output: &Path, epochs: usize, stop: Arc<AtomicBool>, on_event: &mut dyn FnMut(Event)) -> anyhow::Result<DemoOutcome> {
    let data = output.join("data");
    if crate::train::run_dir::RunDir::new(output).options_path().exists() {
        anyhow::bail!("{}: already holds a demo run; choose another --output", output.display());
    }
    unpack_dataset(&data)?;
    let opts = options(output, epochs);
    let training = train::run(&opts, false, stop, on_event)?;
    let device = Device::flex();
    let translator = Translator::open(output, Direction::A2B, &device)?;
    let fake_b = output.join("test").join("fake_B");
    let job = TranslateJob { inputs: vec![data.join("testA")], output: fake_b.clone(), load_size: None, tiling: None };
    let found = folder::find_images(&job.inputs)?;
    let summary = translate::run(&translator, &job, &found, |_| {})?;
    if let Some(e) = summary.failed.into_iter().next() {
        return Err(e.into());
    }
    let score = score(&data.join("testA"), &fake_b, &data.join("testB"), &output.join("test").join("comparison.png"))?;
    Ok(DemoOutcome { training, score })
}

/// PSNR of the translations and of the inputs against the targets, and a
/// picture: inputs on top, translations in the middle, targets below.
pub fn score(inputs: &Path, translated: &Path, targets: &Path, picture: &Path) -> Result<Score> {
    let mut rows = Vec::new();
    let (mut before, mut after) = (0.0, 0.0);
    let files = folder::images_in(inputs)?;
    for input in &files {
        let name = input.file_name().expect("file");
        let a = image_io::decode(input)?.to_rgb8();
        let fake = image_io::decode(&translated.join(name))?.to_rgb8();
        let b = image_io::decode(&targets.join(name))?.to_rgb8();
        before += psnr_u8(a.as_raw(), b.as_raw());
        after += psnr_u8(fake.as_raw(), b.as_raw());
        rows.push([a, fake, b]);
    }
    let n = files.len().max(1) as f64;
    // three rows (inputs, translations, twins), one column per emoji
    let (w, h) = (rows[0][0].width(), rows[0][0].height());
    let gap = 4;
    let mut grid = RgbImage::from_pixel(rows.len() as u32 * (w + gap) + gap, 3 * h + 4 * gap, image::Rgb([255, 255, 255]));
    for (c, column) in rows.iter().enumerate() {
        for (r, img) in column.iter().enumerate() {
            let x = gap + c as u32 * (w + gap);
            let y = gap + r as u32 * (h + gap);
            image::imageops::overlay(&mut grid, img, x as i64, y as i64);
        }
    }
    image_io::save(picture, &image_io::to_data(&image::DynamicImage::ImageRgb8(grid), 3))?;
    Ok(Score { images: files.len(), psnr_before: before / n, psnr_after: after / n, comparison: picture.to_path_buf() })
}
