//! The image pool of Shrivastava et al. 2017 (CycleGAN paper section 4):
//! the discriminators see a mix of the newest generated images and up to
//! `size` older ones, which damps oscillation. Same policy as the official
//! `ImagePool`: fill up first; then each new image is, with probability
//! one half, swapped for a random stored one (which is returned instead).

use burn::tensor::{Device, Tensor, TensorData};

use crate::rng::Rng;

pub struct ImagePool {
    size: usize,
    /// Stored images, `[1, C, H, W]` each, detached from any graph.
    images: Vec<Tensor<4>>,
}

impl ImagePool {
    pub fn new(size: usize) -> Self {
        Self { size, images: Vec::new() }
    }

    /// The images to train the discriminator on, for a batch of new ones.
    pub fn query(&mut self, batch: Tensor<4>, rng: &mut Rng) -> Tensor<4> {
        let batch = batch.detach();
        if self.size == 0 {
            return batch;
        }
        let n = batch.dims()[0];
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let image = batch.clone().narrow(0, i, 1);
            if self.images.len() < self.size {
                self.images.push(image.clone());
                out.push(image);
            } else if rng.uniform() > 0.5 {
                let j = rng.below(self.size);
                out.push(std::mem::replace(&mut self.images[j], image));
            } else {
                out.push(image);
            }
        }
        Tensor::cat(out, 0)
    }

    /// The stored images, for a checkpoint.
    pub fn contents(&self) -> Vec<TensorData> {
        self.images.iter().map(|t| t.to_data()).collect()
    }

    /// Restore stored images from a checkpoint.
    pub fn restore(size: usize, images: Vec<TensorData>, device: &Device) -> Self {
        Self { size, images: images.into_iter().map(|d| Tensor::from_data(d, device)).collect() }
    }

    /// How many images the pool keeps at most.
    pub fn capacity(&self) -> usize {
        self.size
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(v: f32, device: &Device) -> Tensor<4> {
        Tensor::from_data(TensorData::new(vec![v; 4], [1, 1, 2, 2]), device)
    }

    fn first(t: &Tensor<4>) -> f32 {
        t.to_data().convert::<f32>().try_to_vec::<f32>().unwrap()[0]
    }

    #[test]
    fn fills_then_swaps_about_half_the_time() {
        let device = Device::flex();
        let mut pool = ImagePool::new(3);
        let mut rng = Rng::seed_from(0);
        for v in 0..3 {
            assert_eq!(first(&pool.query(image(v as f32, &device), &mut rng)), v as f32, "filling returns the new image");
        }
        let mut old = 0;
        for v in 3..203 {
            let got = first(&pool.query(image(v as f32, &device), &mut rng));
            if got != v as f32 {
                assert!(got < v as f32, "returned an image from the past");
                old += 1;
            }
        }
        assert!((70..130).contains(&old), "{old} of 200 queries returned a stored image");
        assert_eq!(pool.len(), 3);
    }

    #[test]
    fn size_zero_passes_through() {
        let device = Device::flex();
        let mut pool = ImagePool::new(0);
        let mut rng = Rng::seed_from(0);
        assert_eq!(first(&pool.query(image(5.0, &device), &mut rng)), 5.0);
        assert!(pool.is_empty());
    }
}
