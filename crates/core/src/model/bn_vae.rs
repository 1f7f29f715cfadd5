//! BN-VAE (seeds/001): batch normalisation without affine parameters on the mu head and on the
//! sigma head, then fixed scales
//! `gamma_mu = sqrt(tau + (1 - tau) sigmoid(theta))`, `gamma_sigma = sqrt((1 - tau) sigmoid(-theta))`
//! with theta trained per latent dimension. The sigma head's output is the standard deviation
//! itself (`z = mu + sigma * eps`; its sign does not matter). Because the batch second moment of
//! mu is `gamma_mu^2`, the batch KL is at least `(1/2) sum_i gamma_mu,i^2 >= d tau / 2`: it can
//! never vanish. Batch statistics at training time, running statistics at evaluation.

use burn::module::{Module, Param, RunningState};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor};

use super::losses;
use super::nets::Decoder;
use super::{Likelihood, Vae, VaeForward};

/// Batch-norm epsilon, as in the article's code.
pub const BN_EPSILON: f64 = 1e-8;
/// Added to sigma^2 inside the log of the KL, so a sigma of exactly 0 stays finite.
pub const SIGMA_FLOOR: f32 = 1e-8;

/// Batch normalisation without scale or shift, with running statistics for evaluation.
#[derive(Module, Debug)]
pub struct PlainBatchNorm {
    /// Running mean per feature.
    pub running_mean: RunningState<Tensor<1>>,
    /// Running (biased) variance per feature.
    pub running_var: RunningState<Tensor<1>>,
    /// Weight of the newest batch in the running statistics.
    pub momentum: f64,
}

impl PlainBatchNorm {
    /// Zero mean and unit variance to start with.
    pub fn new(features: usize, device: &Device) -> Self {
        Self {
            running_mean: RunningState::new(Tensor::zeros([features], device)),
            running_var: RunningState::new(Tensor::ones([features], device)),
            momentum: 0.1,
        }
    }

    /// Normalises with the batch's statistics on a training (autodiff) device, updating the
    /// running ones; with the running statistics otherwise.
    ///
    /// # Shapes
    ///   x `[batch, features]` -> `[batch, features]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let device = x.device();
        if device.is_autodiff() {
            let mean = x.clone().mean_dim(0);
            let centred = x - mean.clone();
            let var = centred.clone().square().mean_dim(0);
            let m = self.momentum;
            let blend = |old: Tensor<1>, new: Tensor<2>| {
                (old.to_device(&device) * (1.0 - m) + new.detach().squeeze_dim(0) * m).detach()
            };
            self.running_mean
                .update(blend(self.running_mean.value_sync(), mean));
            self.running_var
                .update(blend(self.running_var.value_sync(), var.clone()));
            centred / (var + BN_EPSILON).sqrt()
        } else {
            let mean = self
                .running_mean
                .value()
                .to_device(&device)
                .unsqueeze_dim(0);
            let var = self.running_var.value().to_device(&device).unsqueeze_dim(0);
            (x - mean) / (var + BN_EPSILON).sqrt()
        }
    }
}

/// The BN-VAE's weights.
#[derive(Module, Debug)]
pub struct BnVae {
    /// Encoder, the mu head, the sigma head (the VAE's `logvar` layer) and the decoder.
    pub base: Vae,
    /// theta, one per latent dimension.
    pub theta: Param<Tensor<1>>,
    /// Normalisation of the mu head.
    pub mu_norm: PlainBatchNorm,
    /// Normalisation of the sigma head.
    pub sigma_norm: PlainBatchNorm,
    /// tau in (0, 1): the least share of the unit variance given to mu.
    pub tau: f32,
}

impl BnVae {
    /// A BN-VAE around `base` with theta = 0.
    pub fn new(base: Vae, latent_dim: usize, tau: f32, device: &Device) -> Self {
        Self {
            base,
            theta: Param::from_tensor(Tensor::zeros([latent_dim], device)),
            mu_norm: PlainBatchNorm::new(latent_dim, device),
            sigma_norm: PlainBatchNorm::new(latent_dim, device),
            tau,
        }
    }

    /// `(gamma_mu, gamma_sigma)` per latent dimension.
    pub fn gammas(&self) -> (Tensor<1>, Tensor<1>) {
        let theta = self.theta.val();
        let tau = self.tau;
        let mu = (sigmoid(theta.clone()) * (1.0 - tau) + tau).sqrt();
        let sigma = (sigmoid(theta.neg()) * (1.0 - tau)).sqrt();
        (mu, sigma)
    }

    /// Posterior mean and standard deviation (the sigma head's signed output).
    ///
    /// # Shapes
    ///   x `[batch, pixels]` -> (mu, sigma) `[batch, latent]`
    pub fn encode(&self, x: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let (mu_raw, sigma_raw) = self.base.encode(x);
        let (g_mu, g_sigma) = self.gammas();
        (
            self.mu_norm.forward(mu_raw) * g_mu.unsqueeze_dim(0),
            self.sigma_norm.forward(sigma_raw) * g_sigma.unsqueeze_dim(0),
        )
    }

    /// The log-variance the KL and the likelihood estimate use: `log(sigma^2 + SIGMA_FLOOR)`.
    pub fn logvar(sigma: Tensor<2>) -> Tensor<2> {
        (sigma.square() + SIGMA_FLOOR).log()
    }

    /// One pass with `z = mu + sigma * eps`.
    ///
    /// # Shapes
    ///   x `[batch, pixels]`, eps `[batch, latent]`
    pub fn forward(&self, x: Tensor<2>, eps: Tensor<2>, likelihood: Likelihood) -> VaeForward {
        let (mu, sigma) = self.encode(x.clone());
        let z = mu.clone() + sigma.clone() * eps;
        let logvar = Self::logvar(sigma);
        VaeForward {
            reconstruction: likelihood.nll(self.base.decode(z), x),
            kl_per_dim: losses::kl_standard_normal(mu.clone(), logvar.clone()),
            mu,
            logvar,
        }
    }
}

impl super::Family for BnVae {
    fn decoder(&self) -> &Decoder {
        &self.base.decoder
    }

    fn terms(
        &self,
        x: Tensor<2>,
        _onehot: Option<Tensor<2>>,
        eps: Tensor<2>,
        likelihood: Likelihood,
    ) -> Option<super::Terms> {
        Some(super::family::vae_terms(self.forward(x, eps, likelihood)))
    }

    fn posteriors(&self, x: Tensor<2>) -> Option<super::Posteriors> {
        let (mu, sigma) = self.encode(x);
        Some(super::Posteriors {
            position: mu,
            sigma: sigma.abs(),
            pre_flow: None,
        })
    }

    fn log_weights(
        &self,
        x: Tensor<2>,
        _onehot: Option<Tensor<2>>,
        eps: Tensor<2>,
        likelihood: Likelihood,
    ) -> Option<Tensor<1>> {
        let (mu, sigma) = self.encode(x.clone());
        Some(super::family::gaussian_log_weights(
            &self.base.decoder,
            x,
            eps,
            likelihood,
            (mu, BnVae::logvar(sigma)),
            None,
        ))
    }

    fn bn_gammas(&self) -> Option<(Vec<f32>, Vec<f32>)> {
        let (mu, sigma) = self.gammas();
        Some((
            crate::data::batch::to_vec(mu),
            crate::data::batch::to_vec(sigma),
        ))
    }

    fn extra_values(&self, _likelihood: Likelihood) -> Vec<(&'static str, Tensor<1>)> {
        let (gamma_mu, _) = self.gammas();
        vec![("kl_floor", (gamma_mu.square().sum() * 0.5).detach())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::batch::{to_tensor, to_vec};
    use crate::model::VaeConfig;
    use crate::model::family::kl_floor;
    use crate::rng::Rng;

    #[test]
    fn the_batch_kl_never_falls_below_the_floor() {
        let device = Device::flex().autodiff();
        device.seed(11);
        let mut rng = Rng::new(11);
        for (tau, d, batch) in [(0.5, 2, 64), (0.2, 8, 16), (0.9, 3, 5)] {
            let base = VaeConfig::new(20)
                .with_hidden(vec![16])
                .with_latent_dim(d)
                .init(&device);
            let mut model = BnVae::new(base, d, tau, &device);
            // A trained-looking theta, not just the initial zeros.
            let theta: Vec<f32> = rng.normals(d).iter().map(|v| 2.0 * v).collect();
            model.theta = Param::from_tensor(Tensor::from_floats(theta.as_slice(), &device));
            for _ in 0..5 {
                // Inputs on very different scales, so the heads' raw outputs vary widely.
                let scale = 0.01 + 10.0 * rng.uniform();
                let x: Vec<f32> = rng.normals(batch * 20).iter().map(|v| v * scale).collect();
                let x = to_tensor(x, batch, 20, &device);
                let eps = to_tensor(rng.normals(batch * d), batch, d, &device);
                let out = model.forward(x, eps, Likelihood::Bernoulli);
                let kl = to_vec(out.kl_per_dim.sum_dim(1).mean())[0];
                let gamma_mu = to_vec(model.gammas().0);
                let floor = kl_floor(&gamma_mu);
                // The batch second moment of mu is gamma_mu^2 var / (var + eps): 1e-8 below.
                assert!(
                    kl >= floor - 1e-4,
                    "tau {tau}, d {d}: KL {kl} below the floor {floor}"
                );
                assert!(floor >= d as f32 * tau / 2.0 - 1e-6, "floor {floor}");
                let second_moment: Vec<f32> = to_vec(out.mu.square().mean_dim(0));
                for (m, g) in second_moment.iter().zip(&gamma_mu) {
                    assert!(
                        (m - g * g).abs() < 1e-3,
                        "batch E[mu^2] {m} vs gamma^2 {}",
                        g * g
                    );
                }
            }
        }
    }

    #[test]
    fn evaluation_uses_the_running_statistics() {
        let device = Device::flex().autodiff();
        let norm = PlainBatchNorm::new(2, &device);
        let x = to_tensor(vec![1.0, 10.0, 3.0, 30.0], 2, 2, &device);
        let trained = to_vec(norm.forward(x.clone()));
        // Batch statistics: each column becomes (-1, 1).
        for (v, e) in trained.iter().zip([-1.0, -1.0, 1.0, 1.0]) {
            assert!((v - e).abs() < 1e-4, "{trained:?}");
        }
        // Running mean moved 10% of the way to (2, 20), variance to 0.9 + 0.1 * (1, 100).
        let eval = norm.valid();
        let inner = Device::flex();
        let y = to_vec(eval.forward(to_tensor(vec![1.2, 5.3], 1, 2, &inner)));
        let expected = [(1.2 - 0.2) / 1.0f32.sqrt(), (5.3 - 2.0) / 10.9f32.sqrt()];
        for (v, e) in y.iter().zip(expected) {
            assert!((v - e).abs() < 1e-4, "{y:?}");
        }
    }
}
