//! The training loop of every family: one [`Trainer::step`] at a time. Split by job: this
//! file steps the likelihood families and keeps the run (epochs, roll-back, run info);
//! `adversarial` steps the families with a discriminator; `evaluation` computes the test
//! metrics; `view` builds the snapshots the explorer draws.

mod adversarial_step;
mod evaluation;
mod in_flight;
mod view;

pub use evaluation::{Evaluation, EvaluationSteps};
pub use in_flight::{Launched, PendingCopy};
use view::make_probe;
pub use view::{plain_decoder, plain_flow, probe_coverage};

use std::sync::Arc;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};

use super::checkpoint::{self, RunInfo};
use super::schedule::{Plateau, Verdict};
use super::snapshot::Probe;
use super::{HyperParams, StepMetrics, TrainConfig};
use crate::data::Dataset;
use crate::data::batch::{DeviceImages, EpochOrder, pixels, to_tensor, to_vec};
use crate::fused::FusedAdam;
use crate::model::Model;
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
/// Seed of the one fixed binarisation of the validation split.
const VALIDATION_BINARIZE_SEED: u64 = 2;

/// A likelihood step's statistics on the device, `[reconstruction, kl?, kl per dimension...]`,
/// and how to read them.
struct StepStats {
    stats: Tensor<1>,
    has_kl: bool,
    per_dim_len: usize,
    kl_weight: f32,
    /// Whether the objective was the importance-weighted bound (its value read back last).
    importance_weighted: bool,
}

/// The one-draw negative ELBO among a step's extra values when the objective trained on is
/// the importance-weighted bound (the total is then that bound, negated).
pub const NEG_ELBO: &str = "neg_elbo";

impl StepStats {
    /// Values read back for this step.
    fn len(&self) -> usize {
        1 + usize::from(self.has_kl) + self.per_dim_len + usize::from(self.importance_weighted)
    }

    /// The step's metrics from its values read back (no family values).
    fn metrics(&self, values: &[f32], step: u64, epoch: usize, progress: f32) -> StepMetrics {
        let kl = if self.has_kl { values[1] } else { 0.0 };
        let start = 1 + usize::from(self.has_kl);
        let elbo_loss = values[0] + self.kl_weight * kl;
        let (total, extra) = match self.importance_weighted {
            true => (
                values[start + self.per_dim_len],
                vec![(NEG_ELBO.to_owned(), elbo_loss)],
            ),
            false => (elbo_loss, Vec::new()),
        };
        StepMetrics {
            step,
            epoch,
            epoch_progress: progress,
            reconstruction: values[0],
            kl,
            total,
            kl_weight: self.kl_weight,
            kl_per_dim: values[start..start + self.per_dim_len].to_vec(),
            extra,
        }
    }
}

/// Trains one model on one dataset. Owns the model, the optimiser and every random stream.
pub struct Trainer {
    config: TrainConfig,
    data: Arc<Dataset>,
    device: Device,
    model: Model,
    classes: usize,
    optim: ModuleOptimizer,
    rng: Rng,
    /// The stream as it was when the current epoch began (it dealt the epoch's order).
    epoch_rng: Rng,
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
    /// The long-run schedule's state (idle without a validation split).
    plateau: Plateau,
    /// The weights of the best validation loss so far.
    best_model: Option<Model>,
    /// Whether training batches are cut from images kept on the device.
    images_on_device: bool,
    /// The training images on the device, uploaded at the first step that needs them.
    device_images: Option<DeviceImages>,
    /// The newest epoch's validation loss.
    validation_loss: Option<f32>,
    /// What the schedule did at the last epoch's end, for the user.
    notice: Option<String>,
    /// Whether the device's reads are asynchronous (WebGPU in a page): steps are then
    /// launched and settled apart ([`Trainer::launch`]), and everything that reads the model
    /// (snapshots, evaluations, saves) reads a CPU copy of it instead ([`Trainer::start_copy`]).
    reads_async: bool,
    /// The CPU copy of the model that reads go to where reads are asynchronous.
    mirror: Option<in_flight::Mirror>,
    /// How many times the model was put back or replaced other than by a step (a roll-back, the
    /// schedule's best weights): with the step, what a CPU copy is checked against.
    resets: u64,
    /// An epoch ended while reads are asynchronous: the schedule runs on the CPU copy of its
    /// model once that is here ([`Trainer::follow_due_schedule`]).
    schedule_due: bool,
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

/// One-hot rows for `labels`, `[n, classes]`.
pub(super) fn one_hot(
    labels: impl Iterator<Item = u8>,
    classes: usize,
    device: &Device,
) -> Tensor<2> {
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

/// Training images that training uses: all but a held-out validation split (the last ones).
fn training_len(config: &TrainConfig, data: &Dataset) -> usize {
    data.train
        .len()
        .saturating_sub(config.schedule.validation)
        .max(1)
}

/// A fresh epoch's order: whole batches only for a family whose loss uses batch statistics.
fn epoch_order(config: &TrainConfig, data: &Dataset, rng: &mut Rng) -> EpochOrder {
    EpochOrder::shuffled(training_len(config, data), config.hyper.batch_size, rng)
        .whole_batches(config.model.draws().batch_statistics)
}

/// The logit of each pixel's mean over the first `n` images of `set`, clipped to
/// [0.001, 0.999] first (Burda et al.'s released code starts the decoder's output bias there).
fn mean_pixel_logits(set: &crate::data::ImageSet, n: usize) -> Vec<f32> {
    let (n, dim) = (n.clamp(1, set.len().max(1)), set.dim());
    let mut sums = vec![0f64; dim];
    for i in 0..n.min(set.len()) {
        for (s, &p) in sums.iter_mut().zip(set.image(i)) {
            *s += f64::from(p) / 255.0;
        }
    }
    sums.iter()
        .map(|s| {
            let m = (s / n as f64).clamp(0.001, 0.999);
            (m / (1.0 - m)).ln() as f32
        })
        .collect()
}

fn new_optimizer(config: &TrainConfig) -> ModuleOptimizer {
    let adam = FusedAdam {
        epsilon: config.adam_epsilon,
        ..FusedAdam::default()
    };
    if config.model.draws().adversarial {
        // beta1 = 0.5, as adversarial training usually takes it (DCGAN).
        adam.with_beta_1(0.5).init()
    } else {
        // PyTorch's defaults (epsilon as configured), as the reference peer uses them.
        adam.init()
    }
}

impl Trainer {
    /// A fresh model on `device` (autodiff is enabled here), seeded from the config.
    pub fn new(
        mut config: TrainConfig,
        data: Arc<Dataset>,
        device: Device,
    ) -> Result<Self, TrainError> {
        config.settle_likelihood(data.train.is_colour());
        config.validate_for(&data).map_err(TrainError::Config)?;
        let device = device.autodiff();
        let model = {
            let _rng = crate::backend::device_rng_lock(&device);
            device.seed(config.seed);
            let model = config.build_model(data.train.shape(), class_count(&data), &device);
            crate::backend::initialise_now(&model);
            model
        };
        let model = match config.mean_output_bias {
            true => {
                let bias = mean_pixel_logits(&data.train, training_len(&config, &data));
                model.with_output_bias(&bias).ok_or_else(|| {
                    TrainError::Config(
                        "the decoder's output bias from the data's mean needs the dense decoder (--arch mlp)"
                            .into(),
                    )
                })?
            }
            false => model,
        };
        Ok(Self::with_model(config, data, device, model, 0, 0))
    }

    /// Resumes from a saved run on disk (a folder, or a `.zip` of one: see
    /// [`checkpoint::RunFiles::open`]): the weights and the step counters, and where the run
    /// was saved with its training state, the optimiser, the random streams, the place in the
    /// epoch and the schedule, so that it goes on exactly as it would have (a run saved
    /// without them starts a fresh optimiser).
    pub fn from_checkpoint(
        dir: &std::path::Path,
        data: Arc<Dataset>,
        device: Device,
    ) -> anyhow::Result<Self> {
        Self::from_run(&checkpoint::RunFiles::open(dir)?, data, device)
    }

    /// [`Trainer::from_checkpoint`] from a run's files wherever they are (on disk, or in
    /// memory: see [`checkpoint::RunFiles::of`]).
    pub fn from_run(
        files: &checkpoint::RunFiles,
        data: Arc<Dataset>,
        device: Device,
    ) -> anyhow::Result<Self> {
        Self::from_run_with(files, data, device, true)
    }

    /// A saved run's weights alone, to evaluate them: the training state `config.json` names
    /// (the optimiser, the schedule's best weights) is neither read nor needed, so a folder
    /// that keeps only the description and the weights (`scripts/long-run.sh`'s
    /// `at/epoch-N`) evaluates.
    pub fn weights_of(
        dir: &std::path::Path,
        data: Arc<Dataset>,
        device: Device,
    ) -> anyhow::Result<Self> {
        Self::from_run_with(&checkpoint::RunFiles::open(dir)?, data, device, false)
    }

    fn from_run_with(
        files: &checkpoint::RunFiles,
        data: Arc<Dataset>,
        device: Device,
        training_state: bool,
    ) -> anyhow::Result<Self> {
        let info = files.info()?;
        if info.input_dim != data.dim() || info.shape() != data.train.shape() {
            let shape = data.train.shape();
            anyhow::bail!(
                "{}: the model expects {}x{} images with {} channels but {} has {}x{} with {}",
                files.name(),
                info.width,
                info.height,
                info.shape().channels,
                data.name,
                shape.width,
                shape.height,
                shape.channels
            );
        }
        let device = device.autodiff();
        let model = files.load_model(&info, class_count(&data), &device)?;
        let resume = info.resume.clone();
        let mut trainer = Self::with_model(
            info.config.clone(),
            data,
            device,
            model,
            info.step,
            info.epoch,
        );
        if let Some(resume) = resume.as_ref().filter(|_| training_state) {
            trainer.restore(files, &info, resume)?;
        }
        Ok(trainer)
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
        let epoch_rng = rng.clone();
        let order = epoch_order(&config, &data, &mut rng);
        let probe = Arc::new(make_probe(&data, config.probe_size, config.seed));
        let prior_probe = Rng::new(config.seed ^ 0x9A10).normals(probe.len() * config.latent_dim);
        let optim = new_optimizer(&config);
        static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self {
            last_good: (model.clone(), step),
            images_on_device: false,
            device_images: None,
            plateau: Plateau::new(config.schedule.clone()),
            best_model: None,
            validation_loss: None,
            notice: None,
            reads_async: false,
            mirror: None,
            resets: 0,
            schedule_due: false,
            config,
            data,
            device,
            model,
            classes,
            prior_probe,
            run,
            optim,
            rng,
            epoch_rng,
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

    /// Carries the files the dataset was read from in the config (a loaded run's config
    /// names its upload but cannot hold it), so that a later reset on it finds them.
    pub fn set_upload(&mut self, upload: Option<Arc<crate::data::files::Upload>>) {
        self.config.upload = upload;
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
        self.epoch >= self.config.epochs || self.plateau.stopped
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
        let (loss, pending) = self.likelihood_terms()?;
        // One readback per step, before the update, so a bad loss never reaches the weights.
        let values = to_vec(pending.stats.clone());
        let metrics = pending.metrics(&values, self.step + 1, 0, 0.0);
        if !metrics.total.is_finite() {
            return Err(self.roll_back(metrics.total));
        }
        self.update(loss);
        let (epoch, epoch_progress) = self.advance(true);
        Ok(StepMetrics {
            epoch,
            epoch_progress,
            // Read after the update, so they match the model the next snapshot shows.
            extra: [
                metrics.extra.clone(),
                family_extras(&self.model, self.config.likelihood),
            ]
            .concat(),
            ..metrics
        })
    }

    /// A likelihood family's loss on the next batch, and its statistics still on the device.
    fn likelihood_terms(&mut self) -> Result<(Tensor<1>, StepStats), TrainError> {
        let hyper = &self.config.hyper;
        let kl_weight = hyper.kl_weight(self.step);
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
        // The importance-weighted objective: k fresh draws per image, after the ELBO's (so a
        // run with one draw takes the same random stream as before).
        let k = self.config.hyper.iw_samples.max(1);
        let weighted = match k {
            1 => None,
            _ => {
                let eps_k = to_tensor(self.rng.normals(k * n * d), k * n, d, &self.device);
                let log_w = self.model.log_weights(
                    x.clone().repeat_dim(0, k),
                    onehot.clone().map(|o| o.repeat_dim(0, k)),
                    eps_k,
                    self.config.likelihood,
                );
                let log_w = log_w.ok_or_else(|| {
                    TrainError::Config(format!(
                        "the {} has no importance weights to train on",
                        self.config.model.label()
                    ))
                })?;
                Some(crate::model::losses::iw_bound(log_w, k).mean().neg())
            }
        };
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
        // Trained on the bound, the ELBO is only watched: its graph is dropped unused.
        let importance_weighted = weighted.is_some();
        if let Some(bound) = weighted {
            readback.push(bound.clone().detach());
            loss = bound;
        }
        let stats = StepStats {
            stats: Tensor::cat(readback, 0),
            has_kl,
            per_dim_len,
            kl_weight,
            importance_weighted,
        };
        Ok((loss, stats))
    }

    /// Backpropagates `loss` and steps the optimiser.
    fn update(&mut self, loss: Tensor<1>) {
        let hyper = &self.config.hyper;
        let mut grads = loss.backward();
        // The CVAE's class means step at their own rate, when it differs from the network's.
        let means = self
            .model
            .class_means_param()
            .filter(|_| hyper.class_mean_lr_scale != 1.0)
            .map(|p| GradientsParams::from_module(&mut grads, p));
        let grads = GradientsParams::from_grads(grads, &self.model);
        // The optimiser consumes the model; a panic inside it leaves the last good copy in place.
        let model = std::mem::replace(&mut self.model, self.last_good.0.clone());
        let lr = hyper.lr * self.plateau.lr_scale * self.config.lr_schedule.factor(self.epoch);
        let mut model = self.optim.step(lr, model, grads);
        if let Some(means) = means {
            model = self
                .optim
                .step(lr * hyper.class_mean_lr_scale, model, means);
        }
        self.model = model;
    }

    /// Keeps the training images on the device (uploaded once, at the next step), so that each
    /// step sends only its batch's indices and noise: for a GPU or a remote server, where every
    /// upload crosses a bus or a network. Binarised batches are still drawn and sent from here,
    /// so that a seed gives the same run on every backend.
    pub fn keep_images_on_device(&mut self, on: bool) {
        self.images_on_device = on;
        if !on {
            self.device_images = None;
        }
    }

    /// The next training batch's sample indices and pixels (binarised when asked).
    fn next_batch(&mut self) -> (Vec<usize>, Tensor<2>) {
        let indices = self.order.batch(self.batch_index).to_vec();
        if self.images_on_device && !self.config.binarize {
            let (set, device) = (&self.data.train, &self.device);
            let images = self
                .device_images
                .get_or_insert_with(|| DeviceImages::upload(set, device));
            let x = images.batch(&indices);
            return (indices, x);
        }
        let binarize = self.config.binarize.then_some(&mut self.rng);
        let x = pixels(&self.data.train, &indices, binarize);
        let x = to_tensor(x, indices.len(), self.data.dim(), &self.device);
        (indices, x)
    }

    /// Counts a finished step: the batch, the epoch, and (with `keep_good`, when the step's
    /// loss was seen to be finite) the copy kept to roll back to. Returns the step's epoch
    /// (from 1) and the share of it done.
    fn advance(&mut self, keep_good: bool) -> (usize, f32) {
        self.step += 1;
        self.batch_index += 1;
        let epoch = self.epoch + 1;
        let epoch_progress = self.batch_index as f32 / self.order.batch_count() as f32;
        if self.batch_index >= self.order.batch_count() {
            self.epoch += 1;
            self.batch_index = 0;
            self.epoch_rng = self.rng.clone();
            self.order = epoch_order(&self.config, &self.data, &mut self.rng);
            if self.config.schedule.is_on() {
                match self.reads_async {
                    true => self.schedule_due = true,
                    false => self.follow_schedule(),
                }
            }
        }
        if keep_good && self.step.is_multiple_of(KEEP_GOOD_EVERY) {
            self.last_good = (self.model.clone(), self.step);
        }
        (epoch, epoch_progress)
    }

    /// At an epoch's end: validates, keeps the best weights, and decays the learning rate or
    /// stops (putting the best weights back) on a plateau.
    fn follow_schedule(&mut self) {
        let loss = self.validate();
        self.validation_loss = Some(loss);
        let what = match self.plateau.observe(self.epoch, loss) {
            Verdict::Best => {
                self.best_model = Some(self.model.clone());
                return;
            }
            Verdict::Wait => return,
            Verdict::Decay { lr_scale } => format!(
                "validation loss has not improved for {} epochs: learning rate now {:.3e}",
                self.config.schedule.patience,
                self.config.hyper.lr * lr_scale
            ),
            Verdict::Stop { best_epoch } => {
                if let Some(best) = self.best_model.take() {
                    self.model = best;
                    self.resets += 1;
                    self.last_good = (self.model.clone(), self.step);
                }
                format!(
                    "validation loss has stopped improving: stopped after epoch {}, with the weights of epoch {best_epoch} (validation loss {:.2})",
                    self.epoch,
                    self.plateau.best().map_or(f32::NAN, |b| b.0)
                )
            }
        };
        self.notice = Some(what);
    }

    /// What the schedule did at the last epoch's end (decayed or stopped), once.
    pub fn take_notice(&mut self) -> Option<String> {
        self.notice.take()
    }

    /// The newest epoch's validation loss, with a validation split.
    pub fn validation_loss(&self) -> Option<f32> {
        self.validation_loss
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
        self.resets += 1;
        self.step = restored_step;
        self.optim = new_optimizer(&self.config);
        (failed, restored_step)
    }

    /// Restores the last good copy of the model (after a panic inside a step).
    pub fn recover(&mut self) -> u64 {
        let (model, step) = self.last_good.clone();
        self.model = model;
        self.resets += 1;
        self.step = step;
        self.optim = new_optimizer(&self.config);
        step
    }

    /// The inference copy of the model (no autodiff) and its device: where reads are
    /// asynchronous, the CPU copy (see [`Trainer::start_copy`]).
    fn inference(&self) -> (Model, Device) {
        if let Some(mirror) = self.mirror.as_ref().filter(|_| self.reads_async) {
            return (mirror.model.clone(), Device::flex());
        }
        (self.model.valid(), self.device.clone().without_autodiff())
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
            weights: None,
            weights_fnv64: None,
            resume: None,
        }
    }

    /// Everything besides the weights that continuing this run exactly needs: the optimiser's
    /// moments and step counts, the schedule's best weights, the random streams, the place in
    /// the epoch and the schedule's state (saved by [`checkpoint::save_with`]).
    pub fn training_state(&self) -> anyhow::Result<checkpoint::TrainingState> {
        let optimizer = self
            .optim
            .into_bytes()
            .map_err(|e| anyhow::anyhow!("cannot serialise the optimiser: {e:?}"))?
            .to_vec();
        let best = match &self.best_model {
            Some(best) => Some(
                best.valid()
                    .into_record()
                    .into_bytes()
                    .map_err(|e| anyhow::anyhow!("cannot serialise the best weights: {e:?}"))?
                    .to_vec(),
            ),
            None => None,
        };
        Ok(checkpoint::TrainingState {
            optimizer,
            best,
            state: checkpoint::ResumeState {
                optimizer_fnv64: String::new(),
                best_fnv64: None,
                rng: self.rng.clone(),
                epoch_rng: self.epoch_rng.clone(),
                batch_index: self.batch_index,
                plateau: self.plateau.clone(),
                validation_loss: self.validation_loss.filter(|v| v.is_finite()),
            },
        })
    }

    /// Saves the weights and the training state into `dir` (see [`checkpoint::save_with`]),
    /// so that the run continues from here exactly.
    pub fn save(&self, dir: &std::path::Path, backend: &str) -> anyhow::Result<()> {
        let state = self.saved_state()?;
        let model = self.saved_model();
        checkpoint::save_with(dir, &model, &self.run_info(backend), state.as_ref())
    }

    /// The training state a save keeps: none where the device's reads are asynchronous (the
    /// optimiser's moments stay on the device; such a run resumes with a fresh optimiser).
    fn saved_state(&self) -> anyhow::Result<Option<checkpoint::TrainingState>> {
        match self.reads_async {
            true => Ok(None),
            false => self.training_state().map(Some),
        }
    }

    /// The weights a save writes: the model, or its CPU copy where reads are asynchronous.
    fn saved_model(&self) -> Model {
        match self.reads_async {
            true => self.inference().0,
            false => self.model.clone(),
        }
    }

    /// The run's files as a save writes them, with its training state (where there is no
    /// folder to save into, as in a browser).
    pub fn run_files(&self, backend: &str) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        let state = self.saved_state()?;
        let slot = checkpoint::MODEL_FILE;
        let model = self.saved_model();
        checkpoint::run_files_with(&model, &self.run_info(backend), slot, state.as_ref())
    }

    /// Puts back the training state a run was saved with (see [`Self::training_state`]).
    fn restore(
        &mut self,
        files: &checkpoint::RunFiles,
        info: &RunInfo,
        resume: &checkpoint::ResumeState,
    ) -> anyhow::Result<()> {
        let Some((optimizer, best)) = files.training_bytes(info)? else {
            return Ok(());
        };
        let name = |f: &str| files.path(f).display().to_string();
        let slot = info.weights.as_deref().unwrap_or(checkpoint::MODEL_FILE);
        let record = std::panic::catch_unwind(|| {
            burn::optim::OptimizerRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(optimizer))
        })
        .map_err(|_| {
            anyhow::anyhow!(
                "{}: the optimiser could not be parsed",
                name(checkpoint::optimizer_file(slot))
            )
        })?
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: not an optimiser file: {e:?}",
                name(checkpoint::optimizer_file(slot))
            )
        })?;
        self.optim = new_optimizer(&self.config).load_record(record);
        if let Some(bytes) = best {
            let file = name(checkpoint::best_file(slot));
            let record = checkpoint::parse_record(bytes)
                .map_err(|e| anyhow::anyhow!("{file}: not a model file: {e}"))?;
            let fresh = self.model.clone();
            let best = checkpoint::load_record(fresh, record)
                .map_err(|e| anyhow::anyhow!("{file}: does not fit the model: {e}"))?;
            self.best_model = Some(best);
        }
        self.rng = resume.rng.clone();
        self.epoch_rng = resume.epoch_rng.clone();
        self.order = epoch_order(&self.config, &self.data, &mut self.epoch_rng.clone());
        if resume.batch_index >= self.order.batch_count() {
            anyhow::bail!(
                "{}: resume: batch {} of an epoch of {} batches",
                name(checkpoint::CONFIG_FILE),
                resume.batch_index,
                self.order.batch_count()
            );
        }
        let scale = resume.plateau.lr_scale;
        if !(scale > 0.0 && scale <= 1.0) {
            anyhow::bail!(
                "{}: resume: the learning rate's factor must be in (0, 1], not {scale}",
                name(checkpoint::CONFIG_FILE)
            );
        }
        self.batch_index = resume.batch_index;
        self.plateau = resume.plateau.clone();
        self.validation_loss = resume.validation_loss;
        Ok(())
    }
}

/// Family-specific values reported with each step (a second, small readback for the BN-VAE
/// and the f-VAE only).
fn family_extras(model: &Model, likelihood: crate::model::Likelihood) -> Vec<(String, f32)> {
    let values = model.extra_values(likelihood);
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
