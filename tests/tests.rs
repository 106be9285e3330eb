//! The integration tests, one module per topic (a single test binary links once).

mod util;

mod browser;
mod checkpoints;
mod cli;
mod crafted;
mod cut;
mod cut_options;
mod eval;
mod export;
mod fuzz;
#[cfg(any(feature = "jit", feature = "wgpu", feature = "cuda"))]
mod gpu_path;
mod parity;
mod serve;
mod train;
mod train_options;
mod video;
mod zoo;
