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
}

impl TestMetrics {
    /// Number of latent dimensions with KL above 0.01 nats.
    pub fn active_dims(&self) -> usize {
        self.kl_per_dim.iter().filter(|&&k| k > 0.01).count()
    }
}
