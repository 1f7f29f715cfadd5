//! Everything that defines a training run, written once as serde defaults and shared by the
//! command line, the worker and the saved `config.json`.

use serde::{Deserialize, Serialize};

use crate::model::{Likelihood, VaeConfig};

/// A model family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// The variational autoencoder with a Gaussian posterior and a standard normal prior.
    #[default]
    Vae,
}

impl ModelKind {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Vae => "vae",
        }
    }
}

/// Settings that may change while a run is going (applied at the next step).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HyperParams {
    /// Adam's learning rate.
    pub lr: f64,
    /// Samples per step (a change takes effect at the next epoch).
    pub batch_size: usize,
    /// Weight of the KL term once warm-up is over.
    pub beta: f32,
    /// Steps over which the KL weight rises linearly from 0 to `beta` (0: no warm-up).
    pub kl_warmup_steps: u64,
}

impl Default for HyperParams {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            batch_size: 128,
            beta: 1.0,
            kl_warmup_steps: 0,
        }
    }
}

impl HyperParams {
    /// The KL weight at `step` (counting from 0), with the linear warm-up applied.
    pub fn kl_weight(&self, step: u64) -> f32 {
        if self.kl_warmup_steps == 0 {
            self.beta
        } else {
            self.beta * ((step + 1) as f32 / self.kl_warmup_steps as f32).min(1.0)
        }
    }
}

/// A whole training run's definition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// The dataset: `mnist`, `fashion-mnist` or a path.
    pub dataset: String,
    /// The model family.
    pub model: ModelKind,
    /// Dimension of the latent space.
    pub latent_dim: usize,
    /// Widths of the encoder's hidden layers (the decoder mirrors them).
    pub hidden: Vec<usize>,
    /// The decoder's likelihood.
    pub likelihood: Likelihood,
    /// Settings that may change during the run.
    pub hyper: HyperParams,
    /// Number of passes over the training split.
    pub epochs: usize,
    /// Seed of every random choice: initial weights, shuffles, noise, held-out split.
    pub seed: u64,
    /// Dynamic binarisation: train on a fresh Bernoulli draw of each batch, test on one fixed
    /// draw.
    pub binarize: bool,
    /// Test samples whose posteriors are tracked in snapshots.
    pub probe_size: usize,
    /// Importance samples per image for the test log-likelihood (0: skip it).
    pub nll_samples: usize,
    /// Test images (the first ones) on which the log-likelihood is estimated.
    pub nll_images: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            dataset: "mnist".into(),
            model: ModelKind::Vae,
            latent_dim: 2,
            hidden: vec![512, 256],
            likelihood: Likelihood::Bernoulli,
            hyper: HyperParams::default(),
            epochs: 10,
            seed: 0,
            binarize: false,
            probe_size: 2000,
            nll_samples: 100,
            nll_images: 1000,
        }
    }
}

impl TrainConfig {
    /// The model shape for images of `input_dim` pixels.
    pub fn vae_config(&self, input_dim: usize) -> VaeConfig {
        VaeConfig::new(input_dim)
            .with_hidden(self.hidden.clone())
            .with_latent_dim(self.latent_dim)
    }

    /// Checks the settings, saying what is wrong in words.
    pub fn validate(&self) -> Result<(), String> {
        let h = &self.hyper;
        if self.latent_dim == 0 || self.latent_dim > 512 {
            return Err(format!(
                "latent dimension must be 1 to 512, not {}",
                self.latent_dim
            ));
        }
        if self.hidden.is_empty() || self.hidden.iter().any(|&w| w == 0 || w > 16_384) {
            return Err(format!(
                "hidden sizes must be 1 to 16384 each, not {:?}",
                self.hidden
            ));
        }
        if !(h.lr.is_finite() && h.lr > 0.0 && h.lr < 10.0) {
            return Err(format!("learning rate must be in (0, 10), not {}", h.lr));
        }
        if h.batch_size == 0 || h.batch_size > 65_536 {
            return Err(format!(
                "batch size must be 1 to 65536, not {}",
                h.batch_size
            ));
        }
        if !(h.beta.is_finite() && h.beta >= 0.0) {
            return Err(format!(
                "beta must be finite and at least 0, not {}",
                h.beta
            ));
        }
        if let Likelihood::Gaussian { sigma } = self.likelihood
            && !(sigma.is_finite() && sigma > 0.0)
        {
            return Err(format!("Gaussian sigma must be positive, not {sigma}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_rises_linearly_to_beta() {
        let h = HyperParams {
            beta: 2.0,
            kl_warmup_steps: 4,
            ..Default::default()
        };
        let w: Vec<f32> = (0..6).map(|s| h.kl_weight(s)).collect();
        assert_eq!(w, vec![0.5, 1.0, 1.5, 2.0, 2.0, 2.0]);
    }

    #[test]
    fn old_configs_load_with_defaults_and_bad_values_are_named() {
        let c: TrainConfig = serde_json::from_str(r#"{"latent_dim": 3}"#).unwrap();
        assert_eq!(c.latent_dim, 3);
        assert_eq!(c.hidden, vec![512, 256]);
        let mut bad = c.clone();
        bad.hyper.lr = -1.0;
        assert!(bad.validate().unwrap_err().contains("learning rate"));
    }
}
