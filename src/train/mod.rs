//! Training: the official CycleGAN (or CUT) optimisation over an unaligned dataset,
//! with checkpoints that resume exactly, a loss log, sample grids and a
//! report page.
//!
//! - [`options`]: every option, its default and its validation; [`method`]:
//!   what `--model` picks (CycleGAN, CUT, FastCUT) and the defaults it sets;
//! - [`trainer`]: the [`trainer::Trainer`] (a method's networks, optimisers,
//!   pools) behind one face; [`step`]: what a step reports, which the methods
//!   share; [`cyclegan`] and [`cut`] the methods and their steps; [`losses`],
//!   [`adam`], [`image_pool`], [`schedule`] their parts; `net_files`: a
//!   method's named networks and optimisers saved and loaded;
//! - [`state`]: the counters, fresh or resumed; [`run_dir`]: the files of a run;
//! - [`session`]: the epochs from start to end, reporting [`Event`]s; [`report`]: the HTML page;
//! - [`evaluation`]: FID and KID on held-out folders while training (`--eval-a/--eval-b`).
//!
//! Randomness is keyed by position: weight init from the seed, each epoch's
//! data plan from (seed, epoch), dropout masks from (seed, iteration), and
//! the image pool, penalty, patch and flip draws from a generator saved with
//! every checkpoint. A resumed run therefore draws exactly what an uninterrupted
//! one would have.

pub mod adam;
pub mod cut;
pub mod cyclegan;
pub mod evaluation;
pub mod image_pool;
pub mod losses;
pub mod method;
mod net_files;
pub mod options;
pub mod report;
pub mod run_dir;
pub mod schedule;
pub mod session;
pub mod state;
pub mod step;
pub mod trainer;

pub use session::{Ending, Event, Outcome, run};
