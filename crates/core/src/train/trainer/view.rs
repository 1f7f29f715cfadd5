//! What the trainer publishes for the explorer: a [`Snapshot`] of the probe set's posteriors
//! with plain copies of the decoder and the flow, so drawing never waits for training.

use std::sync::Arc;

use burn::nn::BatchNorm;
use burn::tensor::Tensor;

use super::Trainer;
use crate::data::Dataset;
use crate::data::batch::{to_tensor, to_vec};
use crate::explore::coverage::{self, Coverage};
use crate::explore::{
    Dense, PlainConvT, PlainCoupling, PlainDecoder, PlainFlow, PlainGroupNorm, PlainUp,
};
use crate::model::Model;
use crate::model::conv::ConvUp;
use crate::model::flow::Flow;
use crate::rng::Rng;
use crate::train::snapshot::{FamilyView, ImportanceDraws, OUTLINE_POINTS, Probe, Snapshot};

impl Trainer {
    /// The probe set's posteriors, a plain copy of the decoder, what the family draws, and
    /// (with `with_coverage`) the aggregate posterior against the prior.
    pub fn snapshot(&self, with_coverage: bool) -> Snapshot {
        let (model, device) = self.inference();
        let probe = &self.probe;
        let (dim, d) = (self.data.dim(), self.config.latent_dim);
        let x: Vec<f32> = probe.pixels.iter().map(|&p| p as f32 / 255.0).collect();
        let post = model.posteriors(to_tensor(x, probe.len(), dim, &device));
        let pre_flow = post.as_ref().and_then(|p| p.pre_flow.clone());
        let outlines = match (&pre_flow, model.flow()) {
            (Some(centre), Some(flow)) => {
                let sigma1 = model.f_sigmas().map_or(1.0, |s| s.0);
                Some(Arc::new(warped_outlines(flow, centre.clone(), sigma1)))
            }
            _ => None,
        };
        let (mu, sigma) = match post {
            Some(p) => (to_vec(p.position), to_vec(p.sigma)),
            // No encoder: the plane shows fixed prior samples in the probe's place.
            None => (self.prior_probe.clone(), vec![0.0; self.prior_probe.len()]),
        };
        let draws = self.config.model.draws();
        let flow = model.flow().map(|f| Arc::new(plain_flow(f)));
        let (gamma_mu, gamma_sigma) = model.bn_gammas().unzip();
        let view = FamilyView {
            class_means: model.class_means(),
            gamma_mu,
            gamma_sigma,
            pre_flow: pre_flow.map(to_vec),
            flow: flow.clone(),
            sigmas: model.f_sigmas(),
            outlines,
            prior_points: draws.prior_samples.then(|| self.prior_probe.clone()),
        };
        let coverage = (with_coverage && draws.encoder)
            .then(|| Arc::new(probe_coverage(&mu, &sigma, d, &view)));
        let mut decoder = plain_decoder(&model, self.data.train.width, self.data.train.height);
        decoder.flow = flow.map(|f| (*f).clone());
        Snapshot {
            run: self.run,
            family: self.config.model,
            step: self.step,
            epoch: self.epoch,
            latent_dim: d,
            probe: probe.clone(),
            mu,
            sigma,
            decoder: Arc::new(decoder),
            view,
            coverage,
        }
    }
}

impl Trainer {
    /// Probe sample `probe`'s importance draws: `k` draws from its posterior, placed in the
    /// prior's space, with their log weights under the model's own likelihood, on the image
    /// as the test split has it (the fixed binarisation under `binarize`). The noise is seeded
    /// by the run and the sample, so the same draws are watched as the model learns. `None`
    /// for a family without importance weights or a probe index out of range.
    pub fn importance_draws(&self, probe: usize, k: usize) -> Option<ImportanceDraws> {
        let index = *self.probe.indices.get(probe)?;
        if !self.config.model.has_importance_weights() || k == 0 {
            return None;
        }
        let (model, device) = self.inference();
        let (dim, d) = (self.data.dim(), self.config.latent_dim);
        let pixels = super::evaluation::fixed_pixels(
            &self.data.test,
            &[index],
            self.config.binarize,
            super::TEST_BINARIZE_SEED,
        );
        let eps = Rng::new(
            self.config.seed ^ 0xD2A3_5EED ^ (probe as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        )
        .normals(k * d);
        let x = to_tensor(pixels, 1, dim, &device);
        let onehot = self.config.model.needs_labels().then(|| {
            let label = self.data.test.labels[index];
            super::one_hot(std::iter::repeat_n(label, k), self.classes, &device)
        });
        let log_w = model.log_weights(
            x.clone().repeat_dim(0, k),
            onehot,
            to_tensor(eps.clone(), k, d, &device),
            self.config.likelihood,
        )?;
        // Where the draws sit: the reparameterisation the weights were computed with,
        // centre + sigma eps (before the flow for the f-VAE, then through it).
        let post = model.posteriors(x)?;
        let sigma = to_vec(post.sigma);
        let centre = to_vec(post.pre_flow.unwrap_or(post.position));
        let mut z: Vec<f32> = eps
            .chunks_exact(d)
            .flat_map(|e| {
                e.iter()
                    .zip(centre.iter().zip(&sigma))
                    .map(|(e, (c, s))| c + s * e)
                    .collect::<Vec<f32>>()
            })
            .collect();
        if let Some(flow) = model.flow() {
            let flow = plain_flow(flow);
            z = z.chunks_exact(d).flat_map(|w| flow.forward(w).0).collect();
        }
        Some(ImportanceDraws {
            run: self.run,
            step: self.step,
            probe,
            z,
            log_w: to_vec(log_w),
        })
    }
}

/// Folds batch normalisation with running statistics into the dense layer before it:
/// `gamma (x W + b - mean) / sqrt(var + eps) + beta` is `x W' + b'` with each output column
/// scaled by `gamma / sqrt(var + eps)`.
fn fold_norm(layer: &mut Dense, norm: &BatchNorm) {
    let gamma = to_vec(norm.gamma.val());
    let beta = to_vec(norm.beta.val());
    let mean = to_vec(norm.running_mean.value_sync());
    let var = to_vec(norm.running_var.value_sync());
    let scale: Vec<f32> = gamma
        .iter()
        .zip(&var)
        .map(|(g, v)| g / (v + norm.epsilon as f32).sqrt())
        .collect();
    for row in layer.weights.chunks_exact_mut(layer.outputs) {
        for (w, s) in row.iter_mut().zip(&scale) {
            *w *= s;
        }
    }
    for (o, b) in layer.bias.iter_mut().enumerate() {
        *b = (*b - mean[o]) * scale[o] + beta[o];
    }
}

/// Copies the decoder's weights into plain data (without the f-VAE's flow).
pub fn plain_decoder(model: &Model, width: usize, height: usize) -> PlainDecoder {
    let decoder = model.decoder();
    let mut layers: Vec<Dense> = decoder.layers.iter().map(Dense::of).collect();
    for (layer, norm) in layers.iter_mut().zip(&decoder.norms) {
        fold_norm(layer, norm);
    }
    layers.push(Dense::of(&decoder.output));
    PlainDecoder {
        layers,
        flow: None,
        width,
        height,
        up: model.decoder().up.as_ref().map(plain_up),
        colour: decoder.colour.as_ref().map(Dense::of),
        tanh: decoder.act == crate::fused::Activation::Tanh,
    }
}

/// Copies a decoder's transposed convolutions and group norms into plain data.
pub fn plain_up(up: &ConvUp) -> PlainUp {
    let stages = up
        .convs
        .iter()
        .map(|conv| {
            let [inputs, outputs] = conv.channels;
            let bias = conv
                .bias
                .as_ref()
                .map_or(vec![0.0; outputs], |b| to_vec(b.val()));
            PlainConvT::from_burn(inputs, outputs, &to_vec(conv.weight.val()), bias)
        })
        .collect();
    let norms = up
        .norms
        .iter()
        .map(|n| {
            let ones = vec![1.0; n.num_channels];
            PlainGroupNorm {
                groups: n.num_groups,
                gamma: n.gamma.as_ref().map_or(ones, |g| to_vec(g.val())),
                beta: n
                    .beta
                    .as_ref()
                    .map_or(vec![0.0; n.num_channels], |b| to_vec(b.val())),
                epsilon: n.epsilon as f32,
            }
        })
        .collect();
    PlainUp {
        stages,
        norms,
        base: up.base,
        shape: up.shape,
    }
}

/// Copies a flow's weights into plain data.
pub fn plain_flow(flow: &Flow) -> PlainFlow {
    PlainFlow {
        layers: flow
            .layers
            .iter()
            .map(|c| PlainCoupling {
                net: c.net.iter().map(Dense::of).collect(),
                log_scale: Dense::of(&c.log_scale),
                shift: Dense::of(&c.shift),
                flip: c.flip,
            })
            .collect(),
    }
}

/// The aggregate posterior of the probe set over dims 0 and 1 against the family's prior (the
/// CVAE's mixture of class Gaussians, `N(0, I)` otherwise): exact through the flow for a 2-D
/// f-VAE, a mixture of the marginal Gaussians otherwise.
pub fn probe_coverage(mu: &[f32], sigma: &[f32], d: usize, view: &FamilyView) -> Coverage {
    let axes = (0, 1.min(d - 1));
    match (&view.pre_flow, &view.flow, view.sigmas) {
        (Some(centres), Some(flow), Some((sigma1, _))) if d == 2 => {
            coverage::flow_mixture(centres, sigma1, flow)
        }
        // Above two dimensions the flow mixes every dimension into dims 0 and 1: sample it.
        (Some(centres), Some(flow), Some((sigma1, _))) => {
            let per_centre = (20_000 / (centres.len() / d).max(1)).clamp(4, 64);
            coverage::flow_sampled(centres, d, sigma1, flow, per_centre, 0xF10)
        }
        _ => {
            let prior = match &view.class_means {
                Some(means) => coverage::Prior::class_mixture(means, d, axes),
                None => coverage::Prior::Standard,
            };
            coverage::gaussian_mixture(mu, sigma, d, axes, &prior)
        }
    }
}

/// Every centre's sigma1-circle in dims 0 and 1 pushed through the flow, in one batch.
fn warped_outlines(flow: &Flow, centre: Tensor<2>, sigma1: f32) -> Vec<[f32; 2]> {
    let [n, d] = centre.dims();
    let k = OUTLINE_POINTS;
    let mut offsets = vec![0.0f32; k * d];
    for j in 0..k {
        let a = j as f32 / k as f32 * std::f32::consts::TAU;
        offsets[j * d] = sigma1 * a.cos();
        offsets[j * d + 1] = sigma1 * a.sin();
    }
    let device = centre.device();
    let offsets = to_tensor(offsets, k, d, &device);
    // Row i * k + j: centre i plus offset j.
    let points = centre
        .unsqueeze_dim::<3>(1)
        .repeat_dim(1, k)
        .reshape([n * k, d])
        + offsets.repeat_dim(0, n);
    let z = to_vec(flow.forward(points).0);
    z.chunks_exact(d).map(|p| [p[0], p[1]]).collect()
}

/// A seeded choice of `size` test samples (all of them if fewer).
pub(super) fn make_probe(data: &Dataset, size: usize, seed: u64) -> Probe {
    let mut order: Vec<usize> = (0..data.test.len()).collect();
    Rng::new(seed ^ 0x9B0B).shuffle(&mut order);
    order.truncate(size.min(order.len()));
    let set = data.test.select(&order);
    Probe {
        indices: order,
        labels: set.labels,
        pixels: set.pixels,
        width: set.width,
        height: set.height,
        channels: set.channels,
        class_names: data.class_names.clone(),
        factor_info: data.factor_info.clone(),
        factors: set.factors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::adversarial::DiscriminatorConfig;
    use crate::model::{Gan, VaeConfig};
    use burn::module::Module;
    use burn::tensor::Device;

    #[test]
    fn the_plain_copy_folds_the_generators_batch_norm_into_its_layers() {
        let device = Device::flex().autodiff();
        device.seed(4);
        let config = VaeConfig::new(12).with_hidden(vec![8, 6]);
        let gan = Gan {
            generator: config.normalised_generator(&device),
            disc: DiscriminatorConfig::new(12)
                .with_hidden(vec![4])
                .init(&device),
        };
        assert_eq!(gan.generator.norms.len(), 2);
        // Training passes move the running statistics away from (0, 1).
        let mut rng = Rng::new(5);
        for _ in 0..5 {
            let z = to_tensor(rng.normals(32 * 2), 32, 2, &device);
            let _ = gan.generate(z.mul_scalar(3.0).add_scalar(1.0));
        }
        let model = Model::Gan(gan).valid();
        let plain = plain_decoder(&model, 4, 3);
        let Model::Gan(gan) = &model else {
            unreachable!()
        };
        let mean = to_vec(gan.generator.norms[0].running_mean.value());
        assert!(mean.iter().any(|m| m.abs() > 0.05), "{mean:?}");
        let z = [0.7f32, -1.3];
        let expected = to_vec(gan.generate(to_tensor(z.to_vec(), 1, 2, &model_device(&model))));
        let got = plain.decode(&z);
        let worst = got
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "differs by {worst}");
    }

    fn model_device(model: &Model) -> Device {
        model.decoder().output.weight.val().device()
    }
}
