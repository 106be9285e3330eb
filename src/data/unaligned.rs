//! The unaligned dataset of CycleGAN (official `UnalignedDataset`): two
//! unpaired folders; an epoch visits `max(|A|, |B|)` samples, A in a shuffled
//! order (or in order with `--serial-batches`), each paired with a random B
//! (or `B[i mod |B|]`).
//!
//! An epoch's plan (which A, which B, which crop and flip) is drawn at the
//! start of the epoch from a generator derived from the seed and the epoch
//! number alone, so a run resumed mid-epoch replays exactly the same plan.

use std::path::{Path, PathBuf};

use super::folder;
use super::transforms::Augment;
use crate::error::{Error, Result};
use crate::rng::Rng;

pub struct UnalignedDataset {
    pub a: Vec<PathBuf>,
    pub b: Vec<PathBuf>,
}

/// One training sample: indices into A and B and how to augment each.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub a: usize,
    pub b: usize,
    pub aug_a: Augment,
    pub aug_b: Augment,
}

impl UnalignedDataset {
    /// List both folders (sorted, recursively), keeping at most `max_size` of each.
    pub fn open(dir_a: &Path, dir_b: &Path, max_size: Option<usize>) -> Result<Self> {
        let take = |dir: &Path| -> Result<Vec<PathBuf>> {
            if !dir.is_dir() {
                return Err(Error::image(dir, "is not a folder"));
            }
            let mut files = folder::images_in(dir)?;
            files.truncate(max_size.unwrap_or(usize::MAX).max(1));
            Ok(files)
        };
        Ok(Self { a: take(dir_a)?, b: take(dir_b)? })
    }

    /// Samples per epoch.
    pub fn len(&self) -> usize {
        self.a.len().max(self.b.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The samples of epoch `epoch` (1-based), in order.
    pub fn plan(&self, seed: &Rng, epoch: usize, serial: bool, flip: bool) -> Vec<Sample> {
        let mut rng = seed.fork(EPOCH_STREAM + epoch as u64);
        let n = self.len();
        let mut order: Vec<usize> = (0..n).collect();
        if !serial {
            // Fisher-Yates
            for i in (1..n).rev() {
                order.swap(i, rng.below(i + 1));
            }
        }
        order
            .into_iter()
            .map(|i| {
                let b = if serial { i % self.b.len() } else { rng.below(self.b.len()) };
                let aug_a = Augment::draw(&mut rng, flip);
                let aug_b = Augment::draw(&mut rng, flip);
                Sample { a: i % self.a.len(), b, aug_a, aug_b }
            })
            .collect()
    }
}

/// Streams of the run's generator reserved for epoch plans (one per epoch).
const EPOCH_STREAM: u64 = 1 << 32;

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(na: usize, nb: usize) -> UnalignedDataset {
        UnalignedDataset {
            a: (0..na).map(|i| PathBuf::from(format!("a{i}"))).collect(),
            b: (0..nb).map(|i| PathBuf::from(format!("b{i}"))).collect(),
        }
    }

    #[test]
    fn serial_pairs_by_index_modulo() {
        let plan = ds(3, 2).plan(&Rng::seed_from(0), 1, true, false);
        let pairs: Vec<_> = plan.iter().map(|s| (s.a, s.b)).collect();
        assert_eq!(pairs, vec![(0, 0), (1, 1), (2, 0)]);
        assert!(plan.iter().all(|s| !s.aug_a.flip && !s.aug_b.flip));
    }

    #[test]
    fn shuffled_plans_cover_a_differ_by_epoch_and_repeat_for_the_same_epoch() {
        let d = ds(5, 7);
        let seed = Rng::seed_from(9);
        let p1 = d.plan(&seed, 1, false, true);
        assert_eq!(p1.len(), 7, "max(|A|, |B|) samples");
        let mut seen: Vec<usize> = p1.iter().map(|s| s.a).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen, vec![0, 1, 2, 3, 4]);
        assert_eq!(p1, d.plan(&seed, 1, false, true));
        assert_ne!(p1, d.plan(&seed, 2, false, true));
        assert!(p1.iter().any(|s| s.aug_a.flip) && p1.iter().any(|s| !s.aug_a.flip));
    }
}
