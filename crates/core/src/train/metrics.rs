//! Metrics of training steps and test evaluations: plain data for curves, CSV and messages.

use serde::{Deserialize, Serialize};

/// What one training step measured (batch means, in nats).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// Steps completed, this one included.
    pub step: u64,
    /// Epoch this step belongs to (from 1).
    pub epoch: usize,
    /// Share of the epoch completed after this step.
    pub epoch_progress: f32,
    /// `-log p(x|z)` per sample.
    pub reconstruction: f32,
    /// KL to the prior per sample.
    pub kl: f32,
    /// The optimised loss: reconstruction + KL weight * KL.
    pub total: f32,
    /// The KL weight used (beta after warm-up).
    pub kl_weight: f32,
    /// KL per latent dimension (empty for families whose KL does not split by dimension).
    pub kl_per_dim: Vec<f32>,
    /// Family-specific values by name (the BN-VAE's `kl_floor`, the f-VAE's `sigma1` and
    /// `sigma2`).
    #[serde(default)]
    pub extra: Vec<(String, f32)>,
}

impl StepMetrics {
    /// A family-specific value by name.
    pub fn extra(&self, name: &str) -> Option<f32> {
        self.extra.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

/// Test-split metrics after an epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestMetrics {
    /// Steps completed when evaluated.
    pub step: u64,
    /// Epochs completed when evaluated.
    pub epoch: usize,
    /// Mean `-log p(x|z)` over the test split (one posterior draw per image).
    pub reconstruction: f32,
    /// Mean KL over the test split.
    pub kl: f32,
    /// Mean negative ELBO (reconstruction + KL, beta = 1), in nats; none for the AE.
    pub neg_elbo: Option<f32>,
    /// Importance-sampled negative log-likelihood, in nats, when estimated.
    pub nll: Option<f32>,
    /// Importance samples per image behind `nll`.
    pub nll_samples: usize,
    /// Images behind `nll`.
    pub nll_images: usize,
    /// KL per latent dimension (dimensions above 0.01 nats are "active").
    pub kl_per_dim: Vec<f32>,
    /// Share of the prior's mass where the aggregate posterior of the probe set falls below a
    /// tenth of the prior (dims 0 and 1).
    #[serde(default)]
    pub hole_share: Option<f32>,
    /// The activity of each latent dimension's posterior mean over the test split,
    /// `Cov_x(E_q[z_i])` (Burda et al. 2016), of the position drawn in the plane: mu, the code,
    /// or F(E(x)) for the f-VAE. Empty without an encoder.
    #[serde(default)]
    pub mean_activity: Vec<f32>,
    /// The mean negative ELBO of the validation split held out of the training set, when the
    /// run has one (see [`crate::train::Schedule`]).
    #[serde(default)]
    pub validation: Option<f32>,
}

/// A dimension is active when its posterior mean varies across the data by more than this
/// (Burda et al. 2016).
pub const ACTIVITY_THRESHOLD: f32 = 0.01;

impl TestMetrics {
    /// Number of latent dimensions with KL above 0.01 nats. (The BN-VAE passes this by
    /// construction: its floor gives every dimension at least tau / 2; see
    /// [`TestMetrics::active_units`].)
    pub fn active_dims(&self) -> usize {
        self.kl_per_dim.iter().filter(|&&k| k > 0.01).count()
    }

    /// Burda's active units: dimensions whose posterior mean's variance over the test split
    /// exceeds [`ACTIVITY_THRESHOLD`]; `None` without an encoder.
    pub fn active_units(&self) -> Option<usize> {
        (!self.mean_activity.is_empty()).then(|| {
            self.mean_activity
                .iter()
                .filter(|&&v| v > ACTIVITY_THRESHOLD)
                .count()
        })
    }
}

/// The variance across samples of each dimension of `mu` (row-major `[samples, d]`): the
/// activity `Cov_x(E_q[z_i])` when `mu` holds posterior means.
pub fn mean_activity(mu: &[f32], d: usize) -> Vec<f32> {
    let n = mu.len() / d.max(1);
    if n == 0 {
        return Vec::new();
    }
    (0..d)
        .map(|i| {
            let mean = mu.iter().skip(i).step_by(d).map(|&v| v as f64).sum::<f64>() / n as f64;
            let var = mu
                .iter()
                .skip(i)
                .step_by(d)
                .map(|&v| (v as f64 - mean).powi(2))
                .sum::<f64>()
                / n as f64;
            var as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burda_activity_counts_the_dimensions_whose_means_move() {
        // Dim 0 carries the data (means +-1: variance 1), dim 1 is collapsed (all means 0.02:
        // variance 0) and dim 2 barely moves (means +-0.05: variance 0.0025).
        let mut mu = Vec::new();
        for i in 0..100 {
            let s = if i % 2 == 0 { 1.0 } else { -1.0 };
            mu.extend([s, 0.02, 0.05 * s]);
        }
        let a = mean_activity(&mu, 3);
        assert!((a[0] - 1.0).abs() < 1e-6 && a[1].abs() < 1e-9, "{a:?}");
        assert!((a[2] - 0.0025).abs() < 1e-6, "{a:?}");
        let m = TestMetrics {
            step: 0,
            epoch: 0,
            reconstruction: 0.0,
            kl: 0.0,
            neg_elbo: None,
            nll: None,
            nll_samples: 0,
            nll_images: 0,
            // A BN-VAE-like floor: every dimension's KL is above 0.01 nats.
            kl_per_dim: vec![2.0, 0.25, 0.25],
            hole_share: None,
            mean_activity: a,
            validation: None,
        };
        assert_eq!(
            m.active_dims(),
            3,
            "the KL count passes every floored dimension"
        );
        assert_eq!(
            m.active_units(),
            Some(1),
            "the posterior means say one is used"
        );
    }
}
