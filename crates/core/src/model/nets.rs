//! The MLPs around the latent space, as separate modules so that a family holds only what it
//! uses: a [`GaussianEncoder`] (mean and log-variance heads) for the VAE family, a
//! [`PointEncoder`] (one code per image) for the AE, the f-VAE's centre E(x), the AAE and ALI,
//! and a [`Decoder`] (the GAN's generator) for all of them. ReLU after every hidden layer (tanh
//! where the config asks: Burda et al.'s networks), held by each net as a setting. With
//! the convolutional architecture ([`super::conv`]) a stack of strided convolutions sits in front
//! of an encoder's dense layers and a stack of transposed ones after a decoder's.

use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use super::conv::{ConvDown, ConvPlan, ConvUp, ImageShape};
use crate::fused::{Activation, linear};

/// Encoder with two heads: the posterior mean and log-variance.
#[derive(Module, Debug)]
pub struct GaussianEncoder {
    /// Convolutions in front of the hidden layers (the convolutional architecture).
    pub conv: Option<ConvDown>,
    /// Hidden layers.
    pub layers: Vec<Linear>,
    /// Head giving the posterior mean.
    pub mu: Linear,
    /// Head giving the posterior log-variance.
    pub logvar: Linear,
    /// The hidden layers' activation (a setting, not saved with the weights).
    #[module(skip)]
    pub act: Activation,
}

impl GaussianEncoder {
    /// Posterior parameters.
    ///
    /// # Shapes
    ///   x `[batch, pixels]` -> (mu, logvar) `[batch, latent]`
    pub fn forward(&self, x: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let h = hidden(&self.layers, down(&self.conv, x), self.act);
        (
            linear(&self.mu, h.clone(), Activation::Identity),
            linear(&self.logvar, h, Activation::Identity),
        )
    }
}

/// Deterministic encoder: one code per image.
#[derive(Module, Debug)]
pub struct PointEncoder {
    /// Convolutions in front of the hidden layers (the convolutional architecture).
    pub conv: Option<ConvDown>,
    /// Hidden layers.
    pub layers: Vec<Linear>,
    /// Head giving the code.
    pub code: Linear,
    /// The hidden layers' activation (a setting, not saved with the weights).
    #[module(skip)]
    pub act: Activation,
}

impl PointEncoder {
    /// The code of each image.
    ///
    /// # Shapes
    ///   x `[batch, pixels]` -> `[batch, latent]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        linear(
            &self.code,
            hidden(&self.layers, down(&self.conv, x), self.act),
            Activation::Identity,
        )
    }

    /// The code (what [`Encoder::mean`] is for a Gaussian encoder).
    pub fn mean(&self, x: Tensor<2>) -> Tensor<2> {
        self.forward(x)
    }

    /// Codes as posteriors: points.
    pub fn posteriors(&self, x: Tensor<2>) -> super::Posteriors {
        super::Posteriors::of_codes(self.forward(x))
    }
}

/// An encoder of either kind, for a family that offers both (ALI).
#[derive(Module, Debug)]
pub enum Encoder {
    /// One code per image.
    Point(PointEncoder),
    /// A Gaussian posterior per image.
    Gaussian(GaussianEncoder),
}

impl Encoder {
    /// The code, or the posterior mean.
    ///
    /// # Shapes
    ///   x `[batch, pixels]` -> `[batch, latent]`
    pub fn mean(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Encoder::Point(e) => e.forward(x),
            Encoder::Gaussian(e) => e.forward(x).0,
        }
    }

    /// A draw from the posterior, `mu + sigma * eps` with fresh standard normal `eps` from the
    /// device's stream (the code itself for a point encoder).
    pub fn sample(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Encoder::Point(e) => e.forward(x),
            Encoder::Gaussian(e) => {
                let (mu, logvar) = e.forward(x);
                let eps = mu.random_like(burn::tensor::Distribution::Normal(0.0, 1.0));
                mu + (logvar * 0.5).exp() * eps
            }
        }
    }

    /// The posterior's position and standard deviation (zero for codes).
    pub fn posteriors(&self, x: Tensor<2>) -> super::Posteriors {
        match self {
            Encoder::Point(e) => e.posteriors(x),
            Encoder::Gaussian(e) => {
                let (mu, logvar) = e.forward(x);
                super::Posteriors {
                    position: mu,
                    sigma: (logvar * 0.5).exp(),
                    pre_flow: None,
                }
            }
        }
    }
}

/// Decoder (or generator): latent points to per-pixel logits.
#[derive(Module, Debug)]
pub struct Decoder {
    /// Hidden layers.
    pub layers: Vec<Linear>,
    /// Batch normalisation between each hidden layer and its ReLU (a GAN generator's option;
    /// empty otherwise): batch statistics while training, running ones when drawing.
    pub norms: Vec<BatchNorm>,
    /// Output layer: logits per pixel, or with `up` the first feature map (through ReLU).
    pub output: Linear,
    /// Transposed convolutions after the output layer (the convolutional architecture).
    pub up: Option<ConvUp>,
    /// The colour offset: from the last hidden layer, one logit per image channel added to
    /// every pixel of the transposed convolutions' output (colour images; `None` otherwise).
    /// A colour that belongs to the whole image then reaches every pixel through one dense
    /// layer; without it the convolutional decoder draws every shape of `shapes` in the
    /// mean grey (see docs/command-line.md, "Colour that shows").
    pub colour: Option<Linear>,
    /// The hidden layers' activation (a setting, not saved with the weights).
    #[module(skip)]
    pub act: Activation,
}

impl Decoder {
    /// Logits.
    ///
    /// # Shapes
    ///   z `[batch, latent]` -> `[batch, pixels]`
    pub fn forward(&self, z: Tensor<2>) -> Tensor<2> {
        self.forward_with(z, Activation::Identity)
    }

    /// The decoder with `act` applied to its output: `Activation::Sigmoid` gives the mean
    /// image in one fused pass.
    pub fn forward_with(&self, z: Tensor<2>, act: Activation) -> Tensor<2> {
        let h = match self.norms.is_empty() {
            true => hidden(&self.layers, z, self.act),
            false => self
                .layers
                .iter()
                .zip(&self.norms)
                .fold(z, |h, (layer, norm)| {
                    let y = linear(layer, h, Activation::Identity);
                    crate::fused::batch_norm(norm, y, self.act)
                }),
        };
        match &self.up {
            None => linear(&self.output, h, act),
            Some(up) => {
                let offset = self
                    .colour
                    .as_ref()
                    .map(|c| linear(c, h.clone(), Activation::Identity));
                let mut logits = up.forward(linear(&self.output, h, Activation::Relu));
                if let Some(offset) = offset {
                    let [batch, channels] = offset.dims();
                    let pixels = logits.dims()[1] / channels.max(1);
                    logits = (logits.reshape([batch, pixels, channels]) + offset.unsqueeze_dim(1))
                        .reshape([batch, pixels * channels]);
                }
                act.apply(logits)
            }
        }
    }

    /// Dimension of the latent space it decodes.
    pub fn latent_dim(&self) -> usize {
        let first = self.layers.first().unwrap_or(&self.output);
        first.weight.dims()[0]
    }
}

fn down(conv: &Option<ConvDown>, x: Tensor<2>) -> Tensor<2> {
    match conv {
        Some(conv) => conv.forward(x),
        None => x,
    }
}

fn hidden(layers: &[Linear], x: Tensor<2>, act: Activation) -> Tensor<2> {
    layers.iter().fold(x, |h, layer| linear(layer, h, act))
}

/// The layers of a model's networks for images of `input_dim` pixels, hidden widths `hidden`
/// (the decoder mirrors them) and a `latent_dim`-dimensional latent space, initialised in one
/// order (encoder layers, decoder layers, `heads` encoder heads, the output layer) so a seed
/// gives the same weights to every family that shares a layer. PyTorch's default
/// initialisation: U(-k, k), k = 1/sqrt(fan_in); or with `glorot`, Glorot and Bengio's
/// U(-a, a), a = sqrt(6 / (fan_in + fan_out)), and zero biases.
///
/// With `conv` (the convolutional architecture for images of that shape) the encoder starts
/// with the plan's strided convolutions and keeps one dense layer of the last hidden width; the
/// decoder mirrors that and ends in the transposed convolutions, with the colour offset for
/// colour images when `colour_offset` is set.
pub(super) struct Nets {
    /// The encoder's convolutions.
    pub conv: Option<ConvDown>,
    /// The encoder's hidden layers.
    pub encoder: Vec<Linear>,
    /// The encoder's heads, each from the last hidden width to the latent dimension.
    pub heads: Vec<Linear>,
    /// The decoder.
    pub decoder: Decoder,
    /// The hidden layers' activation.
    pub act: Activation,
}

#[allow(clippy::too_many_arguments)] // each a setting of the networks, all read here once
pub(super) fn layers(
    input_dim: usize,
    hidden: &[usize],
    latent_dim: usize,
    heads: usize,
    conv: Option<ImageShape>,
    colour_offset: bool,
    decoder_norms: bool,
    tanh: bool,
    glorot: bool,
    device: &Device,
) -> Nets {
    let act = match tanh {
        true => Activation::Tanh,
        false => Activation::Relu,
    };
    let layer = |a: usize, b: usize| match glorot {
        // Glorot and Bengio's uniform draw for the weights, zero biases (Burda et al.).
        true => {
            let weights = LinearConfig::new(a, b)
                .with_bias(false)
                .with_initializer(burn::nn::Initializer::XavierUniform { gain: 1.0 })
                .init(device);
            Linear {
                bias: Some(burn::module::Param::from_tensor(Tensor::zeros([b], device))),
                ..weights
            }
        }
        false => LinearConfig::new(a, b).init(device),
    };
    let plan = conv.map(ConvPlan::new);
    let conv_hidden: Vec<usize>;
    let (features, hidden, image_out) = match &plan {
        None => (input_dim, hidden, input_dim),
        Some(plan) => {
            conv_hidden = hidden.last().map(|&w| vec![w]).unwrap_or_default();
            (
                plan.encoded_features(),
                conv_hidden.as_slice(),
                plan.base_features(),
            )
        }
    };
    let encoder_conv = match heads {
        0 => None,
        _ => plan.as_ref().map(|p| p.down(false, device)),
    };
    let mut widths = vec![features];
    widths.extend(hidden);
    let last = *widths.last().unwrap_or(&features);
    let encoder = match heads {
        0 => Vec::new(),
        _ => widths.windows(2).map(|w| layer(w[0], w[1])).collect(),
    };
    let mut back = vec![latent_dim];
    back.extend(hidden.iter().rev());
    let decoder_layers = back.windows(2).map(|w| layer(w[0], w[1])).collect();
    let decoder_last = *back.last().unwrap_or(&latent_dim);
    let heads = (0..heads).map(|_| layer(last, latent_dim)).collect();
    let norms = match decoder_norms {
        true => back[1..]
            .iter()
            .map(|&w| BatchNormConfig::new(w).init(device))
            .collect(),
        false => Vec::new(),
    };
    let output = layer(decoder_last, image_out);
    let up = plan.as_ref().map(|p| p.up(device));
    // Drawn last, so the other layers keep the weights a seed gives them without it.
    let colour = plan
        .as_ref()
        .filter(|p| colour_offset && p.shape.channels > 1)
        .map(|p| layer(decoder_last, p.shape.channels));
    let decoder = Decoder {
        layers: decoder_layers,
        norms,
        output,
        up,
        colour,
        act,
    };
    Nets {
        conv: encoder_conv,
        encoder,
        heads,
        decoder,
        act,
    }
}
