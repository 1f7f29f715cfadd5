//! The training loop of the VAE: one [`Trainer::step`] at a time, test metrics on demand.

use std::sync::Arc;

use burn::module::Module;
use burn::nn::Linear;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};

use super::checkpoint::{self, RunInfo};
use super::snapshot::{Probe, Snapshot};
use super::{HyperParams, StepMetrics, TestMetrics, TrainConfig};
use crate::data::Dataset;
use crate::data::batch::{EpochOrder, pixels, to_tensor, to_vec};
use crate::explore::{Dense, PlainDecoder};
use crate::model::Vae;
use crate::rng::Rng;

/// Why training stopped.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The settings cannot be trained.
    #[error("invalid settings: {0}")]
    Config(String),
    /// The loss became NaN or infinite; the model was rolled back to an earlier good step.
    #[error(
        "the loss became {value} at step {step}; the model was rolled back to step {restored_step} (try a lower learning rate)"
    )]
    NonFinite {
        /// The step that failed.
        step: u64,
        /// The bad value.
        value: f32,
        /// The step of the model kept.
        restored_step: u64,
    },
}

/// How often (in steps) a copy of the model is kept to roll back to.
const KEEP_GOOD_EVERY: u64 = 50;
/// Images per test-evaluation chunk.
const EVAL_CHUNK: usize = 1000;
/// Rows (images x importance samples) per chunk of the log-likelihood estimate.
const NLL_ROWS: usize = 5000;
/// Seed of the one fixed binarisation of the test split.
const TEST_BINARIZE_SEED: u64 = 1;

/// Trains one model on one dataset. Owns the model, the optimiser and every random stream.
pub struct Trainer {
    config: TrainConfig,
    data: Arc<Dataset>,
    device: Device,
    model: Vae,
    optim: ModuleOptimizer,
    rng: Rng,
    order: EpochOrder,
    batch_index: usize,
    step: u64,
    epoch: usize,
    probe: Arc<Probe>,
    last_good: (Vae, u64),
}

fn new_optimizer() -> ModuleOptimizer {
    // PyTorch's defaults, as the reference peer uses them.
    AdamConfig::new().with_epsilon(1e-8).init()
}

impl Trainer {
    /// A fresh model on `device` (autodiff is enabled here), seeded from the config.
    pub fn new(
        config: TrainConfig,
        data: Arc<Dataset>,
        device: Device,
    ) -> Result<Self, TrainError> {
        config.validate().map_err(TrainError::Config)?;
        let device = device.autodiff();
        device.seed(config.seed);
        let model = config.vae_config(data.dim()).init(&device);
        Ok(Self::with_model(config, data, device, model, 0, 0))
    }

    /// Resumes from a saved run folder (weights and step counters; the optimiser starts fresh).
    pub fn from_checkpoint(
        dir: &std::path::Path,
        data: Arc<Dataset>,
        device: Device,
    ) -> anyhow::Result<Self> {
        let info = checkpoint::read_info(dir)?;
        if info.input_dim != data.dim() {
            anyhow::bail!(
                "{}: the model expects {} pixels per image but {} has {}",
                dir.display(),
                info.input_dim,
                data.name,
                data.dim()
            );
        }
        let device = device.autodiff();
        let model = checkpoint::load_model(dir, &info, &device)?;
        Ok(Self::with_model(
            info.config,
            data,
            device,
            model,
            info.step,
            info.epoch,
        ))
    }

    fn with_model(
        config: TrainConfig,
        data: Arc<Dataset>,
        device: Device,
        model: Vae,
        step: u64,
        epoch: usize,
    ) -> Self {
        let mut rng = Rng::new(config.seed.wrapping_mul(0x9E37_79B9).wrapping_add(17));
        let order = EpochOrder::shuffled(data.train.len(), config.hyper.batch_size, &mut rng);
        let probe = Arc::new(make_probe(&data, config.probe_size, config.seed));
        Self {
            last_good: (model.clone(), step),
            config,
            data,
            device,
            model,
            optim: new_optimizer(),
            rng,
            order,
            batch_index: 0,
            step,
            epoch,
            probe,
        }
    }

    /// The run's settings.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The dataset.
    pub fn data(&self) -> &Arc<Dataset> {
        &self.data
    }

    /// The model being trained.
    pub fn model(&self) -> &Vae {
        &self.model
    }

    /// Steps completed.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// Epochs completed.
    pub fn epochs_done(&self) -> usize {
        self.epoch
    }

    /// Whether the configured number of epochs is done.
    pub fn is_finished(&self) -> bool {
        self.epoch >= self.config.epochs
    }

    /// The device (with autodiff).
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Replaces the settings that may change mid-run. A new batch size applies from the next epoch.
    pub fn set_hyper(&mut self, hyper: HyperParams) -> Result<(), TrainError> {
        let mut config = self.config.clone();
        config.hyper = hyper;
        config.validate().map_err(TrainError::Config)?;
        self.config = config;
        Ok(())
    }

    /// Changes how the test log-likelihood is estimated.
    pub fn set_eval(&mut self, nll_samples: usize, nll_images: usize) {
        self.config.nll_samples = nll_samples;
        self.config.nll_images = nll_images;
    }

    /// Changes the number of epochs to train.
    pub fn set_epochs(&mut self, epochs: usize) {
        self.config.epochs = epochs;
    }

    /// One optimisation step on the next batch. Returns the batch metrics; a non-finite loss
    /// rolls the model back to the last good copy and returns an error.
    pub fn step(&mut self) -> Result<StepMetrics, TrainError> {
        let hyper = self.config.hyper.clone();
        let indices = self.order.batch(self.batch_index).to_vec();
        let (n, dim, d) = (indices.len(), self.data.dim(), self.config.latent_dim);
        let binarize = self.config.binarize.then_some(&mut self.rng);
        let x = to_tensor(
            pixels(&self.data.train, &indices, binarize),
            n,
            dim,
            &self.device,
        );
        let eps = to_tensor(self.rng.normals(n * d), n, d, &self.device);
        let kl_weight = hyper.kl_weight(self.step);

        let out = self.model.forward(x, eps, self.config.likelihood);
        let reconstruction = out.reconstruction.mean();
        let kl_per_dim = out.kl_per_dim.mean_dim(0).reshape([d]);
        let kl = kl_per_dim.clone().sum();
        let loss = reconstruction.clone() + kl.clone() * kl_weight;
        // One readback per step, before the update, so a bad loss never reaches the weights.
        let stats = to_vec(Tensor::cat(
            vec![reconstruction.detach(), kl.detach(), kl_per_dim.detach()],
            0,
        ));
        let total = stats[0] + kl_weight * stats[1];
        if !total.is_finite() {
            return Err(self.roll_back(total));
        }
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        // The optimiser consumes the model; a panic inside it leaves the last good copy in place.
        let model = std::mem::replace(&mut self.model, self.last_good.0.clone());
        self.model = self.optim.step(hyper.lr, model, grads);

        self.step += 1;
        self.batch_index += 1;
        let epoch = self.epoch + 1;
        let epoch_progress = self.batch_index as f32 / self.order.batch_count() as f32;
        if self.batch_index >= self.order.batch_count() {
            self.epoch += 1;
            self.batch_index = 0;
            self.order =
                EpochOrder::shuffled(self.data.train.len(), hyper.batch_size, &mut self.rng);
        }
        if self.step.is_multiple_of(KEEP_GOOD_EVERY) {
            self.last_good = (self.model.clone(), self.step);
        }
        Ok(StepMetrics {
            step: self.step,
            epoch,
            epoch_progress,
            reconstruction: stats[0],
            kl: stats[1],
            total,
            kl_weight,
            kl_per_dim: stats[2..].to_vec(),
        })
    }

    fn roll_back(&mut self, value: f32) -> TrainError {
        let (model, restored_step) = self.last_good.clone();
        let failed = self.step + 1;
        self.model = model;
        self.step = restored_step;
        self.optim = new_optimizer();
        TrainError::NonFinite {
            step: failed,
            value,
            restored_step,
        }
    }

    /// Restores the last good copy of the model (after a panic inside a step).
    pub fn recover(&mut self) -> u64 {
        let (model, step) = self.last_good.clone();
        self.model = model;
        self.step = step;
        self.optim = new_optimizer();
        step
    }

    /// The inference copy of the model (no autodiff) and its device.
    fn inference(&self) -> (Vae, Device) {
        (self.model.valid(), self.device.clone().without_autodiff())
    }

    /// Test inputs at `indices` as floats: grey levels, or the fixed binarisation.
    fn test_pixels(&self, indices: &[usize]) -> Vec<f32> {
        let grey = pixels(&self.data.test, indices, None);
        if !self.config.binarize {
            return grey;
        }
        // One fixed draw per pixel of the whole test split, independent of the chunking.
        let dim = self.data.dim();
        let mut out = grey;
        for (row, &i) in indices.iter().enumerate() {
            let mut rng = Rng::new(
                TEST_BINARIZE_SEED
                    .wrapping_mul(1_000_003)
                    .wrapping_add(i as u64),
            );
            for p in &mut out[row * dim..(row + 1) * dim] {
                *p = if rng.uniform() < *p { 1.0 } else { 0.0 };
            }
        }
        out
    }

    /// Test metrics over the whole test split, plus the importance-sampled log-likelihood
    /// when `with_nll` and the config asks for samples.
    pub fn evaluate(&self, with_nll: bool) -> TestMetrics {
        let (model, device) = self.inference();
        let (dim, d) = (self.data.dim(), self.config.latent_dim);
        let n = self.data.test.len();
        let mut rng = Rng::new(self.config.seed ^ 0x7E57);
        let (mut rec_sum, mut kl_sum) = (0.0f64, 0.0f64);
        let mut kl_dims = vec![0.0f64; d];
        for start in (0..n).step_by(EVAL_CHUNK) {
            let indices: Vec<usize> = (start..(start + EVAL_CHUNK).min(n)).collect();
            let m = indices.len();
            let x = to_tensor(self.test_pixels(&indices), m, dim, &device);
            let eps = to_tensor(rng.normals(m * d), m, d, &device);
            let out = model.forward(x, eps, self.config.likelihood);
            rec_sum += to_vec(out.reconstruction.sum())[0] as f64;
            let kl = to_vec(out.kl_per_dim.sum_dim(0));
            for (acc, v) in kl_dims.iter_mut().zip(&kl) {
                *acc += *v as f64;
            }
            kl_sum += kl.iter().map(|&v| v as f64).sum::<f64>();
        }
        let nll =
            (with_nll && self.config.nll_samples > 0).then(|| self.importance_nll(&model, &device));
        let (rec, kl) = ((rec_sum / n as f64) as f32, (kl_sum / n as f64) as f32);
        TestMetrics {
            step: self.step,
            epoch: self.epoch,
            reconstruction: rec,
            kl,
            neg_elbo: rec + kl,
            nll,
            nll_samples: self.config.nll_samples,
            nll_images: self.config.nll_images.min(n),
            kl_per_dim: kl_dims.iter().map(|&v| (v / n as f64) as f32).collect(),
        }
    }

    fn importance_nll(&self, model: &Vae, device: &Device) -> f32 {
        let k = self.config.nll_samples;
        let (dim, d) = (self.data.dim(), self.config.latent_dim);
        let images = self.config.nll_images.min(self.data.test.len());
        let chunk = (NLL_ROWS / k).max(1);
        let mut rng = Rng::new(self.config.seed ^ 0x1111);
        let mut sum = 0.0f64;
        for start in (0..images).step_by(chunk) {
            let indices: Vec<usize> = (start..(start + chunk).min(images)).collect();
            let m = indices.len();
            let x = to_tensor(self.test_pixels(&indices), m, dim, device);
            let eps = to_tensor(rng.normals(m * k * d), m * k, d, device);
            sum += model
                .importance_nll(x, eps, k, self.config.likelihood)
                .iter()
                .map(|&v| v as f64)
                .sum::<f64>();
        }
        (sum / images as f64) as f32
    }

    /// The probe set's posteriors and a plain copy of the decoder.
    pub fn snapshot(&self) -> Snapshot {
        let (model, device) = self.inference();
        let probe = &self.probe;
        let (dim, d) = (self.data.dim(), self.config.latent_dim);
        let x: Vec<f32> = probe.pixels.iter().map(|&p| p as f32 / 255.0).collect();
        let (mu, logvar) = model.encode(to_tensor(x, probe.len(), dim, &device));
        let sigma = (logvar * 0.5).exp();
        Snapshot {
            step: self.step,
            epoch: self.epoch,
            latent_dim: d,
            probe: probe.clone(),
            mu: to_vec(mu),
            sigma: to_vec(sigma),
            decoder: Arc::new(plain_decoder(
                &model,
                self.data.train.width,
                self.data.train.height,
            )),
        }
    }

    /// What `config.json` records about this run.
    pub fn run_info(&self, backend: &str) -> RunInfo {
        RunInfo {
            config: self.config.clone(),
            input_dim: self.data.dim(),
            width: self.data.train.width,
            height: self.data.train.height,
            step: self.step,
            epoch: self.epoch,
            backend: backend.to_owned(),
        }
    }
}

/// Copies the decoder's weights into plain data.
pub fn plain_decoder(model: &Vae, width: usize, height: usize) -> PlainDecoder {
    let dense = |layer: &Linear| {
        let [inputs, outputs] = layer.weight.val().dims();
        Dense {
            inputs,
            outputs,
            weights: to_vec(layer.weight.val()),
            bias: layer
                .bias
                .as_ref()
                .map_or(vec![0.0; outputs], |b| to_vec(b.val())),
        }
    };
    let mut layers: Vec<Dense> = model.decoder.iter().map(dense).collect();
    layers.push(dense(&model.output));
    PlainDecoder {
        layers,
        width,
        height,
    }
}

/// A seeded choice of `size` test samples (all of them if fewer).
fn make_probe(data: &Dataset, size: usize, seed: u64) -> Probe {
    let mut order: Vec<usize> = (0..data.test.len()).collect();
    Rng::new(seed ^ 0x9B0B).shuffle(&mut order);
    order.truncate(size.min(order.len()));
    let set = data.test.select(&order);
    Probe {
        indices: order,
        labels: set.labels,
        pixels: set.pixels,
        width: set.width,
        height: set.height,
        class_names: data.class_names.clone(),
    }
}
