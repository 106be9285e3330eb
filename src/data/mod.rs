//! Data: finding images on disk, the unaligned A/B training set, its
//! augmentation, and the loader threads that keep the training step fed.

pub mod folder;
pub mod loader;
pub mod transforms;
pub mod unaligned;
