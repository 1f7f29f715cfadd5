//! The end-of-epoch test evaluation: negative ELBO, the importance-sampled log-likelihood,
//! the KL per dimension and the prior's hole share, on a copy detached from the trainer so it
//! can run beside training.

use std::sync::Arc;

use burn::tensor::{Device, Tensor};

use super::{
    EVAL_CHUNK, NLL_ROWS, TEST_BINARIZE_SEED, Trainer, VALIDATION_BINARIZE_SEED, one_hot,
    plain_flow, probe_coverage, training_len,
};
use crate::data::batch::{pixels, to_tensor, to_vec};
use crate::data::{Dataset, ImageSet};
use crate::model::Model;
use crate::rng::Rng;
use crate::train::metrics::mean_activity;
use crate::train::snapshot::FamilyView;
use crate::train::{TestMetrics, TrainConfig};

impl Trainer {
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
            validation: self.validation_loss,
        }
    }

    /// The mean negative ELBO (beta = 1; the reconstruction for a family without a KL) of the
    /// held-out validation split, one posterior draw per image from a fixed stream, on its one
    /// fixed binarisation when training binarises; when training on the importance-weighted
    /// bound, that bound with the run's K draws instead (the objective trained is the one
    /// validated: a model trained on the bound may keep improving it while its ELBO stalls).
    /// NaN for a family without an encoder.
    pub fn validate(&self) -> f32 {
        let (model, device) = self.inference();
        let (dim, d) = (self.data.dim(), self.config.latent_dim);
        let set = &self.data.train;
        let held_out: Vec<usize> = (training_len(&self.config, &self.data)..set.len()).collect();
        let mut rng = Rng::new(self.config.seed ^ 0x7A11D);
        let mut sum = 0.0f64;
        let k = self.config.hyper.iw_samples;
        if k > 1 && self.config.model.has_importance_weights() {
            for indices in held_out.chunks((NLL_ROWS / k).max(1)) {
                let m = indices.len();
                let x = fixed_pixels(set, indices, self.config.binarize, VALIDATION_BINARIZE_SEED);
                let x = to_tensor(x, m, dim, &device).repeat_dim(0, k);
                let eps = to_tensor(rng.normals(m * k * d), m * k, d, &device);
                let onehot = self.config.model.needs_labels().then(|| {
                    let labels = (0..k).flat_map(|_| indices.iter().map(|&i| set.labels[i]));
                    one_hot(labels, self.classes, &device)
                });
                let Some(log_w) = model.log_weights(x, onehot, eps, self.config.likelihood) else {
                    return f32::NAN;
                };
                sum += crate::model::losses::sum_neg_log_mean_exp(&to_vec(log_w), m, k);
            }
            return (sum / held_out.len().max(1) as f64) as f32;
        }
        for indices in held_out.chunks(EVAL_CHUNK) {
            let m = indices.len();
            let x = fixed_pixels(set, indices, self.config.binarize, VALIDATION_BINARIZE_SEED);
            let x = to_tensor(x, m, dim, &device);
            let eps = to_tensor(rng.normals(m * d), m, d, &device);
            let onehot = self.config.model.needs_labels().then(|| {
                one_hot(
                    indices.iter().map(|&i| set.labels[i]),
                    self.classes,
                    &device,
                )
            });
            let Some(terms) = model.terms(x, onehot, eps, self.config.likelihood) else {
                return f32::NAN;
            };
            let mut loss = terms.reconstruction.sum();
            if let Some(kl) = terms.kl {
                loss = loss + kl.sum();
            }
            sum += to_vec(loss)[0] as f64;
        }
        (sum / held_out.len().max(1) as f64) as f32
    }
    /// Test metrics over the whole test split, plus the importance-sampled log-likelihood
    /// when `with_nll` and the config asks for samples.
    pub fn evaluate(&self, with_nll: bool) -> TestMetrics {
        self.evaluation().run(with_nll)
    }
}

/// Pixels of `set` at `indices` as floats: grey levels, or (with `binarize`) one fixed
/// Bernoulli draw per pixel from a stream of its own for each image, so that a split is
/// binarised the same way whatever the chunking.
pub(super) fn fixed_pixels(
    set: &ImageSet,
    indices: &[usize],
    binarize: bool,
    seed: u64,
) -> Vec<f32> {
    let mut out = pixels(set, indices, None);
    if !binarize {
        return out;
    }
    let dim = set.dim();
    for (row, &i) in indices.iter().enumerate() {
        let mut rng = Rng::new(seed.wrapping_mul(1_000_003).wrapping_add(i as u64));
        for p in &mut out[row * dim..(row + 1) * dim] {
            *p = if rng.uniform() < *p { 1.0 } else { 0.0 };
        }
    }
    out
}

/// A trained model's test-split evaluation, detached from its [`Trainer`].
pub struct Evaluation {
    model: Model,
    device: Device,
    data: Arc<Dataset>,
    config: TrainConfig,
    classes: usize,
    step: u64,
    epoch: usize,
    /// The trainer's newest validation loss, reported beside the test metrics.
    validation: Option<f32>,
}

impl Evaluation {
    /// Test inputs at `indices` as floats: grey levels, or the fixed binarisation.
    fn test_pixels(&self, indices: &[usize]) -> Vec<f32> {
        fixed_pixels(
            &self.data.test,
            indices,
            self.config.binarize,
            TEST_BINARIZE_SEED,
        )
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
        self.run_with_progress(with_nll, &mut |_| {})
    }

    /// [`Evaluation::run`], reporting the share of the importance sampling done (0 to 1) as
    /// it goes: with K = 5,000 on the whole test split it takes minutes.
    pub fn run_with_progress(&self, with_nll: bool, progress: &mut dyn FnMut(f32)) -> TestMetrics {
        let mut steps = EvaluationSteps::new(self, with_nll, EVAL_CHUNK, NLL_ROWS);
        loop {
            if let Some(metrics) = steps.step() {
                return metrics;
            }
            if steps.stage == Stage::Nll {
                progress(steps.nll_share());
            }
        }
    }
}

/// Where an [`EvaluationSteps`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Reconstruction and KL over the test split.
    Terms,
    /// The importance-sampled log-likelihood on its first images.
    Nll,
    /// The posteriors of the test split: the prior's holes and each dimension's activity.
    Posteriors,
}

/// An evaluation taken one chunk of test images at a time, so that a driver without threads
/// (a browser page's) can run it between training steps and keep the page drawing;
/// [`Evaluation::run`] takes the same steps to the end.
pub struct EvaluationSteps<J: std::borrow::Borrow<Evaluation> = Evaluation> {
    job: J,
    with_nll: bool,
    /// Test images per chunk of the terms and posteriors.
    rows: usize,
    /// Rows (images times samples) per chunk of the importance sampling.
    nll_rows: usize,
    stage: Stage,
    /// The next test image of the stage.
    next: usize,
    rng: Rng,
    nll_rng: Rng,
    rec_sum: f64,
    kl_sum: Option<f64>,
    kl_dims: Option<Vec<f64>>,
    nll_sum: Option<f64>,
    /// The test posteriors (`None` once a chunk found no encoder).
    posteriors: Option<(Vec<f32>, Vec<f32>, Vec<f32>)>,
}

impl<J: std::borrow::Borrow<Evaluation>> EvaluationSteps<J> {
    /// The evaluation `job`, in chunks of `rows` test images (`nll_rows` images times samples
    /// in the importance sampling).
    pub fn new(job: J, with_nll: bool, rows: usize, nll_rows: usize) -> Self {
        let seed = job.borrow().config.seed;
        Self {
            job,
            with_nll,
            rows: rows.max(1),
            nll_rows: nll_rows.max(1),
            stage: Stage::Terms,
            next: 0,
            rng: Rng::new(seed ^ 0x7E57),
            nll_rng: Rng::new(seed ^ 0x1111),
            rec_sum: 0.0,
            kl_sum: None,
            kl_dims: None,
            nll_sum: None,
            posteriors: Some(Default::default()),
        }
    }

    /// The share of the importance sampling done, 0 to 1.
    fn nll_share(&self) -> f32 {
        let images = self.nll_images();
        match self.stage {
            Stage::Terms => 0.0,
            Stage::Nll => self.next as f32 / images.max(1) as f32,
            Stage::Posteriors => 1.0,
        }
    }

    fn nll_images(&self) -> usize {
        let job = self.job.borrow();
        match self.with_nll && job.config.nll_samples > 0 {
            true => job.config.nll_images.min(job.data.test.len()),
            false => 0,
        }
    }

    /// Runs the next chunk; the metrics once the last one is done.
    pub fn step(&mut self) -> Option<TestMetrics> {
        let n = self.job.borrow().data.test.len();
        match self.stage {
            Stage::Terms if self.next < n => self.terms_chunk(),
            Stage::Terms => self.advance(Stage::Nll),
            Stage::Nll if self.next < self.nll_images() => self.nll_chunk(),
            Stage::Nll => self.advance(Stage::Posteriors),
            Stage::Posteriors if self.next < n && self.posteriors.is_some() => {
                self.posteriors_chunk()
            }
            Stage::Posteriors => return Some(self.finish()),
        }
        None
    }

    fn advance(&mut self, stage: Stage) {
        self.stage = stage;
        self.next = 0;
    }

    fn terms_chunk(&mut self) {
        let job = self.job.borrow();
        let (model, device) = (&job.model, &job.device);
        let (dim, d) = (job.data.dim(), job.config.latent_dim);
        let n = job.data.test.len();
        let indices: Vec<usize> = (self.next..(self.next + self.rows).min(n)).collect();
        self.next += indices.len();
        let m = indices.len();
        let x = to_tensor(job.test_pixels(&indices), m, dim, device);
        let eps = to_tensor(self.rng.normals(m * d), m, d, device);
        let onehot = job.test_onehot(&indices, 1, device);
        let Some(terms) = model.terms(x, onehot, eps, job.config.likelihood) else {
            // No encoder: nothing to reconstruct.
            self.next = n;
            return;
        };
        self.rec_sum += to_vec(terms.reconstruction.sum())[0] as f64;
        if let Some(kl) = terms.kl {
            *self.kl_sum.get_or_insert(0.0) += to_vec(kl.sum())[0] as f64;
        }
        if let Some(per_dim) = terms.kl_per_dim {
            let acc = self.kl_dims.get_or_insert_with(|| vec![0.0; d]);
            for (a, v) in acc.iter_mut().zip(to_vec(per_dim.sum_dim(0))) {
                *a += v as f64;
            }
        }
    }

    /// The importance-sampled negative log-likelihood of the next images (nothing for a family
    /// without one).
    fn nll_chunk(&mut self) {
        let images = self.nll_images();
        let job = self.job.borrow();
        let (model, device) = (&job.model, &job.device);
        let k = job.config.nll_samples;
        let d = job.config.latent_dim;
        let chunk = (self.nll_rows / k).max(1);
        let indices: Vec<usize> = (self.next..(self.next + chunk).min(images)).collect();
        self.next += indices.len();
        let m = indices.len();
        let x = to_tensor(job.test_pixels(&indices), m, job.data.dim(), device).repeat_dim(0, k);
        let eps = to_tensor(self.nll_rng.normals(m * k * d), m * k, d, device);
        let onehot = job.test_onehot(&indices, k, device);
        let Some(log_w) = model.log_weights(x, onehot, eps, job.config.likelihood) else {
            self.next = images;
            return;
        };
        *self.nll_sum.get_or_insert(0.0) +=
            crate::model::losses::sum_neg_log_mean_exp(&to_vec(log_w), m, k);
    }

    fn posteriors_chunk(&mut self) {
        let job = self.job.borrow();
        let n = job.data.test.len();
        let indices: Vec<usize> = (self.next..(self.next + self.rows).min(n)).collect();
        self.next += indices.len();
        let grey = pixels(&job.data.test, &indices, None);
        let x = to_tensor(grey, indices.len(), job.data.dim(), &job.device);
        match (job.model.posteriors(x), &mut self.posteriors) {
            (Some(post), Some((mu, sigma, pre))) => {
                mu.extend(to_vec(post.position));
                sigma.extend(to_vec(post.sigma));
                if let Some(p) = post.pre_flow {
                    pre.extend(to_vec(p));
                }
            }
            _ => self.posteriors = None,
        }
    }

    /// The metrics from the sums: means over the test split, the hole share and the activity
    /// from the test split's posteriors.
    fn finish(&mut self) -> TestMetrics {
        let job = self.job.borrow();
        let model = &job.model;
        let d = job.config.latent_dim;
        let n = job.data.test.len();
        let images = self.nll_images();
        let nll = self.nll_sum.map(|s| (s / images.max(1) as f64) as f32);
        let (coverage, activity) = match self.posteriors.take() {
            Some((mu, sigma, pre)) => {
                let view = FamilyView {
                    pre_flow: (!pre.is_empty()).then_some(pre),
                    flow: model.flow().map(|f| Arc::new(plain_flow(f))),
                    sigmas: model.f_sigmas(),
                    class_means: model.class_means(),
                    ..FamilyView::default()
                };
                let activity = mean_activity(&mu, d);
                (Some(probe_coverage(&mu, &sigma, d, &view)), activity)
            }
            None => (None, Vec::new()),
        };
        // A family without an encoder reconstructs nothing.
        let rec = if job.config.model.draws().encoder {
            (self.rec_sum / n as f64) as f32
        } else {
            f32::NAN
        };
        let kl = self.kl_sum.map(|k| (k / n as f64) as f32);
        TestMetrics {
            step: job.step,
            epoch: job.epoch,
            reconstruction: rec,
            kl: kl.unwrap_or(0.0),
            neg_elbo: kl.map(|k| rec + k),
            nll,
            nll_samples: job.config.nll_samples,
            nll_images: job.config.nll_images.min(n),
            kl_per_dim: self
                .kl_dims
                .take()
                .unwrap_or_default()
                .iter()
                .map(|&v| (v / n as f64) as f32)
                .collect(),
            hole_share: coverage.map(|c| c.hole_share),
            mean_activity: activity,
            validation: job.validation,
        }
    }
}
