//! What the adversarial families share (seeds/004): a discriminator that outputs a logit (an
//! MLP, or strided convolutions into one dense layer),
//! and the losses, written on logits so that `-log D = -log sigmoid(l)` and
//! `-log (1 - D) = -log sigmoid(-l)` stay finite.

use burn::config::Config;
use burn::module::{Module, RunningState};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::activation::log_sigmoid;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::conv::{ConvDown, ConvPlan, ImageShape};
use crate::fused::Activation;

/// Shape of a [`Discriminator`].
#[derive(Config, Debug, PartialEq)]
pub struct DiscriminatorConfig {
    /// Input width.
    pub input: usize,
    /// Hidden widths (LeakyReLU 0.2 and dropout after each).
    #[config(default = "vec![512, 256]")]
    pub hidden: Vec<usize>,
    /// Dropout after each hidden layer while training: it keeps an MLP discriminator from
    /// overpowering the generator within the first epoch.
    #[config(default = 0.3)]
    pub dropout: f64,
    /// Give the output layer one more input: the spread of the last hidden features across
    /// the rows of the row's own group (real or generated), "minibatch standard deviation"
    /// (Karras et al. 2018). A collapsed generator's group has almost none, so the
    /// discriminator can see collapse and the generator is pushed to spread its samples.
    #[config(default = false)]
    pub minibatch_std: bool,
    /// Divide each dense layer's weights by their largest singular value, estimated by one
    /// step of power iteration per training pass (spectral normalisation, Miyato et al. 2018):
    /// each layer is then at most 1-Lipschitz, so the discriminator cannot grow so sure of
    /// itself that the generator's gradient vanishes.
    #[config(default = false)]
    pub spectral_norm: bool,
    /// Strided convolutions over the image columns (the first `shape.dim()` of each row) in
    /// front of the hidden layers; the remaining columns (ALI's code) join the features.
    #[config(default = "None")]
    pub conv: Option<ImageShape>,
}

impl DiscriminatorConfig {
    /// A freshly initialised discriminator.
    pub fn init(&self, device: &Device) -> Discriminator {
        let plan = self.conv.map(ConvPlan::new);
        let (first, hidden) = match &plan {
            None => (self.input, self.hidden.as_slice()),
            // The convolutions replace all but the last hidden layer.
            Some(plan) => (
                plan.encoded_features() + self.input.saturating_sub(plan.shape.dim()),
                self.hidden.last().map(std::slice::from_ref).unwrap_or(&[]),
            ),
        };
        let mut widths = vec![first];
        widths.extend(hidden);
        let last = *widths.last().unwrap_or(&first);
        let spectral = match self.spectral_norm {
            true => widths[1..]
                .iter()
                .chain([&1])
                .map(|&w| SpectralNorm::new(w, device))
                .collect(),
            false => Vec::new(),
        };
        Discriminator {
            spectral,
            conv: plan.map(|p| p.down(true, device)),
            layers: widths
                .windows(2)
                .map(|w| LinearConfig::new(w[0], w[1]).init(device))
                .collect(),
            output: LinearConfig::new(last + usize::from(self.minibatch_std), 1).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
            minibatch_std: self.minibatch_std,
        }
    }
}

/// An MLP that tells real from generated: `D(v) = sigmoid(logit(v))`.
#[derive(Module, Debug)]
pub struct Discriminator {
    /// Convolutions in front of the hidden layers (the convolutional architecture).
    pub conv: Option<ConvDown>,
    /// Hidden layers.
    pub layers: Vec<Linear>,
    /// The logit.
    pub output: Linear,
    /// Dropout after each hidden layer (training only).
    pub dropout: Dropout,
    /// Whether the output layer also sees the group's feature spread.
    #[module(skip)]
    pub minibatch_std: bool,
    /// Spectral normalisation of each dense layer, the output's last (empty without it).
    pub spectral: Vec<SpectralNorm>,
}

/// The power-iteration state of one spectrally normalised dense layer: `u`, the estimate of the
/// weight's leading right singular vector (burn's weights are `[in, out]`, so `u` has `out`
/// entries).
#[derive(Module, Debug)]
pub struct SpectralNorm {
    /// The leading singular vector's estimate, unit length.
    pub u: RunningState<Tensor<1>>,
}

impl SpectralNorm {
    /// Power iteration starts from the unit vector with equal entries.
    pub fn new(outputs: usize, device: &Device) -> Self {
        let start = Tensor::ones([outputs], device) / (outputs as f64).sqrt();
        Self {
            u: RunningState::new(start),
        }
    }

    /// `weight` `[in, out]` divided by its largest singular value as [`SpectralNorm::sigma`]
    /// estimates it (through the fused kernels on flex, one pass over the weights each way).
    pub fn normalise(&self, weight: Tensor<2>) -> Tensor<2> {
        let device = weight.device();
        let training = device.is_autodiff();
        let u = match training {
            true => self.u.value_sync(),
            false => self.u.value(),
        }
        .to_device(&device);
        match crate::fused::spectral_normalise(weight.clone(), u) {
            Some((scaled, u)) => {
                if training {
                    self.u.update(u.detach());
                }
                scaled
            }
            None => {
                let sigma = self.sigma(weight.clone());
                weight / sigma.unsqueeze()
            }
        }
    }

    /// The largest singular value of `weight` `[in, out]`, as `[1]`: `v^T W u` after one step
    /// of power iteration (`v = W u / |W u|`, `u = W^T v / |W^T v|`), with `u` and `v` held
    /// constant so that the gradient flows through `W` alone. The step is kept only while
    /// training (on an autodiff device); drawing uses the last estimate.
    pub fn sigma(&self, weight: Tensor<2>) -> Tensor<1> {
        let device = weight.device();
        let w = weight.clone().detach();
        let training = device.is_autodiff();
        let u = match training {
            true => self.u.value_sync(),
            false => self.u.value(),
        }
        .to_device(&device)
        .detach();
        let unit = |t: Tensor<2>| t.clone() / (t.square().sum().sqrt() + 1e-12).unsqueeze();
        let v = unit(w.clone().matmul(u.unsqueeze_dim(1)));
        let u = unit(w.transpose().matmul(v.clone()));
        if training {
            self.u.update(u.clone().squeeze_dim(1).detach());
        }
        // v^T W u: [1, in] x [in, out] x [out, 1].
        v.transpose().matmul(weight.matmul(u)).reshape([1])
    }
}

impl Discriminator {
    /// The logit of "real" per row.
    ///
    /// # Shapes
    ///   v `[batch, input]` -> `[batch]`
    pub fn logits(&self, v: Tensor<2>) -> Tensor<1> {
        self.grouped_logits(v, 1)
    }

    /// The logit of "real" per row, for a batch made of `groups` equal groups of rows (real
    /// rows, then generated ones) whose feature spreads are taken apart.
    ///
    /// # Shapes
    ///   v `[groups * n, input]` -> `[groups * n]`
    pub fn grouped_logits(&self, v: Tensor<2>, groups: usize) -> Tensor<1> {
        let v = match &self.conv {
            Some(conv) => conv.forward(v),
            None => v,
        };
        // With spectral normalisation each layer runs with the weights `W / sigma`, through
        // the fused dense kernel. (Scaling the input instead, `(x / sigma) W`, is the same
        // product, but it makes the input a function of the weights: the first layer then
        // needs its input's gradient, a product as large as the layer itself.)
        let mut h = self.layers.iter().enumerate().fold(v, |h, (i, l)| {
            let (weight, bias) = normalised(self.spectral.get(i), l);
            let act = Activation::LeakyRelu(0.2);
            crate::fused::dense_with(weight, bias, h, act, Some(&self.dropout))
        });
        if self.minibatch_std {
            h = with_group_spread(h, groups);
        }
        let (weight, bias) = normalised(self.spectral.get(self.layers.len()), &self.output);
        crate::fused::dense_with(weight, bias, h, Activation::Identity, None).squeeze_dim(1)
    }
}

/// `layer`'s weights and bias, the weights divided by their largest singular value when `sn`
/// estimates it.
fn normalised(sn: Option<&SpectralNorm>, layer: &Linear) -> (Tensor<2>, Option<Tensor<1>>) {
    let weight = layer.weight.val();
    let bias = layer.bias.as_ref().map(|b| b.val());
    match sn {
        Some(sn) => (sn.normalise(weight), bias),
        None => (weight, bias),
    }
}

/// `h` with one more column: the mean over features of each feature's standard deviation
/// across the rows of the row's group (`groups` equal groups of consecutive rows; one group
/// when the rows do not divide evenly).
///
/// # Shapes
///   h `[rows, width]` -> `[rows, width + 1]`
pub fn with_group_spread(h: Tensor<2>, groups: usize) -> Tensor<2> {
    let [rows, width] = h.dims();
    let groups = if groups > 0 && rows.is_multiple_of(groups) {
        groups
    } else {
        1
    };
    let per = rows / groups;
    let spread = h
        .clone()
        .reshape([groups, per, width])
        .var_bias(1)
        .add_scalar(1e-8)
        .sqrt()
        .mean_dim(2)
        .expand([groups, per, 1])
        .reshape([rows, 1]);
    Tensor::cat(vec![h, spread], 1)
}

/// `-log D` per row, from logits.
pub fn neg_log_d(logits: Tensor<1>) -> Tensor<1> {
    log_sigmoid(logits).neg()
}

/// `-log (1 - D)` per row, from logits.
pub fn neg_log_one_minus_d(logits: Tensor<1>) -> Tensor<1> {
    log_sigmoid(logits.neg()).neg()
}

/// The discriminator's loss `E[-log D(real)] + E[-log (1 - D(fake))]`.
pub fn discriminator_loss(real: Tensor<1>, fake: Tensor<1>) -> Tensor<1> {
    neg_log_d(real).mean() + neg_log_one_minus_d(fake).mean()
}

/// The generator's adversarial loss `E[-log D(G(z))]`.
pub fn generator_loss(fake: Tensor<1>) -> Tensor<1> {
    neg_log_d(fake).mean()
}

/// The seed's regulariser before its weight: the per-pixel mean squared distance between the
/// generator's output and the old generator's output for the same z, `mean |G(z) - G_old(z)|^2`.
///
/// # Shapes
///   g, g_old `[batch, pixels]` -> `[1]`
pub fn old_generator_penalty(g: Tensor<2>, g_old: Tensor<2>) -> Tensor<1> {
    (g - g_old).square().mean()
}

/// Share of rows the discriminator calls real (logit above 0).
pub fn share_called_real(logits: Tensor<1>) -> Tensor<1> {
    logits.greater_elem(0.0).float().mean()
}

/// The encoder/generator loss of ALI.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AliLoss {
    /// The seed's derived loss `-E log D(x, E(x)) - E log D(G(z), z)`. Here its encoder
    /// term pulls codes wherever D calls pairs real, and the codes run away within a few
    /// hundred steps.
    Derived,
    /// The standard minimax form `E log D(x, E(x)) + E log (1 - D(G(z), z))` (the default:
    /// it trains stably here).
    #[default]
    Minimax,
    /// The non-saturating form ALI and BiGAN are trained with in practice: the
    /// discriminator's labels swapped, `-E log D(G(z), z) - E log (1 - D(x, E(x)))`, whose
    /// gradients do not vanish when the discriminator wins.
    NonSaturating,
}

impl AliLoss {
    /// The loss from the discriminator's logits on encoder pairs `(x, E(x))` and generator
    /// pairs `(G(z), z)`.
    pub fn loss(self, encoder_pairs: Tensor<1>, generator_pairs: Tensor<1>) -> Tensor<1> {
        match self {
            AliLoss::Derived => neg_log_d(encoder_pairs).mean() + neg_log_d(generator_pairs).mean(),
            AliLoss::Minimax => {
                neg_log_d(encoder_pairs).mean().neg() - neg_log_one_minus_d(generator_pairs).mean()
            }
            AliLoss::NonSaturating => {
                neg_log_d(generator_pairs).mean() + neg_log_one_minus_d(encoder_pairs).mean()
            }
        }
    }

    /// A short label for menus.
    pub fn label(self) -> &'static str {
        match self {
            AliLoss::Derived => "derived",
            AliLoss::Minimax => "minimax",
            AliLoss::NonSaturating => "non-saturating",
        }
    }

    /// The loss as a formula, for hover text.
    pub fn formula(self) -> &'static str {
        match self {
            AliLoss::Derived => "-log D(x,E(x)) - log D(G(z),z) (the seed's derived loss)",
            AliLoss::Minimax => "log D(x,E(x)) + log(1 - D(G(z),z)) (the standard minimax form)",
            AliLoss::NonSaturating => {
                "-log D(G(z),z) - log(1 - D(x,E(x))) (labels swapped: the non-saturating form)"
            }
        }
    }
}

/// The terms of a generator phase's step, each of one element.
pub struct GeneratorTerms {
    /// The adversarial term.
    pub adversarial: Tensor<1>,
    /// The family's second value: the GAN's regulariser, the AAE's and ALI's reconstruction.
    pub extra: Tensor<1>,
    /// What the step minimises.
    pub loss: Tensor<1>,
}

/// What the adversarial step asks of a family with a discriminator; each implements it in
/// its own file.
pub trait Adversarial {
    /// The discriminator's logits on `n` real rows followed by `n` generated ones, from images
    /// `x` and prior draws `z` (one batch: one product per layer instead of two). Generated
    /// rows are detached: only the discriminator learns from these.
    fn real_and_fake_logits(&self, x: Tensor<2>, z: Tensor<2>) -> Tensor<1>;

    /// The generator (and encoder) phase's terms at images `x` and prior draws `z`. `old` is
    /// the model at the phase's start (the GAN's G_old), `None` on the phase's first step,
    /// where it is the model itself; `lambda` the weight of the second term, `form` ALI's loss
    /// form.
    fn generator_terms(
        &self,
        x: Tensor<2>,
        z: Tensor<2>,
        old: Option<&dyn Adversarial>,
        lambda: f32,
        form: AliLoss,
    ) -> GeneratorTerms;

    /// Generated images in `[0, 1]` from prior draws.
    ///
    /// # Shapes
    ///   z `[batch, latent]` -> `[batch, pixels]`
    fn generated(&self, z: Tensor<2>) -> Tensor<2>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_spread_is_each_groups_mean_feature_deviation() {
        let device = Device::flex();
        // Group one: two equal rows (no spread); group two: features 0/2 and 0/4 (population
        // deviations 1 and 2, mean 1.5).
        let h = crate::data::batch::to_tensor(
            vec![1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 2.0, 4.0],
            4,
            2,
            &device,
        );
        let out = crate::data::batch::to_vec(with_group_spread(h.clone(), 2));
        let spread: Vec<f32> = out.chunks(3).map(|r| r[2]).collect();
        assert!(spread[0] < 1e-3 && spread[1] < 1e-3, "{spread:?}");
        assert!((spread[2] - 1.5).abs() < 1e-4 && (spread[3] - 1.5).abs() < 1e-4);
        assert_eq!(&out[..2], &[1.0, 1.0], "the features pass through");
        // As one group: rows 1,1,0,2 and 1,1,0,4 have deviations sqrt(0.5) and sqrt(2.25).
        let one = crate::data::batch::to_vec(with_group_spread(h.clone(), 1));
        let want = (0.5f32.sqrt() + 1.5) / 2.0;
        assert!((one[2] - want).abs() < 1e-4, "{one:?} vs {want}");
        // Rows that do not split evenly are taken as one group.
        assert_eq!(crate::data::batch::to_vec(with_group_spread(h, 3)), one);
    }
    use crate::data::batch::to_vec;

    fn t1(v: &[f32]) -> Tensor<1> {
        Tensor::from_floats(v, &Device::flex())
    }

    fn close(a: f32, b: f64) {
        assert!((a as f64 - b).abs() < 1e-5, "{a} vs {b}");
    }

    fn sig(l: f64) -> f64 {
        1.0 / (1.0 + (-l).exp())
    }

    #[test]
    fn spectral_normalisation_finds_the_largest_singular_value_and_its_gradient() {
        let device = Device::flex().autodiff();
        // W = U diag(3, 1) V^T ([in 3, out 2]): U's columns are orthonormal, V turns by 30
        // degrees. sigma_max = 3 with left vector U e1 and right vector V e1, and
        // d sigma_max / dW = (U e1)(V e1)^T.
        let s2 = 0.5f32.sqrt();
        let u = [[s2, 0.0], [s2, 0.0], [0.0, 1.0]];
        let (c, s) = (30f32.to_radians().cos(), 30f32.to_radians().sin());
        let v = [[c, -s], [s, c]];
        let sv = [3.0f32, 1.0];
        let mut w = vec![0.0f32; 6];
        for i in 0..3 {
            for j in 0..2 {
                w[i * 2 + j] = (0..2).map(|k| u[i][k] * sv[k] * v[j][k]).sum();
            }
        }
        let weight = crate::data::batch::to_tensor(w, 3, 2, &device).require_grad();
        let sn = SpectralNorm::new(2, &device);
        let mut sigma = Tensor::zeros([1], &device);
        for _ in 0..40 {
            sigma = sn.sigma(weight.clone());
        }
        close(to_vec(sigma.clone())[0], 3.0);
        let grads = sigma.backward();
        let g = to_vec(weight.grad(&grads).expect("a gradient"));
        for i in 0..3 {
            for j in 0..2 {
                let want = (u[i][0] * v[j][0]) as f64;
                assert!((g[i * 2 + j] as f64 - want).abs() < 1e-4, "{g:?}");
            }
        }
        // Drawing (no autodiff) reads the estimate without stepping it.
        let plain = crate::data::batch::to_tensor(
            vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            3,
            2,
            &Device::flex(),
        );
        let before = to_vec(sn.u.value());
        let _ = sn.sigma(plain);
        assert_eq!(to_vec(sn.u.value()), before);
    }

    #[test]
    fn a_spectrally_normalised_discriminator_has_one_estimate_per_dense_layer() {
        let device = Device::flex().autodiff();
        device.seed(1);
        let plain = DiscriminatorConfig::new(10).with_hidden(vec![6, 4]);
        assert!(plain.init(&device).spectral.is_empty());
        let disc = plain.with_spectral_norm(true).init(&device);
        assert_eq!(disc.spectral.len(), 3, "two hidden layers and the output");
        let x = Tensor::<2>::ones([5, 10], &device);
        for _ in 0..60 {
            let _ = disc.logits(x.clone());
        }
        // Each layer's estimate against its largest singular value by brute force (power
        // iteration on W^T W, 500 steps).
        let layers = disc.layers.iter().chain([&disc.output]);
        for (layer, sn) in layers.zip(&disc.spectral) {
            let [rows, cols] = layer.weight.dims();
            let w = to_vec(layer.weight.val());
            let mut u = vec![1.0f64; cols];
            let mut sigma = 0.0;
            for _ in 0..500 {
                let v: Vec<f64> = (0..rows)
                    .map(|r| (0..cols).map(|c| w[r * cols + c] as f64 * u[c]).sum())
                    .collect();
                let next: Vec<f64> = (0..cols)
                    .map(|c| (0..rows).map(|r| w[r * cols + c] as f64 * v[r]).sum())
                    .collect();
                let norm = next.iter().map(|x| x * x).sum::<f64>().sqrt();
                sigma = norm.sqrt();
                u = next.iter().map(|x| x / norm).collect();
            }
            let got = to_vec(sn.sigma(layer.weight.val().inner()))[0] as f64;
            assert!((got - sigma).abs() < 1e-3 * sigma, "{got} vs {sigma}");
        }
    }

    #[test]
    fn losses_match_hand_computed_values() {
        let ln2 = 2f64.ln();
        // D = 1/2 everywhere: each term is ln 2.
        close(
            to_vec(discriminator_loss(t1(&[0.0]), t1(&[0.0])))[0],
            2.0 * ln2,
        );
        close(to_vec(generator_loss(t1(&[0.0, 0.0])))[0], ln2);
        // Logits 2 (real) and -1, 3 (fake).
        let expected = -sig(2.0).ln() + 0.5 * (-(1.0 - sig(-1.0)).ln() - (1.0 - sig(3.0)).ln());
        close(
            to_vec(discriminator_loss(t1(&[2.0]), t1(&[-1.0, 3.0])))[0],
            expected,
        );
        close(
            to_vec(generator_loss(t1(&[-1.0, 3.0])))[0],
            0.5 * (-sig(-1.0).ln() - sig(3.0).ln()),
        );
        // Huge logits stay finite.
        let big = to_vec(discriminator_loss(t1(&[-200.0]), t1(&[200.0])))[0];
        assert!(big.is_finite() && (big - 400.0).abs() < 1e-2, "{big}");
        // The penalty is the per-pixel mean squared distance.
        let device = Device::flex();
        let g = crate::data::batch::to_tensor(vec![1.0, 0.0, 0.5, 0.5], 2, 2, &device);
        let old = crate::data::batch::to_tensor(vec![0.0, 0.0, 0.5, 1.5], 2, 2, &device);
        close(
            to_vec(old_generator_penalty(g, old))[0],
            (1.0 + 0.0 + 0.0 + 1.0) / 4.0,
        );
        close(
            to_vec(share_called_real(t1(&[1.0, -1.0, 0.5, -3.0])))[0],
            0.5,
        );
    }

    #[test]
    fn both_ali_forms_match_hand_computed_values() {
        let (e, g) = (0.5f64, -0.25f64);
        let derived = -sig(e).ln() - sig(g).ln();
        let minimax = sig(e).ln() + (1.0 - sig(g)).ln();
        close(
            to_vec(AliLoss::Derived.loss(t1(&[0.5]), t1(&[-0.25])))[0],
            derived,
        );
        close(
            to_vec(AliLoss::Minimax.loss(t1(&[0.5]), t1(&[-0.25])))[0],
            minimax,
        );
    }

    #[test]
    fn the_ali_forms_match_their_closed_forms() {
        let device = burn::tensor::Device::flex();
        // Logits a on encoder pairs and b on generator pairs; D = sigmoid.
        let (a, b) = ([0.5f32, -1.0], [2.0f32, 0.25]);
        let t = |v: [f32; 2]| Tensor::<1>::from_floats(v, &device);
        let d = |x: f32| 1.0 / (1.0 + (-x).exp());
        let mean = |f: &dyn Fn(f32) -> f32, v: [f32; 2]| (f(v[0]) + f(v[1])) / 2.0;
        let log_d = |x: f32| d(x).ln();
        let log_1md = |x: f32| (1.0 - d(x)).ln();
        let expected = [
            (AliLoss::Derived, -mean(&log_d, a) - mean(&log_d, b)),
            (AliLoss::Minimax, mean(&log_d, a) + mean(&log_1md, b)),
            (AliLoss::NonSaturating, -mean(&log_d, b) - mean(&log_1md, a)),
        ];
        for (form, want) in expected {
            let got = crate::data::batch::to_vec(form.loss(t(a), t(b)))[0];
            assert!((got - want).abs() < 1e-5, "{form:?}: {got} vs {want}");
        }
    }
}
