//! A snapshot: the model's current view of the probe set and a plain copy of its decoder.
//! Plain data, cheap to clone (the probe images are shared).

use std::sync::Arc;

use super::ModelKind;
use crate::explore::coverage::Coverage;
use crate::explore::{PlainDecoder, PlainFlow};

/// The probe set: fixed test samples whose posteriors every snapshot reports.
#[derive(Clone, Debug, Default)]
pub struct Probe {
    /// Index of each probe sample in the test split.
    pub indices: Vec<usize>,
    /// Labels, one per sample.
    pub labels: Vec<u8>,
    /// Values, `width * height * channels` per sample (RGB interleaved in colour).
    pub pixels: Vec<u8>,
    /// Image width.
    pub width: usize,
    /// Image height.
    pub height: usize,
    /// Channels per pixel: 1 or 3 (0 reads as 1).
    pub channels: usize,
    /// Class names by label.
    pub class_names: Vec<String>,
    /// The dataset's known generative factors (empty for most datasets).
    pub factor_info: Vec<crate::data::Factor>,
    /// Each sample's factor values, `factor_info.len()` per sample.
    pub factors: Vec<f32>,
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
        let d = self.width * self.height * self.channels.max(1);
        &self.pixels[i * d..(i + 1) * d]
    }
}

/// What a family adds to the plane beyond the posteriors.
#[derive(Clone, Debug, Default)]
pub struct FamilyView {
    /// CVAE: class means, `[classes, latent]` row-major.
    pub class_means: Option<Vec<f32>>,
    /// BN-VAE: `gamma_mu` per dimension.
    pub gamma_mu: Option<Vec<f32>>,
    /// BN-VAE: `gamma_sigma` per dimension.
    pub gamma_sigma: Option<Vec<f32>>,
    /// f-VAE: the posterior centres E(x) in the pre-flow space, like `mu`.
    pub pre_flow: Option<Vec<f32>>,
    /// f-VAE: the flow F (also inside the decoder).
    pub flow: Option<Arc<PlainFlow>>,
    /// f-VAE: the trained `(sigma1, sigma2)`.
    pub sigmas: Option<(f32, f32)>,
    /// f-VAE: each probe posterior's outline in the prior's space over dims 0 and 1, the
    /// sigma1-circle around E(x) pushed through F: [`OUTLINE_POINTS`] points `[z0, z1]` per sample.
    pub outlines: Option<Arc<Vec<[f32; 2]>>>,
    /// ALI: fixed prior samples drawn beside the codes, `[probe, latent]` row-major.
    pub prior_points: Option<Vec<f32>>,
}

/// Points per warped posterior outline.
pub const OUTLINE_POINTS: usize = 16;

impl FamilyView {
    /// The BN-VAE's KL floor `(1/2) sum gamma_mu^2`.
    pub fn kl_floor(&self) -> Option<f32> {
        self.gamma_mu
            .as_ref()
            .map(|g| crate::model::family::kl_floor(g))
    }

    /// Number of CVAE classes.
    pub fn classes(&self, latent_dim: usize) -> usize {
        self.class_means
            .as_ref()
            .map_or(0, |m| m.len() / latent_dim.max(1))
    }

    /// The warped outline of probe sample `i`, when computed.
    pub fn outline(&self, i: usize) -> Option<&[[f32; 2]]> {
        self.outlines
            .as_ref()?
            .get(i * OUTLINE_POINTS..(i + 1) * OUTLINE_POINTS)
    }

    /// Mean of CVAE class `c`.
    pub fn class_mean(&self, c: usize, latent_dim: usize) -> Option<&[f32]> {
        let m = self.class_means.as_ref()?;
        m.get(c * latent_dim..(c + 1) * latent_dim)
    }
}

/// The model as seen at one step.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Which trainer made it: a number unique in this process, so views cached by step are
    /// rebuilt after a reset or a load (a new run reaches the same steps again).
    pub run: u64,
    /// The model family.
    pub family: ModelKind,
    /// Steps completed.
    pub step: u64,
    /// Epochs completed.
    pub epoch: usize,
    /// Latent dimension.
    pub latent_dim: usize,
    /// The probe set (shared between snapshots).
    pub probe: Arc<Probe>,
    /// Where each probe sample sits in the prior's space, `probe.len() * latent_dim`,
    /// row-major: the posterior mean, the AE's code, or the f-VAE's F(E(x)).
    pub mu: Vec<f32>,
    /// Posterior standard deviations, same layout (zero for codes; sigma1 for the f-VAE, in
    /// the pre-flow space).
    pub sigma: Vec<f32>,
    /// The decoder, to decode any latent point without the trainer.
    pub decoder: Arc<PlainDecoder>,
    /// What the family adds to the view.
    pub view: FamilyView,
    /// The aggregate posterior against the prior over dims 0 and 1, when computed.
    pub coverage: Option<Arc<Coverage>>,
}

impl Snapshot {
    /// A key for caching what is drawn from this snapshot: its run and step together.
    pub fn key(&self) -> u64 {
        (self.run << 40) | (self.step & ((1 << 40) - 1))
    }

    /// The prior's mode for sampling: the origin, or the CVAE's class mean.
    pub fn prior_mode(&self, class: Option<usize>) -> Vec<f32> {
        match class.and_then(|c| self.view.class_mean(c, self.latent_dim)) {
            Some(m) => m.to_vec(),
            None => vec![0.0; self.latent_dim],
        }
    }

    /// Posterior mean of probe sample `i`.
    pub fn mu_of(&self, i: usize) -> &[f32] {
        &self.mu[i * self.latent_dim..(i + 1) * self.latent_dim]
    }

    /// Posterior standard deviation of probe sample `i`.
    pub fn sigma_of(&self, i: usize) -> &[f32] {
        &self.sigma[i * self.latent_dim..(i + 1) * self.latent_dim]
    }
}

/// One probe image's importance draws: K draws z_k from its posterior with their log weights
/// `log p(x, z_k) - log q(z_k|x)`, the terms of the importance-weighted bound (computed by the
/// trainer with the model's own likelihood; the image as the test split has it).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImportanceDraws {
    /// The trainer that made them (as [`Snapshot::run`]).
    pub run: u64,
    /// Its step then.
    pub step: u64,
    /// The probe sample.
    pub probe: usize,
    /// The draws in the prior's space, `k * latent_dim` row-major.
    pub z: Vec<f32>,
    /// Their log weights, nats.
    pub log_w: Vec<f32>,
}

impl ImportanceDraws {
    /// Number of draws.
    pub fn k(&self) -> usize {
        self.log_w.len()
    }

    /// Each draw's share of the bound, `w_k / sum_j w_j` (summing to 1).
    pub fn normalised(&self) -> Vec<f32> {
        let max = self.log_w.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let w: Vec<f64> = self
            .log_w
            .iter()
            .map(|&l| ((l - max) as f64).exp())
            .collect();
        let sum: f64 = w.iter().sum();
        w.iter().map(|v| (v / sum) as f32).collect()
    }

    /// The K-sample bound on `log p(x)`: `log mean_k w_k`, nats.
    pub fn bound(&self) -> f32 {
        crate::model::losses::log_mean_exp(&self.log_w)
    }

    /// The ELBO estimated from the same draws: `mean_k log w_k`, nats.
    pub fn elbo(&self) -> f32 {
        (self.log_w.iter().map(|&l| l as f64).sum::<f64>() / self.k().max(1) as f64) as f32
    }

    /// Kish's effective sample size, `1 / sum_k wn_k^2`: K for equal weights, 1 when one draw
    /// carries the bound.
    pub fn effective_sample_size(&self) -> f32 {
        1.0 / self.normalised().iter().map(|w| w * w).sum::<f32>()
    }
}

#[cfg(test)]
mod tests {
    use super::ImportanceDraws;

    fn draws(log_w: Vec<f32>) -> ImportanceDraws {
        ImportanceDraws {
            log_w,
            ..Default::default()
        }
    }

    #[test]
    fn the_bound_and_the_weights_against_brute_force() {
        let log_w = vec![-101.0f32, -100.0, -103.5, -100.2];
        let d = draws(log_w.clone());
        let brute = (log_w.iter().map(|&l| (l as f64).exp()).sum::<f64>() / 4.0).ln();
        assert!(
            (d.bound() as f64 - brute).abs() < 1e-4,
            "{} {brute}",
            d.bound()
        );
        let elbo = log_w.iter().sum::<f32>() / 4.0;
        assert!((d.elbo() - elbo).abs() < 1e-4);
        assert!(d.bound() >= d.elbo());
        let w = d.normalised();
        assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((w[1] / w[0] - 1f32.exp()).abs() < 1e-4);
        // Far past exp's range (images of thousands of nats) the same holds.
        let far = draws(log_w.iter().map(|l| l - 5000.0).collect());
        assert!((far.bound() - (d.bound() - 5000.0)).abs() < 1e-2);
        assert_eq!(far.normalised().len(), 4);
        assert!(far.normalised().iter().all(|v| v.is_finite()));
    }

    #[test]
    fn effective_sample_size_runs_from_one_to_k() {
        assert!((draws(vec![-7.0; 8]).effective_sample_size() - 8.0).abs() < 1e-4);
        let one = draws(vec![0.0, -200.0, -200.0, -300.0]);
        assert!((one.effective_sample_size() - 1.0).abs() < 1e-4);
    }
}
