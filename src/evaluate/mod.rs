//! How good translations are, by the numbers the field reports:
//!
//! - [`inception`]: pytorch-fid's Inception v3 and [`weights`]: finding its file;
//! - [`features`]: image files to pool3 features, in batches;
//! - [`fid`] and [`kid`]: the distances between two feature sets (pytorch-fid's
//!   FID, torch-fidelity's KID); [`stats`]: a feature set saved for reuse;
//! - [`paired`]: L1, PSNR and SSIM of aligned pairs;
//! - [`report`]: a whole evaluation of two folders, as `cyclegan eval` and
//!   training's `--eval-a/--eval-b` run it.

pub mod features;
pub mod fid;
pub mod inception;
pub mod kid;
mod numpy_rng;
pub mod paired;
pub mod report;
pub mod stats;
pub mod weights;

pub use paired::{psnr_from_mse, psnr_u8};
