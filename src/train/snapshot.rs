//! A snapshot: the model's current view of the probe set and a plain copy of its decoder.
//! Plain data, cheap to clone (the probe images are shared).

use std::sync::Arc;

use crate::explore::PlainDecoder;

/// The probe set: fixed test samples whose posteriors every snapshot reports.
#[derive(Clone, Debug, Default)]
pub struct Probe {
    /// Index of each probe sample in the test split.
    pub indices: Vec<usize>,
    /// Labels, one per sample.
    pub labels: Vec<u8>,
    /// Grey levels, `width * height` per sample.
    pub pixels: Vec<u8>,
    /// Image width.
    pub width: usize,
    /// Image height.
    pub height: usize,
    /// Class names by label.
    pub class_names: Vec<String>,
}

impl Probe {
    /// Number of probe samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Grey levels of sample `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let d = self.width * self.height;
        &self.pixels[i * d..(i + 1) * d]
    }
}

/// The model as seen at one step.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Steps completed.
    pub step: u64,
    /// Epochs completed.
    pub epoch: usize,
    /// Latent dimension.
    pub latent_dim: usize,
    /// The probe set (shared between snapshots).
    pub probe: Arc<Probe>,
    /// Posterior means, `probe.len() * latent_dim`, row-major.
    pub mu: Vec<f32>,
    /// Posterior standard deviations, same layout.
    pub sigma: Vec<f32>,
    /// The decoder, to decode any latent point without the trainer.
    pub decoder: Arc<PlainDecoder>,
}

impl Snapshot {
    /// Posterior mean of probe sample `i`.
    pub fn mu_of(&self, i: usize) -> &[f32] {
        &self.mu[i * self.latent_dim..(i + 1) * self.latent_dim]
    }

    /// Posterior standard deviation of probe sample `i`.
    pub fn sigma_of(&self, i: usize) -> &[f32] {
        &self.sigma[i * self.latent_dim..(i + 1) * self.latent_dim]
    }
}
