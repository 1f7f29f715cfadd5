//! The training loop of every family: one [`Trainer::step`] at a time, test metrics on demand.

use std::sync::Arc;

use burn::module::Module;
use burn::nn::Linear;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};

use super::checkpoint::{self, RunInfo};
use super::snapshot::{FamilyView, OUTLINE_POINTS};
use super::snapshot::{Probe, Snapshot};
use super::{HyperParams, ModelKind, StepMetrics, TestMetrics, TrainConfig};
use crate::data::Dataset;
use crate::data::batch::{EpochOrder, pixels, to_tensor, to_vec};
use crate::explore::coverage::{self, Coverage};
use crate::explore::{Dense, PlainCoupling, PlainDecoder, PlainFlow};
use crate::fused::FusedAdam;
use crate::model::flow::Flow;
use crate::model::{Model, adversarial};
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
    /// An adversarial run diverged (its losses stayed finite); the model was rolled back.
    #[error(
        "training diverged at step {step}: {what}; the model was rolled back to step {restored_step} (try a lower learning rate, or the other loss form)"
    )]
    Diverged {
        /// The step that failed.
        step: u64,
        /// What ran away.
        what: String,
        /// The step of the model kept.
        restored_step: u64,
    },
}

/// Mean |E(x)| above which an encoder's codes count as runaway (the prior has about 0.8).
const CODE_RUNAWAY: f32 = 50.0;

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
    model: Model,
    classes: usize,
    optim: ModuleOptimizer,
    rng: Rng,
    order: EpochOrder,
    batch_index: usize,
    step: u64,
    epoch: usize,
    probe: Arc<Probe>,
    /// Fixed prior draws, one per probe sample, shown by families without an encoder (and
    /// beside ALI's codes).
    prior_probe: Vec<f32>,
    /// This trainer's number in the process (see [`Snapshot::run`]).
    run: u64,
    last_good: (Model, u64),
}

/// Number of classes a dataset's labels need (at least its class names).
fn class_count(data: &Dataset) -> usize {
    let max_label = data
        .train
        .labels
        .iter()
        .chain(&data.test.labels)
        .copied()
        .max()
        .map_or(0, |m| m as usize + 1);
    data.class_names.len().max(max_label).max(1)
}

/// The error for an adversarial step asked of a family without a discriminator (the step is
/// only taken for families that draw as adversarial; this keeps a mistake from panicking).
fn no_discriminator(kind: ModelKind) -> TrainError {
    TrainError::Config(format!(
        "the {} has no discriminator to take an adversarial step with",
        kind.label()
    ))
}

/// The first `n` values and the rest.
fn split_rows(v: Tensor<1>, n: usize) -> (Tensor<1>, Tensor<1>) {
    let total = v.dims()[0];
    (v.clone().narrow(0, 0, n), v.narrow(0, n, total - n))
}

/// One-hot rows for `labels`, `[n, classes]`.
fn one_hot(labels: impl Iterator<Item = u8>, classes: usize, device: &Device) -> Tensor<2> {
    let mut rows = Vec::new();
    let mut n = 0;
    for l in labels {
        let mut row = vec![0.0f32; classes];
        if let Some(v) = row.get_mut(l as usize) {
            *v = 1.0;
        }
        rows.extend(row);
        n += 1;
    }
    to_tensor(rows, n, classes, device)
}

fn new_optimizer(kind: ModelKind) -> ModuleOptimizer {
    if kind.draws().adversarial {
        // beta1 = 0.5, as adversarial training usually takes it (DCGAN).
        FusedAdam::default().with_beta_1(0.5).init()
    } else {
        // PyTorch's defaults, as the reference peer uses them.
        FusedAdam::default().init()
    }
}

impl Trainer {
    /// A fresh model on `device` (autodiff is enabled here), seeded from the config.
    pub fn new(
        config: TrainConfig,
        data: Arc<Dataset>,
        device: Device,
    ) -> Result<Self, TrainError> {
        config.validate().map_err(TrainError::Config)?;
        if config.model.needs_labels() && !data.is_labelled() {
            return Err(TrainError::Config(format!(
                "the {} needs class labels, and {} has none",
                config.model.label(),
                data.name
            )));
        }
        let device = device.autodiff();
        let model = {
            let _rng = crate::backend::device_rng_lock();
            device.seed(config.seed);
            let model = config.build_model(data.dim(), class_count(&data), &device);
            crate::backend::initialise_now(&model);
            model
        };
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
        let model = checkpoint::load_model(dir, &info, class_count(&data), &device)?;
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
        model: Model,
        step: u64,
        epoch: usize,
    ) -> Self {
        let classes = class_count(&data);
        let mut rng = Rng::new(config.seed.wrapping_mul(0x9E37_79B9).wrapping_add(17));
        let order = EpochOrder::shuffled(data.train.len(), config.hyper.batch_size, &mut rng);
        let probe = Arc::new(make_probe(&data, config.probe_size, config.seed));
        let prior_probe = Rng::new(config.seed ^ 0x9A10).normals(probe.len() * config.latent_dim);
        let optim = new_optimizer(config.model);
        static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self {
            last_good: (model.clone(), step),
            config,
            data,
            device,
            model,
            classes,
            prior_probe,
            run,
            optim,
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
    pub fn model(&self) -> &Model {
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
        if self.config.model.draws().adversarial {
            return self.adversarial_step();
        }
        let hyper = self.config.hyper.clone();
        let (indices, x) = self.next_batch();
        let (n, d) = (indices.len(), self.config.latent_dim);
        let eps = to_tensor(self.rng.normals(n * d), n, d, &self.device);
        let onehot = self.config.model.needs_labels().then(|| {
            one_hot(
                indices.iter().map(|&i| self.data.train.labels[i]),
                self.classes,
                &self.device,
            )
        });
        let kl_weight = hyper.kl_weight(self.step);

        let terms = self
            .model
            .terms(x, onehot, eps, self.config.likelihood)
            .ok_or_else(|| {
                TrainError::Config(format!(
                    "the {} has no encoder to train by its likelihood",
                    self.config.model.label()
                ))
            })?;
        let reconstruction = terms.reconstruction.mean();
        let mut loss = reconstruction.clone();
        let mut readback = vec![reconstruction.detach()];
        let has_kl = terms.kl.is_some();
        if let Some(kl) = terms.kl {
            let kl = kl.mean();
            loss = loss + kl.clone() * kl_weight;
            readback.push(kl.detach());
        }
        let per_dim_len = terms.kl_per_dim.as_ref().map_or(0, |_| d);
        if let Some(per_dim) = terms.kl_per_dim {
            readback.push(per_dim.mean_dim(0).reshape([d]).detach());
        }
        // One readback per step, before the update, so a bad loss never reaches the weights.
        let stats = to_vec(Tensor::cat(readback, 0));
        let kl = if has_kl { stats[1] } else { 0.0 };
        let per_dim_start = 1 + usize::from(has_kl);
        let kl_per_dim = stats[per_dim_start..per_dim_start + per_dim_len].to_vec();
        let total = stats[0] + kl_weight * kl;
        if !total.is_finite() {
            return Err(self.roll_back(total));
        }
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        // The optimiser consumes the model; a panic inside it leaves the last good copy in place.
        let model = std::mem::replace(&mut self.model, self.last_good.0.clone());
        self.model = self.optim.step(hyper.lr, model, grads);

        let (epoch, epoch_progress) = self.advance();
        Ok(StepMetrics {
            step: self.step,
            epoch,
            epoch_progress,
            reconstruction: stats[0],
            kl,
            total,
            kl_weight,
            kl_per_dim,
            // Read after the update, so they match the model the next snapshot shows.
            extra: family_extras(&self.model),
        })
    }

    /// The next training batch's sample indices and pixels (binarised when asked).
    fn next_batch(&mut self) -> (Vec<usize>, Tensor<2>) {
        let indices = self.order.batch(self.batch_index).to_vec();
        let binarize = self.config.binarize.then_some(&mut self.rng);
        let x = pixels(&self.data.train, &indices, binarize);
        let x = to_tensor(x, indices.len(), self.data.dim(), &self.device);
        (indices, x)
    }

    /// Counts a finished step: the batch, the epoch, and the copy kept to roll back to.
    /// Returns the step's epoch (from 1) and the share of it done.
    fn advance(&mut self) -> (usize, f32) {
        self.step += 1;
        self.batch_index += 1;
        let epoch = self.epoch + 1;
        let epoch_progress = self.batch_index as f32 / self.order.batch_count() as f32;
        if self.batch_index >= self.order.batch_count() {
            self.epoch += 1;
            self.batch_index = 0;
            let batch_size = self.config.hyper.batch_size;
            self.order = EpochOrder::shuffled(self.data.train.len(), batch_size, &mut self.rng);
        }
        if self.step.is_multiple_of(KEEP_GOOD_EVERY) {
            self.last_good = (self.model.clone(), self.step);
        }
        (epoch, epoch_progress)
    }

    /// One iteration of an adversarial family on the next batch: `d_steps` discriminator
    /// steps, then a generator phase of `g_steps` steps (fresh prior draws each step, the same
    /// images). Only the discriminator's parameters move in the first, only the generator's
    /// (and encoder's) in the second. Values are read back once, at the end.
    fn adversarial_step(&mut self) -> Result<StepMetrics, TrainError> {
        // The discriminator's dropout draws from the device's shared random stream.
        let _rng = crate::backend::device_rng_lock();
        let adv = self.config.adversarial.clone();
        let (indices, x) = self.next_batch();
        let (n, d) = (indices.len(), self.config.latent_dim);
        let mut readback = Vec::new();
        for _ in 0..adv.d_steps {
            let z = to_tensor(self.rng.normals(n * d), n, d, &self.device);
            // Real and generated rows go through the discriminator as one batch: one product
            // per layer instead of two.
            let (real, fake) = match &self.model {
                Model::Gan(m) => split_rows(
                    m.disc
                        .logits(Tensor::cat(vec![x.clone(), m.generate(z).detach()], 0)),
                    n,
                ),
                Model::Aae(m) => split_rows(
                    m.disc
                        .logits(Tensor::cat(vec![z, m.encode(x.clone()).detach()], 0)),
                    n,
                ),
                Model::Ali(m) => split_rows(
                    m.joint_logits(
                        Tensor::cat(vec![x.clone(), m.generate(z.clone()).detach()], 0),
                        Tensor::cat(vec![m.encode(x.clone()).detach(), z], 0),
                    ),
                    n,
                ),
                Model::Ae(_)
                | Model::Vae(_)
                | Model::Cvae(_)
                | Model::BnVae(_)
                | Model::FVae(_) => {
                    return Err(no_discriminator(self.config.model));
                }
            };
            let d_loss = adversarial::discriminator_loss(real.clone(), fake.clone());
            readback = vec![
                d_loss.clone().detach(),
                adversarial::share_called_real(real.detach()),
                adversarial::share_called_real(fake.detach())
                    .neg()
                    .add_scalar(1.0),
            ];
            let mut grads = d_loss.backward();
            let disc = self.model.discriminator().expect("an adversarial family");
            let params = GradientsParams::from_module(&mut grads, disc);
            let model = std::mem::replace(&mut self.model, self.last_good.0.clone());
            self.model = self.optim.step(adv.lr, model, params);
        }
        // The phase's starting generator, the seed's G_old (a cheap clone: shared weights
        // until the optimiser replaces them).
        // Untracked: only its outputs are used, detached.
        let old = self.model.clone().no_grad();
        let mut g_terms = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..adv.g_steps {
            let z = to_tensor(self.rng.normals(n * d), n, d, &self.device);
            // The discriminator does not step in this phase: no gradients for it.
            let frozen = self.model.clone().with_frozen_discriminator();
            let (adversarial, extra, loss) = match &frozen {
                Model::Gan(m) => {
                    // `old` is a copy of the same model, so a GAN too.
                    let Model::Gan(o) = &old else {
                        return Err(no_discriminator(self.config.model));
                    };
                    let (a, reg) = m.generator_terms(z.clone(), o.generate(z));
                    let loss = a.clone() + reg.clone() * adv.lambda;
                    (a, reg, loss)
                }
                Model::Aae(m) => {
                    let (a, rec) = m.autoencoder_terms(x.clone());
                    let loss = a.clone() + rec.clone() * adv.lambda;
                    (a, rec, loss)
                }
                Model::Ali(m) => {
                    let loss = m.encoder_generator_loss(x.clone(), z, adv.ali_loss);
                    let code = m.encode(x.clone());
                    let rec = (m.generate(code) - x.clone()).square().sum_dim(1).mean();
                    (loss.clone(), rec.reshape([1]).detach(), loss)
                }
                Model::Ae(_)
                | Model::Vae(_)
                | Model::Cvae(_)
                | Model::BnVae(_)
                | Model::FVae(_) => {
                    return Err(no_discriminator(self.config.model));
                }
            };
            g_terms.0.push(adversarial.detach());
            g_terms.1.push(extra.detach());
            g_terms.2.push(loss.clone().detach());
            let mut grads = loss.backward();
            // The frozen discriminator has no gradients: these are the generator's (and the
            // encoder's) alone.
            let params = GradientsParams::from_module(&mut grads, &frozen);
            let model = std::mem::replace(&mut self.model, self.last_good.0.clone());
            self.model = self.optim.step(adv.lr, model, params);
        }
        let mean = |v: Vec<Tensor<1>>| Tensor::cat(v, 0).mean();
        let extra_first = g_terms.1[0].clone();
        let code_scale = match self.model.posteriors(x) {
            Some(p) => p.position.abs().mean().detach(),
            None => Tensor::zeros([1], &self.device),
        };
        readback.extend([
            mean(g_terms.0),
            mean(g_terms.1),
            mean(g_terms.2),
            extra_first,
            code_scale,
        ]);
        let stats = to_vec(Tensor::cat(readback, 0));
        let [
            d_loss,
            real_acc,
            fake_acc,
            g_adv,
            g_extra,
            g_total,
            extra_first,
            code_scale,
        ] = stats[..]
        else {
            unreachable!("eight values were read back")
        };
        if self.config.model.draws().encoder && code_scale > CODE_RUNAWAY {
            let (step, restored_step) = self.restore_last_good();
            return Err(TrainError::Diverged {
                step,
                what: format!(
                    "the encoder's codes ran away from the prior (mean |E(x)| = {code_scale:.0})"
                ),
                restored_step,
            });
        }
        if !(d_loss.is_finite() && g_total.is_finite()) || d_loss.abs() > 1e4 || g_total.abs() > 1e6
        {
            let bad = if d_loss.is_finite() { g_total } else { d_loss };
            return Err(self.roll_back(bad));
        }
        let (epoch, epoch_progress) = self.advance();
        let mut extra = vec![
            ("d_loss".to_owned(), d_loss),
            ("g_loss".to_owned(), g_adv),
            ("d_real_accuracy".to_owned(), real_acc),
            ("d_fake_accuracy".to_owned(), fake_acc),
        ];
        // With an encoder the generator phase's extra term is the reconstruction error (AAE,
        // ALI); without one it is the GAN's old-generator regulariser.
        let reconstruction = if self.config.model.draws().encoder {
            g_extra
        } else {
            extra.push(("regulariser".to_owned(), g_extra));
            extra.push(("regulariser_first_step".to_owned(), extra_first));
            0.0
        };
        Ok(StepMetrics {
            step: self.step,
            epoch,
            epoch_progress,
            reconstruction,
            kl: 0.0,
            total: g_total,
            kl_weight: 0.0,
            kl_per_dim: Vec::new(),
            extra,
        })
    }

    fn roll_back(&mut self, value: f32) -> TrainError {
        let (step, restored_step) = self.restore_last_good();
        TrainError::NonFinite {
            step,
            value,
            restored_step,
        }
    }

    /// Puts back the last good model with a fresh optimiser; returns the failed step and the
    /// step restored.
    fn restore_last_good(&mut self) -> (u64, u64) {
        let (model, restored_step) = self.last_good.clone();
        let failed = self.step + 1;
        self.model = model;
        self.step = restored_step;
        self.optim = new_optimizer(self.config.model);
        (failed, restored_step)
    }

    /// Restores the last good copy of the model (after a panic inside a step).
    pub fn recover(&mut self) -> u64 {
        let (model, step) = self.last_good.clone();
        self.model = model;
        self.step = step;
        self.optim = new_optimizer(self.config.model);
        step
    }

    /// The inference copy of the model (no autodiff) and its device.
    fn inference(&self) -> (Model, Device) {
        (self.model.valid(), self.device.clone().without_autodiff())
    }

    /// What an end-of-epoch evaluation needs, apart from the trainer: it can run on another
    /// thread while training goes on (the weights are shared until the next update).
    pub fn evaluation(&self) -> Evaluation {
        let (model, device) = self.inference();
        Evaluation {
            model,
            device,
            data: self.data.clone(),
            config: self.config.clone(),
            classes: self.classes,
            step: self.step,
            epoch: self.epoch,
        }
    }

    /// Test metrics over the whole test split, plus the importance-sampled log-likelihood
    /// when `with_nll` and the config asks for samples.
    pub fn evaluate(&self, with_nll: bool) -> TestMetrics {
        self.evaluation().run(with_nll)
    }

    /// The aggregate posterior of the whole test split against the prior (dims 0 and 1).
    pub fn test_coverage(&self) -> Coverage {
        self.evaluation().test_coverage()
    }

    /// The probe set's posteriors, a plain copy of the decoder, what the family draws, and
    /// (with `with_coverage`) the aggregate posterior against the prior.
    pub fn snapshot(&self, with_coverage: bool) -> Snapshot {
        let (model, device) = self.inference();
        let probe = &self.probe;
        let (dim, d) = (self.data.dim(), self.config.latent_dim);
        let x: Vec<f32> = probe.pixels.iter().map(|&p| p as f32 / 255.0).collect();
        let post = model.posteriors(to_tensor(x, probe.len(), dim, &device));
        let pre_flow = post.as_ref().and_then(|p| p.pre_flow.clone());
        let outlines = match (&pre_flow, model.flow()) {
            (Some(centre), Some(flow)) => {
                let sigma1 = model.f_sigmas().map_or(1.0, |s| s.0);
                Some(Arc::new(warped_outlines(flow, centre.clone(), sigma1)))
            }
            _ => None,
        };
        let (mu, sigma) = match post {
            Some(p) => (to_vec(p.position), to_vec(p.sigma)),
            // No encoder: the plane shows fixed prior samples in the probe's place.
            None => (self.prior_probe.clone(), vec![0.0; self.prior_probe.len()]),
        };
        let draws = self.config.model.draws();
        let flow = model.flow().map(|f| Arc::new(plain_flow(f)));
        let (gamma_mu, gamma_sigma) = model.bn_gammas().unzip();
        let view = FamilyView {
            class_means: model.class_means(),
            gamma_mu,
            gamma_sigma,
            pre_flow: pre_flow.map(to_vec),
            flow: flow.clone(),
            sigmas: model.f_sigmas(),
            outlines,
            prior_points: draws.prior_samples.then(|| self.prior_probe.clone()),
        };
        let coverage = (with_coverage && draws.encoder)
            .then(|| Arc::new(probe_coverage(&mu, &sigma, d, &view)));
        let mut decoder = plain_decoder(&model, self.data.train.width, self.data.train.height);
        decoder.flow = flow.map(|f| (*f).clone());
        Snapshot {
            run: self.run,
            family: self.config.model,
            step: self.step,
            epoch: self.epoch,
            latent_dim: d,
            probe: probe.clone(),
            mu,
            sigma,
            decoder: Arc::new(decoder),
            view,
            coverage,
        }
    }

    /// What `config.json` records about this run.
    pub fn run_info(&self, backend: &str) -> RunInfo {
        RunInfo {
            layout: super::checkpoint::LAYOUT,
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

/// A dense layer's weights as plain data.
/// A trained model's test-split evaluation, detached from its [`Trainer`].
pub struct Evaluation {
    model: Model,
    device: Device,
    data: Arc<Dataset>,
    config: TrainConfig,
    classes: usize,
    step: u64,
    epoch: usize,
}

impl Evaluation {
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

    /// One-hot labels of test samples, for the families that need them.
    fn test_onehot(&self, indices: &[usize], repeat: usize, device: &Device) -> Option<Tensor<2>> {
        self.config.model.needs_labels().then(|| {
            let labels =
                (0..repeat).flat_map(|_| indices.iter().map(|&i| self.data.test.labels[i]));
            one_hot(labels, self.classes, device)
        })
    }

    /// Test metrics over the whole test split, plus the importance-sampled log-likelihood
    /// when `with_nll` and the config asks for samples.
    pub fn run(&self, with_nll: bool) -> TestMetrics {
        let (model, device) = (&self.model, &self.device);
        let (dim, d) = (self.data.dim(), self.config.latent_dim);
        let n = self.data.test.len();
        let mut rng = Rng::new(self.config.seed ^ 0x7E57);
        let (mut rec_sum, mut kl_sum) = (0.0f64, None::<f64>);
        let mut kl_dims: Option<Vec<f64>> = None;
        for start in (0..n).step_by(EVAL_CHUNK) {
            let indices: Vec<usize> = (start..(start + EVAL_CHUNK).min(n)).collect();
            let m = indices.len();
            let x = to_tensor(self.test_pixels(&indices), m, dim, device);
            let eps = to_tensor(rng.normals(m * d), m, d, device);
            let onehot = self.test_onehot(&indices, 1, device);
            let Some(terms) = model.terms(x, onehot, eps, self.config.likelihood) else {
                // No encoder: nothing to reconstruct.
                break;
            };
            rec_sum += to_vec(terms.reconstruction.sum())[0] as f64;
            if let Some(kl) = terms.kl {
                *kl_sum.get_or_insert(0.0) += to_vec(kl.sum())[0] as f64;
            }
            if let Some(per_dim) = terms.kl_per_dim {
                let acc = kl_dims.get_or_insert_with(|| vec![0.0; d]);
                for (a, v) in acc.iter_mut().zip(to_vec(per_dim.sum_dim(0))) {
                    *a += v as f64;
                }
            }
        }
        let nll = (with_nll && self.config.nll_samples > 0)
            .then(|| self.importance_nll(model, device))
            .flatten();
        let draws = self.config.model.draws();
        // A family without an encoder reconstructs nothing.
        let rec = if draws.encoder {
            (rec_sum / n as f64) as f32
        } else {
            f32::NAN
        };
        let kl = kl_sum.map(|k| (k / n as f64) as f32);
        TestMetrics {
            step: self.step,
            epoch: self.epoch,
            reconstruction: rec,
            kl: kl.unwrap_or(0.0),
            neg_elbo: kl.map(|k| rec + k),
            nll,
            nll_samples: self.config.nll_samples,
            nll_images: self.config.nll_images.min(n),
            kl_per_dim: kl_dims
                .unwrap_or_default()
                .iter()
                .map(|&v| (v / n as f64) as f32)
                .collect(),
            hole_share: draws.encoder.then(|| self.test_coverage().hole_share),
        }
    }

    /// The aggregate posterior of the whole test split against the prior (dims 0 and 1): the
    /// per-epoch hole share. Snapshots use the smaller probe set instead.
    pub fn test_coverage(&self) -> Coverage {
        let (model, device) = (&self.model, &self.device);
        let (dim, d) = (self.data.dim(), self.config.latent_dim);
        let n = self.data.test.len();
        let (mut mu, mut sigma, mut pre) = (Vec::new(), Vec::new(), Vec::new());
        for start in (0..n).step_by(EVAL_CHUNK) {
            let indices: Vec<usize> = (start..(start + EVAL_CHUNK).min(n)).collect();
            let grey = pixels(&self.data.test, &indices, None);
            let Some(post) = model.posteriors(to_tensor(grey, indices.len(), dim, device)) else {
                break;
            };
            mu.extend(to_vec(post.position));
            sigma.extend(to_vec(post.sigma));
            if let Some(p) = post.pre_flow {
                pre.extend(to_vec(p));
            }
        }
        let view = FamilyView {
            pre_flow: (!pre.is_empty()).then_some(pre),
            flow: model.flow().map(|f| Arc::new(plain_flow(f))),
            sigmas: model.f_sigmas(),
            ..FamilyView::default()
        };
        probe_coverage(&mu, &sigma, d, &view)
    }

    /// The importance-sampled negative log-likelihood, or `None` for a family without one.
    fn importance_nll(&self, model: &Model, device: &Device) -> Option<f32> {
        let k = self.config.nll_samples;
        let (dim, d) = (self.data.dim(), self.config.latent_dim);
        let images = self.config.nll_images.min(self.data.test.len());
        let chunk = (NLL_ROWS / k).max(1);
        let mut rng = Rng::new(self.config.seed ^ 0x1111);
        let mut sum = 0.0f64;
        for start in (0..images).step_by(chunk) {
            let indices: Vec<usize> = (start..(start + chunk).min(images)).collect();
            let m = indices.len();
            let x = to_tensor(self.test_pixels(&indices), m, dim, device).repeat_dim(0, k);
            let eps = to_tensor(rng.normals(m * k * d), m * k, d, device);
            let onehot = self.test_onehot(&indices, k, device);
            let log_w = to_vec(model.log_weights(x, onehot, eps, self.config.likelihood)?);
            for i in 0..m {
                let per_image: Vec<f32> = (0..k).map(|j| log_w[j * m + i]).collect();
                sum -= crate::model::losses::log_mean_exp(&per_image) as f64;
            }
        }
        Some((sum / images as f64) as f32)
    }
}

fn dense(layer: &Linear) -> Dense {
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
}

/// Copies the decoder's weights into plain data (without the f-VAE's flow).
pub fn plain_decoder(model: &Model, width: usize, height: usize) -> PlainDecoder {
    let (hidden, output) = model.decoder_layers();
    let mut layers: Vec<Dense> = hidden.iter().map(dense).collect();
    layers.push(dense(output));
    PlainDecoder {
        layers,
        flow: None,
        width,
        height,
    }
}

/// Copies a flow's weights into plain data.
pub fn plain_flow(flow: &Flow) -> PlainFlow {
    PlainFlow {
        layers: flow
            .layers
            .iter()
            .map(|c| PlainCoupling {
                net: c.net.iter().map(dense).collect(),
                log_scale: dense(&c.log_scale),
                shift: dense(&c.shift),
                flip: c.flip,
            })
            .collect(),
    }
}

/// The aggregate posterior of the probe set over dims 0 and 1: exact through the flow for a
/// 2-D f-VAE, a mixture of the marginal Gaussians otherwise.
pub fn probe_coverage(mu: &[f32], sigma: &[f32], d: usize, view: &FamilyView) -> Coverage {
    match (&view.pre_flow, &view.flow, view.sigmas) {
        (Some(centres), Some(flow), Some((sigma1, _))) if d == 2 => {
            coverage::flow_mixture(centres, sigma1, flow)
        }
        _ => coverage::gaussian_mixture(mu, sigma, d, (0, 1.min(d - 1))),
    }
}

/// Family-specific values reported with each step (a second, small readback for the BN-VAE
/// and the f-VAE only).
fn family_extras(model: &Model) -> Vec<(String, f32)> {
    let values = model.extra_values();
    if values.is_empty() {
        return Vec::new();
    }
    let names: Vec<&str> = values.iter().map(|(n, _)| *n).collect();
    let read = to_vec(Tensor::cat(values.into_iter().map(|(_, v)| v).collect(), 0));
    names
        .into_iter()
        .zip(read)
        .map(|(n, v)| (n.to_owned(), v))
        .collect()
}

/// Every centre's sigma1-circle in dims 0 and 1 pushed through the flow, in one batch.
fn warped_outlines(flow: &Flow, centre: Tensor<2>, sigma1: f32) -> Vec<[f32; 2]> {
    let [n, d] = centre.dims();
    let k = OUTLINE_POINTS;
    let mut offsets = vec![0.0f32; k * d];
    for j in 0..k {
        let a = j as f32 / k as f32 * std::f32::consts::TAU;
        offsets[j * d] = sigma1 * a.cos();
        offsets[j * d + 1] = sigma1 * a.sin();
    }
    let device = centre.device();
    let offsets = to_tensor(offsets, k, d, &device);
    // Row i * k + j: centre i plus offset j.
    let points = centre
        .unsqueeze_dim::<3>(1)
        .repeat_dim(1, k)
        .reshape([n * k, d])
        + offsets.repeat_dim(0, n);
    let z = to_vec(flow.forward(points).0);
    z.chunks_exact(d).map(|p| [p[0], p[1]]).collect()
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
