//! Training: the official CycleGAN optimisation over an unaligned dataset,
//! with checkpoints that resume exactly, a loss log, sample grids and a
//! report page.
//!
//! - [`options`]: every option, its default and its validation;
//! - [`step`]: the [`step::Trainer`] (networks, optimisers, pools) and one
//!   optimisation step; [`losses`], [`adam`], [`image_pool`], [`schedule`] its parts;
//! - [`state`]: the counters, fresh or resumed; [`run_dir`]: the files of a run;
//! - [`session`]: the epochs from start to end, reporting [`Event`]s; [`report`]: the HTML page;
//! - [`evaluation`]: FID and KID on held-out folders while training (`--eval-a/--eval-b`).
//!
//! Randomness is keyed by position: weight init from the seed, each epoch's
//! data plan from (seed, epoch), dropout masks from (seed, iteration), and
//! the image pool and penalty draws from a generator saved with every
//! checkpoint. A resumed run therefore draws exactly what an uninterrupted
//! one would have.

pub mod adam;
pub mod evaluation;
pub mod image_pool;
pub mod losses;
pub mod model;
pub mod options;
pub mod report;
pub mod run_dir;
pub mod schedule;
pub mod session;
pub mod state;
pub mod step;

pub use session::{Ending, Event, Outcome, run};
