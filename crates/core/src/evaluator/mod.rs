//! The evaluator: a small classifier trained once per dataset on its training split and cached
//! on disk, used to score every family's generator the same way (seeds' claims made
//! measurable): the class histogram of prior samples and its entropy (mode coverage), the
//! class accuracy of class-conditional samples, and a Frechet distance between real and
//! generated images in the classifier's penultimate features.

pub mod linalg;
pub mod readout;
pub mod scores;

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::{Device, Tensor};

use crate::data::batch::{EpochOrder, pixels, to_tensor};
use crate::data::{Dataset, ImageSet};
use crate::explore::Dense;
use crate::fsio::atomic_write;
use crate::rng::Rng;

pub use scores::{Scores, score};

/// Hidden widths of the classifier; the last is the feature layer of the Frechet distance.
pub const HIDDEN: [usize; 2] = [256, 128];
/// Passes over the training split.
pub const EPOCHS: usize = 5;
/// Test images whose features stand for the real data.
pub const REAL_IMAGES: usize = 2000;
const MAGIC: &[u8; 8] = b"LAEVAL01";

/// A trained classifier as plain data: ReLU MLP, logits at the end.
#[derive(Clone, Debug, PartialEq)]
pub struct Classifier {
    /// Layers, first to last.
    pub layers: Vec<Dense>,
}

impl Classifier {
    /// Penultimate features and logits of one image (intensities in `[0, 1]`).
    pub fn run(&self, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let mut a = x.to_vec();
        let mut b = Vec::new();
        let last = self.layers.len().saturating_sub(1);
        let mut features = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            layer.forward(&a, &mut b);
            if i < last {
                b.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            if i + 1 == last {
                features = b.clone();
            }
            std::mem::swap(&mut a, &mut b);
        }
        (features, a)
    }

    /// Predicted class and features of many images, on every core.
    pub fn classify_many(&self, images: &[Vec<f32>]) -> Vec<(usize, Vec<f32>)> {
        crate::platform::map_chunked(images, |x| {
            let (f, logits) = self.run(x);
            (argmax(&logits), f)
        })
    }
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

/// A dataset's evaluator: the classifier, its test accuracy and the real data's feature
/// statistics.
#[derive(Clone, Debug)]
pub struct Evaluator {
    /// The classifier.
    pub classifier: Classifier,
    /// Number of classes.
    pub classes: usize,
    /// Accuracy on the test split.
    pub test_accuracy: f32,
    /// Mean of the real test images' features.
    pub real_mean: Vec<f64>,
    /// Covariance of the real test images' features.
    pub real_cov: Vec<f64>,
    /// Where it is cached.
    pub cache: Option<PathBuf>,
}

/// The folder for cached evaluators ([`crate::platform::cache_dir`]; `None` in a browser).
pub fn cache_dir() -> Option<PathBuf> {
    crate::platform::cache_dir()
}

/// FNV-1a over the training split, so a changed dataset never reuses a stale evaluator.
fn dataset_key(data: &Dataset) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x100_0000_01b3);
        }
    };
    eat(&(data.train.width as u64).to_le_bytes());
    eat(&(data.train.height as u64).to_le_bytes());
    if data.train.channels > 1 {
        // Only for colour, so the grey datasets keep their cached evaluators.
        eat(&(data.train.channels as u64).to_le_bytes());
    }
    eat(&data.train.pixels);
    eat(&data.train.labels);
    // The contents alone name the file (the same images under another path share it), with
    // the classifier's recipe, so a changed recipe never reuses an old file.
    eat(format!("{HIDDEN:?} {EPOCHS}").as_bytes());
    format!("evaluator-{h:016x}.bin")
}

impl Evaluator {
    /// The cached evaluator of `data`, or a newly trained one (then cached). `progress` gets
    /// the share of training done, from 0 to 1.
    pub fn for_dataset(
        data: &Dataset,
        device: &Device,
        progress: &mut dyn FnMut(f32),
    ) -> anyhow::Result<Self> {
        require_labels(data)?;
        if let Some(kept) = Keeping::Cache.kept(data) {
            progress(1.0);
            return Ok(kept);
        }
        let classifier = train_classifier(data, device, progress);
        progress(1.0);
        Ok(Keeping::Cache.keep(data, classifier))
    }

    /// A newly trained evaluator of `data`, on `device`, neither read from nor written to the
    /// cache.
    pub fn train(
        data: &Dataset,
        device: &Device,
        progress: &mut dyn FnMut(f32),
    ) -> anyhow::Result<Self> {
        require_labels(data)?;
        let classifier = train_classifier(data, device, progress);
        progress(1.0);
        Ok(Self::new(classifier, data, None))
    }

    /// Wraps a classifier with `data`'s test accuracy and real feature statistics.
    pub fn new(classifier: Classifier, data: &Dataset, cache: Option<PathBuf>) -> Self {
        let classes = classifier.layers.last().map_or(0, |l| l.outputs);
        let images = as_floats(&data.test);
        let results = classifier.classify_many(&images);
        let correct = results
            .iter()
            .zip(&data.test.labels)
            .filter(|((p, _), l)| *p == **l as usize)
            .count();
        let features: Vec<Vec<f32>> = results
            .into_iter()
            .take(REAL_IMAGES)
            .map(|(_, f)| f)
            .collect();
        let dim = features.first().map_or(0, |f| f.len());
        let (real_mean, real_cov) = linalg::mean_cov(&features, dim);
        Self {
            classifier,
            classes,
            test_accuracy: correct as f32 / data.test.len().max(1) as f32,
            real_mean,
            real_cov,
            cache,
        }
    }
}

/// An evaluator is a classifier: `data` must have labels.
fn require_labels(data: &Dataset) -> anyhow::Result<()> {
    if !data.is_labelled() {
        anyhow::bail!(
            "{} has no class labels, so no evaluator can be trained on it",
            data.name
        );
    }
    Ok(())
}

/// Every image of a set as intensities in `[0, 1]`.
fn as_floats(set: &ImageSet) -> Vec<Vec<f32>> {
    (0..set.len())
        .map(|i| set.image(i).iter().map(|&p| p as f32 / 255.0).collect())
        .collect()
}

#[derive(Module, Debug)]
struct Mlp {
    layers: Vec<Linear>,
}

impl Mlp {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len() - 1;
        self.layers.iter().enumerate().fold(x, |h, (i, l)| {
            let y = l.forward(h);
            if i < last { relu(y) } else { y }
        })
    }
}

/// Trains the classifier with Adam on the training split.
/// Where a trained classifier is kept between runs, so that scoring can start at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keeping {
    /// A file in the platform's cache folder ([`cache_dir`]; nowhere in a browser).
    Cache,
    /// The page's storage (a browser's; nowhere on the desktops).
    Page,
}

impl Keeping {
    /// The evaluator kept for `data`, if one is there, whole, and made for images of its size
    /// (a damaged one is trained again).
    pub fn kept(self, data: &Dataset) -> Option<Evaluator> {
        match self {
            Keeping::Cache => {
                let path = cache_dir()?.join(dataset_key(data));
                let classifier = read_cache(&path).ok().filter(|c| takes(c, data))?;
                Some(Evaluator::new(classifier, data, Some(path)))
            }
            Keeping::Page => {
                let classifier = kept_in_page(data)?;
                Some(Evaluator::new(classifier, data, None))
            }
        }
    }

    /// Keeps `classifier`, trained on `data`, and wraps it as its evaluator. A classifier
    /// that cannot be kept only costs a retraining next time.
    pub fn keep(self, data: &Dataset, classifier: Classifier) -> Evaluator {
        match self {
            Keeping::Cache => {
                let path = cache_dir().map(|dir| {
                    let path = dir.join(dataset_key(data));
                    let _ = std::fs::create_dir_all(&dir).map(|_| write_cache(&path, &classifier));
                    path
                });
                Evaluator::new(classifier, data, path)
            }
            Keeping::Page => {
                keep_in_page(data, &classifier);
                Evaluator::new(classifier, data, None)
            }
        }
    }
}

fn train_classifier(data: &Dataset, device: &Device, progress: &mut dyn FnMut(f32)) -> Classifier {
    let mut training = ClassifierTraining::new(data, device);
    loop {
        if let Some(classifier) = training.step(data) {
            return classifier;
        }
        if training.batch.is_multiple_of(20) {
            progress(training.share());
        }
    }
}

/// The classifier's training, one batch at a time, so that a driver without threads (a
/// browser page's) can take turns between it and the model being watched. [`Evaluator::train`]
/// and [`Evaluator::for_dataset`] run it to the end.
pub struct ClassifierTraining {
    model: Mlp,
    optim: burn::optim::ModuleOptimizer,
    device: Device,
    rng: Rng,
    classes: usize,
    order: EpochOrder,
    epoch: usize,
    batch: usize,
}

/// The classifier's batch size.
const BATCH: usize = 128;

impl ClassifierTraining {
    /// A fresh classifier for `data` (seeded: every run trains the same one).
    pub fn new(data: &Dataset, device: &Device) -> Self {
        let device = device.clone().autodiff();
        let rng_lock = crate::backend::device_rng_lock(&device);
        device.seed(7);
        let classes = data.class_names.len().max(1);
        let mut widths = vec![data.dim()];
        widths.extend(HIDDEN);
        widths.push(classes);
        let model = Mlp {
            layers: widths
                .windows(2)
                .map(|w| LinearConfig::new(w[0], w[1]).init(&device))
                .collect(),
        };
        crate::backend::initialise_now(&model);
        drop(rng_lock);
        let mut rng = Rng::new(7);
        let order = EpochOrder::shuffled(data.train.len(), BATCH, &mut rng);
        Self {
            model,
            optim: crate::fused::FusedAdam::default().init(),
            device,
            rng,
            classes,
            order,
            epoch: 0,
            batch: 0,
        }
    }

    /// The share of training done, 0 to 1.
    pub fn share(&self) -> f32 {
        (self.epoch as f32 + self.batch as f32 / self.order.batch_count().max(1) as f32)
            / EPOCHS as f32
    }

    /// Trains on the next batch of `data` (the dataset it was made for); the classifier once
    /// the last epoch is done.
    pub fn step(&mut self, data: &Dataset) -> Option<Classifier> {
        if self.batch == self.order.batch_count() {
            self.epoch += 1;
            self.batch = 0;
            if self.epoch == EPOCHS {
                return Some(self.classifier());
            }
            self.order = EpochOrder::shuffled(data.train.len(), BATCH, &mut self.rng);
        }
        let (classes, device) = (self.classes, &self.device);
        let idx = self.order.batch(self.batch);
        let x = to_tensor(
            pixels(&data.train, idx, None),
            idx.len(),
            data.dim(),
            device,
        );
        let mut onehot = vec![0.0f32; idx.len() * classes];
        for (r, &i) in idx.iter().enumerate() {
            onehot[r * classes + (data.train.labels[i] as usize).min(classes - 1)] = 1.0;
        }
        let onehot = to_tensor(onehot, idx.len(), classes, device);
        let loss = (log_softmax(self.model.forward(x), 1) * onehot)
            .sum_dim(1)
            .mean()
            .neg();
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        let model = std::mem::replace(&mut self.model, Mlp { layers: Vec::new() });
        self.model = self.optim.step(1e-3, model, grads);
        self.batch += 1;
        None
    }

    fn classifier(&self) -> Classifier {
        let model = self.model.valid();
        Classifier {
            layers: model.layers.iter().map(crate::explore::Dense::of).collect(),
        }
    }
}

fn write_cache(path: &Path, c: &Classifier) -> anyhow::Result<()> {
    atomic_write(path, &cache_bytes(c))
}

/// A classifier as its cache file's bytes (read back by [`parse_cache`]).
fn cache_bytes(c: &Classifier) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend((c.layers.len() as u32).to_le_bytes());
    for l in &c.layers {
        out.extend((l.inputs as u32).to_le_bytes());
        out.extend((l.outputs as u32).to_le_bytes());
        for v in l.weights.iter().chain(&l.bias) {
            out.extend(v.to_le_bytes());
        }
    }
    out
}

/// The page's storage key for `data`'s evaluator.
fn page_key(data: &Dataset) -> String {
    format!("latent-atlas-{}", dataset_key(data))
}

/// The classifier a page kept for `data` in the browser's storage ([`keep_in_page`]), if it
/// is there, whole, and made for images of `data`'s size (`None` off the web).
pub fn kept_in_page(data: &Dataset) -> Option<Classifier> {
    let text = crate::platform::stored_text(&page_key(data))?;
    parse_cache(&from_base64(&text)?)
        .ok()
        .filter(|c| takes(c, data))
}

/// Whether the browser's storage holds an evaluator for `data` (not yet read whole: one that
/// turns out damaged is trained again).
pub fn is_kept_in_page(data: &Dataset) -> bool {
    crate::platform::stored_text(&page_key(data)).is_some()
}

/// Whether a kept classifier takes `data`'s images (one made for another size is trained
/// again).
fn takes(c: &Classifier, data: &Dataset) -> bool {
    c.layers.first().map(|l| l.inputs) == Some(data.dim())
}

/// Keeps `c`, trained on `data`, in the browser's storage, so the next load of the page scores
/// at once (about 1.2 MB of text for MNIST's). `false` where it cannot be kept.
pub fn keep_in_page(data: &Dataset, c: &Classifier) -> bool {
    crate::platform::store_text(&page_key(data), &to_base64(&cache_bytes(c)))
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (the browser's storage keeps text).
fn to_base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            match i <= chunk.len() {
                true => out.push(BASE64[(n >> (18 - 6 * i)) as usize & 63] as char),
                false => out.push('='),
            }
        }
    }
    out
}

/// The bytes of [`to_base64`]'s text; `None` for anything else.
fn from_base64(text: &str) -> Option<Vec<u8>> {
    let text = text.as_bytes();
    if !text.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for (q, quad) in text.chunks(4).enumerate() {
        let last = q + 1 == text.len() / 4;
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            let v = BASE64.iter().position(|&b| b == c)? as u32;
            n = (n << 6) | v;
        }
        n <<= 6 * pad as u32;
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Some(out)
}

fn read_cache(path: &Path) -> anyhow::Result<Classifier> {
    let bytes = std::fs::read(path)?;
    parse_cache(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: not an evaluator file: {e}", path.display()))
}

/// Parses an evaluator cache file: the magic, the layer count (1 to 16), then per layer its
/// input and output widths and their weights and biases, with nothing left over. Sizes are
/// checked against the bytes present before anything is allocated for them.
pub fn parse_cache(bytes: &[u8]) -> Result<Classifier, String> {
    if bytes.get(..8) != Some(MAGIC.as_slice()) {
        return Err("no evaluator magic".into());
    }
    let mut pos = 8;
    let u32_at = |pos: &mut usize| -> Result<usize, String> {
        let v = bytes
            .get(*pos..*pos + 4)
            .ok_or_else(|| format!("truncated at byte {pos}"))?;
        *pos += 4;
        Ok(u32::from_le_bytes([v[0], v[1], v[2], v[3]]) as usize)
    };
    let count = u32_at(&mut pos)?;
    if count == 0 || count > 16 {
        return Err(format!("{count} layers (1 to 16)"));
    }
    let mut layers: Vec<Dense> = Vec::new();
    for _ in 0..count {
        let (inputs, outputs) = (u32_at(&mut pos)?, u32_at(&mut pos)?);
        if inputs == 0 || outputs == 0 {
            return Err(format!("a layer of {inputs} x {outputs}"));
        }
        if let Some(previous) = layers.last()
            && previous.outputs != inputs
        {
            return Err(format!(
                "a layer of {inputs} inputs follows one of {} outputs",
                previous.outputs
            ));
        }
        let end = inputs
            .checked_mul(outputs)
            .and_then(|w| w.checked_add(outputs))
            .and_then(|n| n.checked_mul(4))
            .and_then(|b| pos.checked_add(b))
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| format!("a layer of {inputs} x {outputs} runs past the end"))?;
        let vals: Vec<f32> = bytes[pos..end]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        pos = end;
        layers.push(Dense {
            inputs,
            outputs,
            weights: vals[..inputs * outputs].to_vec(),
            bias: vals[inputs * outputs..].to_vec(),
        });
    }
    if pos != bytes.len() {
        return Err(format!("{} bytes left over", bytes.len() - pos));
    }
    Ok(Classifier { layers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_every_length_and_refuses_other_text() {
        for len in 0..10usize {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 97 + 200) as u8).collect();
            let text = to_base64(&bytes);
            assert_eq!(text.len(), len.div_ceil(3) * 4);
            assert_eq!(from_base64(&text), Some(bytes), "{len} bytes");
        }
        assert_eq!(to_base64(b"Man"), "TWFu");
        assert_eq!(to_base64(b"Ma"), "TWE=");
        assert_eq!(to_base64(b"M"), "TQ==");
        for bad in ["TWF", "TW=u", "TQ==TWFu", "T!Fu", "T==="] {
            assert_eq!(from_base64(bad), None, "{bad}");
        }
    }

    #[test]
    fn off_the_web_nothing_is_kept_in_a_page() {
        let data = crate::data::builtin::Builtin::Shapes
            .load(0)
            .expect("the built-in set");
        let c = Classifier { layers: Vec::new() };
        assert!(!keep_in_page(&data, &c));
        assert!(kept_in_page(&data).is_none());
    }

    #[test]
    fn the_cache_round_trips_and_refuses_damage() {
        let c = Classifier {
            layers: vec![
                Dense {
                    inputs: 2,
                    outputs: 3,
                    weights: vec![0.5; 6],
                    bias: vec![0.1, 0.2, 0.3],
                },
                Dense {
                    inputs: 3,
                    outputs: 2,
                    weights: vec![-1.0; 6],
                    bias: vec![0.0, 1.0],
                },
            ],
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.bin");
        write_cache(&path, &c).unwrap();
        assert_eq!(read_cache(&path).unwrap(), c);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 3);
        std::fs::write(&path, bytes).unwrap();
        assert!(read_cache(&path).is_err());
        let (features, logits) = c.run(&[1.0, 1.0]);
        assert_eq!(features.len(), 3);
        assert_eq!(logits.len(), 2);
    }

    #[test]
    fn a_cache_whose_sizes_overflow_is_refused_without_panicking() {
        // One layer of 2^32-1 x 2^32-1: the byte count overflows a usize product.
        let mut bytes = MAGIC.to_vec();
        bytes.extend(1u32.to_le_bytes());
        bytes.extend(u32::MAX.to_le_bytes());
        bytes.extend(u32::MAX.to_le_bytes());
        bytes.extend([0u8; 64]);
        let err = parse_cache(&bytes).unwrap_err();
        assert!(err.contains("runs past the end"), "{err}");
        // A width whose weights and biases, times four bytes, wrap around to a small number.
        let mut wrap = MAGIC.to_vec();
        wrap.extend(1u32.to_le_bytes());
        wrap.extend(1u32.to_le_bytes());
        wrap.extend(0x4000_0000u32.to_le_bytes());
        assert!(parse_cache(&wrap).is_err());
    }

    #[test]
    fn fuzz_finding_a_layer_without_outputs_is_refused() {
        // Found by `scripts/fuzz.sh` (evaluator_cache): a second layer of 19 x 0 was accepted
        // and running the classifier panicked in `chunks_exact(0)`.
        let crash: &[u8] = &[
            0x4c, 0x41, 0x45, 0x56, 0x41, 0x4c, 0x30, 0x31, 0x02, 0x00, 0x00, 0x00, 0x02, 0x00,
            0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0xc9, 0x00, 0x3f, 0x3f, 0x00, 0x00, 0x00,
            0x3f, 0x00, 0x00, 0x00, 0x3f, 0x00, 0x94, 0x94, 0x94, 0x94, 0x94, 0x94, 0x94, 0x94,
            0x94, 0x94, 0x94, 0x94, 0x94, 0x94, 0x94, 0x94, 0x94, 0x94, 0x94, 0x94, 0xcc, 0x3d,
            0x13, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        let err = parse_cache(crash).unwrap_err();
        assert!(err.contains("layer"), "{err}");
        // Layers whose widths do not chain are refused too.
        let mut unchained = MAGIC.to_vec();
        unchained.extend(2u32.to_le_bytes());
        for (i, o) in [(1u32, 2u32), (3, 1)] {
            unchained.extend(i.to_le_bytes());
            unchained.extend(o.to_le_bytes());
            unchained.extend(vec![0u8; 4 * (i * o + o) as usize]);
        }
        assert!(parse_cache(&unchained).unwrap_err().contains("follows"));
    }
}
