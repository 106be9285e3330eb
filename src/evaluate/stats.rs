//! A feature set saved for reuse (`cyclegan eval --save-stats`), so a test
//! set is run through Inception once: a safetensors file with the features
//! (`features`, `[N, 2048]`), their mean and covariance (`mu`, `sigma`, for
//! other tools; this program recomputes them from the features, exactly),
//! and metadata naming what it is.

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::TensorData;

use super::features::FeatureSet;
use super::fid::Gaussian;
use crate::checkpoint::{self, StateDict};
use crate::error::{Error, Result};

const KIND_KEY: &str = "cyclegan_stats";
const VERSION: &str = "1";

/// Whether `path` looks like a stats file rather than a folder of images.
pub fn is_stats_file(path: &Path) -> bool {
    path.is_file() && path.extension().is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
}

/// Save `set` (at least two vectors) with its mean and covariance, atomically.
pub fn save(path: &Path, set: &FeatureSet, source: &str) -> Result<()> {
    let gaussian = Gaussian::of(&set.features, set.dims);
    let mut dict = StateDict::default();
    dict.insert("features".into(), TensorData::new(set.features.clone(), [set.len(), set.dims]));
    dict.insert("mu".into(), TensorData::new(gaussian.mean.iter().map(|&v| v as f32).collect::<Vec<f32>>(), [set.dims]));
    let sigma: Vec<f32> = (0..set.dims * set.dims).map(|k| gaussian.cov[(k / set.dims, k % set.dims)] as f32).collect();
    dict.insert("sigma".into(), TensorData::new(sigma, [set.dims, set.dims]));
    let metadata = HashMap::from([
        (KIND_KEY.to_string(), VERSION.to_string()),
        ("images".to_string(), set.len().to_string()),
        ("source".to_string(), source.to_string()),
    ]);
    checkpoint::save_dict(path, &dict, metadata)
}

/// The features saved by [`save`].
pub fn load(path: &Path) -> Result<FeatureSet> {
    let (mut dict, metadata) = checkpoint::read_safetensors(path)?;
    if metadata.get(KIND_KEY).map(String::as_str) != Some(VERSION) {
        return Err(Error::checkpoint(path, "is not a statistics file written by `cyclegan eval --save-stats`"));
    }
    let features = dict.remove("features").ok_or_else(|| Error::checkpoint(path, "has no features"))?;
    let [n, dims]: [usize; 2] = features
        .shape()
        .as_ref()
        .try_into()
        .map_err(|_| Error::checkpoint(path, "features are not a [N, dims] matrix"))?;
    let features = features.convert::<f32>().try_into_vec::<f32>().expect("f32 after convert");
    if n < 2 || dims == 0 {
        return Err(Error::checkpoint(path, format!("holds {n} feature vectors; FID needs at least two")));
    }
    Ok(FeatureSet { features, dims })
}
