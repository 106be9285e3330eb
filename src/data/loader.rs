//! Decoding and augmenting on worker threads, a few samples ahead of the
//! training step, delivered in plan order (so results do not depend on
//! thread timing). A file that fails to decode is reported once by name and
//! replaced by the next image of its domain.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};

use burn::tensor::{Device, Tensor, TensorData};

use super::transforms::{Augment, Transform};
use super::unaligned::{Sample, UnalignedDataset};
use crate::error::{Error, Result};
use crate::image_io::{self, ImageData};

/// A decoded sample, and the files that had to be skipped to get it.
pub struct Loaded {
    pub a: ImageData,
    pub b: ImageData,
    pub skipped: Vec<Error>,
}

pub struct Loader {
    dataset: Arc<UnalignedDataset>,
    transform_a: Transform,
    transform_b: Transform,
    bad: Arc<Mutex<HashSet<PathBuf>>>,
    pool: rayon::ThreadPool,
    ahead: usize,
    plan: VecDeque<Sample>,
    in_flight: VecDeque<Receiver<Result<Loaded>>>,
}

impl Loader {
    pub fn new(dataset: Arc<UnalignedDataset>, transform_a: Transform, transform_b: Transform, workers: usize) -> Self {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .thread_name(|i| format!("loader-{i}"))
            .build()
            .expect("loader threads start");
        Self {
            dataset,
            transform_a,
            transform_b,
            bad: Arc::default(),
            pool,
            ahead: 4 * workers,
            plan: VecDeque::new(),
            in_flight: VecDeque::new(),
        }
    }

    /// Augment samples queued from now on this way.
    pub fn set_transforms(&mut self, transform_a: Transform, transform_b: Transform) {
        self.transform_a = transform_a;
        self.transform_b = transform_b;
    }

    /// Queue these samples (dropping whatever was queued before).
    pub fn start(&mut self, samples: impl IntoIterator<Item = Sample>) {
        self.in_flight.clear();
        self.plan = samples.into_iter().collect();
        self.fill();
    }

    fn fill(&mut self) {
        while self.in_flight.len() < self.ahead {
            let Some(sample) = self.plan.pop_front() else { break };
            let (tx, rx) = sync_channel(1);
            let (ds, ta, tb, bad) = (self.dataset.clone(), self.transform_a, self.transform_b, self.bad.clone());
            self.pool.spawn(move || {
                let mut skipped = Vec::new();
                let result = (|| {
                    let a = load_first_good(&ds.a, sample.a, &ta, sample.aug_a, &bad, &mut skipped)?;
                    let b = load_first_good(&ds.b, sample.b, &tb, sample.aug_b, &bad, &mut skipped)?;
                    Ok(Loaded { a, b, skipped })
                })();
                let _ = tx.send(result);
            });
            self.in_flight.push_back(rx);
        }
    }

    /// The next sample of the plan, or `None` at its end.
    pub fn next_sample(&mut self) -> Option<Result<Loaded>> {
        let rx = self.in_flight.pop_front()?;
        let loaded = rx.recv().expect("loader thread ended without an answer");
        self.fill();
        Some(loaded)
    }
}

/// Decode `files[index]`, or the next file that decodes.
fn load_first_good(
    files: &[PathBuf],
    index: usize,
    transform: &Transform,
    aug: Augment,
    bad: &Mutex<HashSet<PathBuf>>,
    skipped: &mut Vec<Error>,
) -> Result<ImageData> {
    for k in 0..files.len() {
        let path = &files[(index + k) % files.len()];
        if bad.lock().expect("bad-file set").contains(path) {
            continue;
        }
        match image_io::decode(path).and_then(|img| transform.apply(path, img, aug)) {
            Ok(data) => return Ok(data),
            Err(e) => {
                bad.lock().expect("bad-file set").insert(path.clone());
                skipped.push(e);
            }
        }
    }
    let dir = files[0].parent().unwrap_or(&files[0]);
    // Say why, or a folder of images that are merely too small reads as unreadable.
    let why = skipped.last().map(|e| format!(" (the last: {e})")).unwrap_or_default();
    Err(Error::image(dir, format!("no image in this folder could be used{why}")))
}

/// Stack same-sized images into a `[N, C, H, W]` tensor.
pub fn stack(images: &[ImageData], device: &Device) -> Result<Tensor<4>> {
    let first = &images[0];
    if let Some(other) = images.iter().find(|i| (i.height, i.width) != (first.height, first.width)) {
        return Err(Error::Usage(format!(
            "images of one batch differ in size ({}x{} and {}x{}): use --batch-size 1 or a cropping --preprocess",
            first.width, first.height, other.width, other.height
        )));
    }
    let mut values = Vec::with_capacity(first.values.len() * images.len());
    for i in images {
        values.extend_from_slice(&i.values);
    }
    Ok(Tensor::from_data(TensorData::new(values, [images.len(), first.channels, first.height, first.width]), device))
}
