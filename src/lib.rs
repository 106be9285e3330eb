//! CycleGAN: unpaired image-to-image translation (Zhu et al. 2017) on burn.
//!
//! The pipeline, in the order data flows through it:
//!
//! - [`image_io`]: decode any image file to a `[-1, 1]` tensor, encode back, write atomically;
//! - [`data`]: the unaligned A/B dataset, its augmentation and the loader threads;
//! - [`nets`]: generators and discriminators with the official parameter names;
//! - [`ops`]: reflection padding and instance norm, fused on the CPU;
//! - [`checkpoint`]: self-describing safetensors files, and `.pth` import without pickle code;
//! - [`train`]: losses, the image pool, schedules, the optimisation step, the run folder;
//! - [`evaluate`]: how good translations are (FID, KID, paired L1/PSNR/SSIM);
//! - [`translate`]: images, folders and large pictures through a trained generator;
//! - [`video`]: videos through a generator, kept steady along the optical flow (ffmpeg reads and writes);
//! - [`serve`]: generators behind an HTTP API and a web page;
//! - [`export`]: generators as ONNX files for other runtimes;
//! - [`zoo`]: the official pretrained generators and datasets, downloaded by name;
//! - [`cli`]: one typed options struct per command.

// Kernels index several arrays in step (clearer than zipped iterators there),
// kernel signatures carry full geometry, and networks are few and long-lived.
#![allow(clippy::needless_range_loop, clippy::too_many_arguments, clippy::large_enum_variant)]

pub mod bench;
pub mod peak;
pub mod checkpoint;
pub mod device;
pub mod error;
pub mod evaluate;
pub mod export;
pub mod fs;
pub mod image_io;
pub mod nets;
pub mod ops;
pub mod rng;
pub mod serve;
pub mod data;
pub mod demo;
pub mod translate;
pub mod video;
pub mod cli;
pub mod train;
pub mod zoo;
