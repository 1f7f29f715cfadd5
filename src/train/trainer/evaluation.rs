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
use crate::explore::coverage::Coverage;
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
    /// fixed binarisation when training binarises. NaN for a family without an encoder.
    pub fn validate(&self) -> f32 {
        let (model, device) = self.inference();
        let (dim, d) = (self.data.dim(), self.config.latent_dim);
        let set = &self.data.train;
        let held_out: Vec<usize> = (training_len(&self.config, &self.data)..set.len()).collect();
        let mut rng = Rng::new(self.config.seed ^ 0x7A11D);
        let mut sum = 0.0f64;
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
            .then(|| self.importance_nll(model, device, progress))
            .flatten();
        let draws = self.config.model.draws();
        let (coverage, activity) = match self.test_posteriors() {
            Some((c, a)) => (Some(c), a),
            None => (None, Vec::new()),
        };
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
            hole_share: coverage.map(|c| c.hole_share),
            mean_activity: activity,
            validation: self.validation,
        }
    }

    /// The test split's aggregate posterior against the prior (dims 0 and 1: the per-epoch hole
    /// share; snapshots use the smaller probe set instead) and the activity of each dimension's
    /// posterior mean, `Cov_x(E_q[z])`; `None` without an encoder.
    fn test_posteriors(&self) -> Option<(Coverage, Vec<f32>)> {
        let (model, device) = (&self.model, &self.device);
        let (dim, d) = (self.data.dim(), self.config.latent_dim);
        let n = self.data.test.len();
        let (mut mu, mut sigma, mut pre) = (Vec::new(), Vec::new(), Vec::new());
        for start in (0..n).step_by(EVAL_CHUNK) {
            let indices: Vec<usize> = (start..(start + EVAL_CHUNK).min(n)).collect();
            let grey = pixels(&self.data.test, &indices, None);
            let post = model.posteriors(to_tensor(grey, indices.len(), dim, device))?;
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
            class_means: model.class_means(),
            ..FamilyView::default()
        };
        let activity = mean_activity(&mu, d);
        Some((probe_coverage(&mu, &sigma, d, &view), activity))
    }

    /// The importance-sampled negative log-likelihood, or `None` for a family without one.
    fn importance_nll(
        &self,
        model: &Model,
        device: &Device,
        progress: &mut dyn FnMut(f32),
    ) -> Option<f32> {
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
            progress((start + m) as f32 / images as f32);
        }
        Some((sum / images as f64) as f32)
    }
}
