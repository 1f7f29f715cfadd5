//! Batches: seeded shuffling per epoch, grey levels to `[0, 1]` floats, optional dynamic
//! binarisation, and the upload to a tensor.

use burn::tensor::{Device, Tensor, TensorData};

use super::ImageSet;
use crate::rng::Rng;

/// The order in which one epoch visits the training set, cut into batches. The last batch
/// may be smaller, unless [`EpochOrder::whole_batches`] drops it.
#[derive(Clone, Debug)]
pub struct EpochOrder {
    order: Vec<usize>,
    batch_size: usize,
    whole: bool,
}

impl EpochOrder {
    /// A fresh random order of `n` samples.
    pub fn shuffled(n: usize, batch_size: usize, rng: &mut Rng) -> Self {
        let mut order: Vec<usize> = (0..n).collect();
        rng.shuffle(&mut order);
        Self {
            order,
            batch_size: batch_size.max(1),
            whole: false,
        }
    }

    /// The same order with a ragged last batch dropped (its samples come first in another
    /// epoch's shuffle), for losses over batch statistics. At least one batch is kept.
    pub fn whole_batches(mut self, whole: bool) -> Self {
        self.whole = whole;
        self
    }

    /// Number of batches in the epoch.
    pub fn batch_count(&self) -> usize {
        match self.whole {
            true => (self.order.len() / self.batch_size).max(1),
            false => self.order.len().div_ceil(self.batch_size),
        }
    }

    /// The sample indices of batch `b`.
    pub fn batch(&self, b: usize) -> &[usize] {
        let start = b * self.batch_size;
        &self.order[start..(start + self.batch_size).min(self.order.len())]
    }
}

/// Grey levels of the images at `indices` as floats in `[0, 1]`, row-major `[n, dim]`.
///
/// With `binarize`, each pixel becomes 1 with probability equal to its grey level (a fresh
/// Bernoulli draw from the given generator).
pub fn pixels(set: &ImageSet, indices: &[usize], binarize: Option<&mut Rng>) -> Vec<f32> {
    let mut out = Vec::with_capacity(indices.len() * set.dim());
    for &i in indices {
        out.extend(set.image(i).iter().map(|&p| p as f32 / 255.0));
    }
    if let Some(rng) = binarize {
        for p in &mut out {
            *p = if rng.uniform() < *p { 1.0 } else { 0.0 };
        }
    }
    out
}

/// A `[rows, cols]` tensor on `device` from row-major floats.
pub fn to_tensor(values: Vec<f32>, rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values, [rows, cols]), device)
}

/// Reads a tensor back as row-major floats.
pub fn to_vec<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_covers_every_sample_once_with_a_short_last_batch() {
        let order = EpochOrder::shuffled(10, 4, &mut Rng::new(0));
        assert_eq!(order.batch_count(), 3);
        assert_eq!(order.batch(2).len(), 2);
        let mut seen: Vec<usize> = (0..3).flat_map(|b| order.batch(b).to_vec()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn binarisation_keeps_the_mean_grey_level() {
        let set = ImageSet {
            width: 100,
            height: 100,
            channels: 1,
            pixels: vec![64; 10_000],
            labels: vec![0],
            factors: Vec::new(),
        };
        let grey = pixels(&set, &[0], None);
        assert!((grey[0] - 64.0 / 255.0).abs() < 1e-6);
        let bin = pixels(&set, &[0], Some(&mut Rng::new(1)));
        assert!(bin.iter().all(|&p| p == 0.0 || p == 1.0));
        let mean = bin.iter().sum::<f32>() / bin.len() as f32;
        assert!((mean - 64.0 / 255.0).abs() < 0.02, "mean {mean}");
    }
}
