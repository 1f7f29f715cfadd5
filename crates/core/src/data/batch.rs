//! Batches: seeded shuffling per epoch, grey levels to `[0, 1]` floats, optional dynamic
//! binarisation, and the upload to a tensor.

use burn::tensor::{DType, Device, Int, Tensor, TensorData};

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

/// A set's images on a device as they are stored, one byte per value, four bytes packed into
/// each 32-bit word (`[images, ceil(dim / 4)]`, value `4 q + k` in bits `8 k ..`): a quarter of
/// what floats would take to send and to keep. [`DeviceImages::batch`] then sends only the
/// batch's indices, and unpacks and scales on the device.
#[derive(Clone, Debug)]
pub struct DeviceImages {
    words: Tensor<2, Int>,
    dim: usize,
}

impl DeviceImages {
    /// Uploads every image of `set` to `device`, once.
    pub fn upload(set: &ImageSet, device: &Device) -> Self {
        let dim = set.dim();
        let per = dim.div_ceil(4);
        let mut words = Vec::with_capacity(set.len() * per);
        for i in 0..set.len() {
            for chunk in set.image(i).chunks(4) {
                let mut w = [0u8; 4];
                w[..chunk.len()].copy_from_slice(chunk);
                words.push(i32::from_le_bytes(w));
            }
        }
        let data = TensorData::new(words, [set.len(), per]);
        Self {
            words: Tensor::from_data(data, (device, DType::I32)),
            dim,
        }
    }

    /// The images at `indices` as floats in `[0, 1]`, `[n, dim]`, built on the device.
    pub fn batch(&self, indices: &[usize]) -> Tensor<2> {
        let device = self.words.device();
        let n = indices.len();
        let rows: Vec<i32> = indices.iter().map(|&i| i as i32).collect();
        let rows = Tensor::<1, Int>::from_data(TensorData::new(rows, [n]), (&device, DType::I32));
        let words = self.words.clone().select(0, rows);
        let per = self.dim.div_ceil(4);
        let bytes: Vec<Tensor<3, Int>> = (0..4i32)
            .map(|k| {
                words
                    .clone()
                    .bitwise_right_shift_scalar(8 * k)
                    .bitwise_and_scalar(255)
                    .reshape([n, per, 1])
            })
            .collect();
        Tensor::cat(bytes, 2)
            .reshape([n, 4 * per])
            .slice([0..n, 0..self.dim])
            .float()
            / 255.0
    }
}

/// A `[rows, cols]` tensor on `device` from row-major floats.
pub fn to_tensor(values: Vec<f32>, rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values, [rows, cols]), device)
}

pub use crate::fused::to_vec;

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
    fn images_packed_on_the_device_unpack_to_the_host_batch() {
        // 7 values a row (not a multiple of four), every byte value, high bits included.
        let set = ImageSet {
            width: 7,
            height: 1,
            channels: 1,
            pixels: (0..5 * 7)
                .map(|i| (i * 37 % 256) as u8)
                .chain([255; 7])
                .collect(),
            labels: vec![0; 6],
            factors: Vec::new(),
        };
        let device = Device::flex();
        let on_device = DeviceImages::upload(&set, &device);
        let indices = [5, 0, 3, 3];
        let got = to_vec(on_device.batch(&indices));
        assert_eq!(got, pixels(&set, &indices, None));
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
