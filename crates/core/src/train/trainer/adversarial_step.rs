//! The adversarial families' step: discriminator steps, then a generator (and encoder) phase.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

use super::{CODE_RUNAWAY, TrainError, Trainer};
use crate::data::batch::{to_tensor, to_vec};
use crate::model::adversarial;
use crate::train::{ModelKind, StepMetrics};

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

impl Trainer {
    /// One iteration of an adversarial family on the next batch: `d_steps` discriminator
    /// steps, then a generator phase of `g_steps` steps (fresh prior draws each step, the same
    /// images). Only the discriminator's parameters move in the first, only the generator's
    /// (and encoder's) in the second. Values are read back once, at the end.
    pub(super) fn adversarial_step(&mut self) -> Result<StepMetrics, TrainError> {
        let stats = self.adversarial_launch()?;
        self.adversarial_settle(&to_vec(stats))
    }

    /// An adversarial step's updates, and its statistics still on the device (read them and
    /// hand them to [`Self::adversarial_settle`]).
    pub(super) fn adversarial_launch(&mut self) -> Result<Tensor<1>, TrainError> {
        // The discriminator's dropout draws from the device's shared random stream.
        let _rng = crate::backend::device_rng_lock(&self.device);
        let adv = self.config.adversarial.clone();
        let (indices, x) = self.next_batch();
        let (n, d) = (indices.len(), self.config.latent_dim);
        let mut readback = Vec::new();
        for _ in 0..adv.d_steps {
            let z = to_tensor(self.rng.normals(n * d), n, d, &self.device);
            // Real and generated rows go through the discriminator as one batch: one product
            // per layer instead of two.
            let family = self
                .model
                .adversarial()
                .ok_or_else(|| no_discriminator(self.config.model))?;
            let (real, fake) = split_rows(family.real_and_fake_logits(x.clone(), z), n);
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
        // until the optimiser replaces them). Untracked: only its outputs are used, detached.
        let old_model = self.model.clone().no_grad();
        let old = old_model
            .adversarial()
            .ok_or_else(|| no_discriminator(self.config.model))?;
        let mut g_terms = (Vec::new(), Vec::new(), Vec::new());
        for g_step in 0..adv.g_steps {
            let z = to_tensor(self.rng.normals(n * d), n, d, &self.device);
            // The discriminator does not step in this phase: no gradients for it.
            let frozen = self.model.clone().with_frozen_discriminator();
            let terms = frozen
                .adversarial()
                .ok_or_else(|| no_discriminator(self.config.model))?
                .generator_terms(
                    x.clone(),
                    z,
                    (g_step > 0).then_some(old),
                    adv.lambda,
                    adv.ali_loss,
                );
            let (adversarial, extra, loss) = (terms.adversarial, terms.extra, terms.loss);
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
        Ok(Tensor::cat(readback, 0))
    }

    /// The step launched by [`Self::adversarial_launch`], once its statistics are read: checks
    /// them (rolling back a diverged or non-finite step), counts the step and says what it did.
    pub(super) fn adversarial_settle(&mut self, stats: &[f32]) -> Result<StepMetrics, TrainError> {
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
            return Err(TrainError::Config(format!(
                "an adversarial step read back {} values instead of eight",
                stats.len()
            )));
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
        let (epoch, epoch_progress) = self.advance(true);
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
}
