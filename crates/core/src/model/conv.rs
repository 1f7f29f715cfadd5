//! The convolutional networks around the latent space (DCGAN-style, Radford et al. 2016):
//! stride-2 convolutions that halve the image ([`ConvDown`], in front of an encoder's or a
//! discriminator's dense layers) and stride-2 transposed convolutions that double it
//! ([`ConvUp`], after a decoder's dense layers). Every kernel is 4 x 4 with padding 1. The
//! hidden stages are group-normalised (per image, so training and evaluation compute the same
//! thing and a plain copy decodes exactly); the image-facing stages are not.
//!
//! Images travel through the program as rows of interleaved pixels (`[batch, h * w * c]`);
//! the stacks reshape to burn's `[batch, c, h, w]` and back, so every loss, likelihood and view
//! stays as it is. Sides that do not halve evenly are handled by cropping the decoder's output.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, PaddingConfig2d};
use burn::tensor::activation::{leaky_relu, relu};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::fused::{self, ConvGeom};

/// Every stage's kernel side, stride and padding.
const KERNEL: usize = 4;
const STRIDE: usize = 2;
const PAD: usize = 1;

/// The networks around the latent space.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// Dense layers only (the widths of `--hidden`).
    #[default]
    Mlp,
    /// Strided convolutions in the encoder and discriminator (DCGAN-style, group norm), into
    /// one dense layer of the last `--hidden` width; transposed ones in the decoder.
    Conv,
}

impl Arch {
    /// Every architecture, for menus.
    pub const ALL: [Arch; 2] = [Arch::Mlp, Arch::Conv];

    /// The name on the command line and in menus.
    pub fn label(self) -> &'static str {
        match self {
            Arch::Mlp => "mlp",
            Arch::Conv => "conv",
        }
    }

    /// What it is, in a line, for `--help`.
    pub fn help(self) -> &'static str {
        match self {
            Arch::Mlp => "Dense layers only (the widths of `--hidden`)",
            Arch::Conv => {
                "Strided convolutions in the encoder and discriminator (DCGAN-style, group norm), into one dense layer of the last `--hidden` width; transposed ones in the decoder"
            }
        }
    }

    /// What it is, for hover text.
    pub fn describe(self) -> &'static str {
        match self {
            Arch::Mlp => "dense layers (the widths in Hidden)",
            Arch::Conv => {
                "strided 4x4 convolutions (32, 64, 128 channels, group norm) into one dense layer of the last hidden width; the decoder mirrors them with transposed convolutions"
            }
        }
    }
}

/// The shape of the images a model is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageShape {
    /// Channels per pixel (1 grey, 3 RGB).
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
}

impl ImageShape {
    /// A shape.
    pub fn new(channels: usize, height: usize, width: usize) -> Self {
        Self {
            channels: channels.max(1),
            height,
            width,
        }
    }

    /// Values per image.
    pub fn dim(&self) -> usize {
        self.channels * self.height * self.width
    }
}

/// The smallest side a convolutional model takes.
pub const MIN_SIDE: usize = 4;

/// The stages of a convolutional model for one image shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvPlan {
    /// The images.
    pub shape: ImageShape,
    /// Channels after each stride-2 stage, image side first: 32, 64 (and 128 above 32 pixels).
    pub channels: Vec<usize>,
}

impl ConvPlan {
    /// The plan for `shape`: one stage below 16 pixels, two up to 32, three above.
    pub fn new(shape: ImageShape) -> Self {
        let side = shape.height.min(shape.width);
        let stages = match side {
            0..16 => 1,
            16..=32 => 2,
            _ => 3,
        };
        Self {
            shape,
            channels: (0..stages).map(|i| 32 << i).collect(),
        }
    }

    /// Number of stride-2 stages.
    pub fn stages(&self) -> usize {
        self.channels.len()
    }

    /// `(height, width)` after the encoder's stages (each maps a side `n` to `floor(n / 2)`).
    pub fn encoded(&self) -> (usize, usize) {
        let halve = |n: usize| (0..self.stages()).fold(n, |n, _| n / 2);
        (halve(self.shape.height), halve(self.shape.width))
    }

    /// Features the encoder's stages hand to its dense layers.
    pub fn encoded_features(&self) -> usize {
        let (h, w) = self.encoded();
        self.channels.last().copied().unwrap_or(0) * h * w
    }

    /// `(channels, height, width)` of the decoder's first feature map: each side rounded up so
    /// that doubling it `stages` times covers the image (the excess is cropped).
    pub fn base(&self) -> (usize, usize, usize) {
        let scale = 1 << self.stages();
        (
            self.channels.last().copied().unwrap_or(0),
            self.shape.height.div_ceil(scale),
            self.shape.width.div_ceil(scale),
        )
    }

    /// Values in the decoder's first feature map.
    pub fn base_features(&self) -> usize {
        let (c, h, w) = self.base();
        c * h * w
    }

    /// The encoder's stages (also a discriminator's, with `leaky`).
    pub fn down(&self, leaky: bool, device: &Device) -> ConvDown {
        let mut inputs = self.shape.channels;
        let mut convs = Vec::new();
        let mut norms = Vec::new();
        for (i, &c) in self.channels.iter().enumerate() {
            convs.push(
                Conv2dConfig::new([inputs, c], [KERNEL, KERNEL])
                    .with_stride([STRIDE, STRIDE])
                    .with_padding(PaddingConfig2d::Explicit(PAD, PAD, PAD, PAD))
                    .init(device),
            );
            // The first stage sees the image: no normalisation there (as in DCGAN).
            if i > 0 {
                norms.push(group_norm(c, device));
            }
            inputs = c;
        }
        ConvDown {
            convs,
            norms,
            shape: [self.shape.channels, self.shape.height, self.shape.width],
            leaky,
        }
    }

    /// The decoder's stages, from the first feature map back to the image.
    pub fn up(&self, device: &Device) -> ConvUp {
        let mut channels: Vec<usize> = self.channels.iter().rev().copied().collect();
        channels.push(self.shape.channels);
        let convs = channels
            .windows(2)
            .map(|w| {
                ConvTranspose2dConfig::new([w[0], w[1]], [KERNEL, KERNEL])
                    .with_stride([STRIDE, STRIDE])
                    .with_padding([PAD, PAD])
                    .init(device)
            })
            .collect();
        let norms = channels[1..channels.len() - 1]
            .iter()
            .map(|&c| group_norm(c, device))
            .collect();
        let (c0, h0, w0) = self.base();
        ConvUp {
            convs,
            norms,
            base: [c0, h0, w0],
            shape: [self.shape.channels, self.shape.height, self.shape.width],
        }
    }
}

/// Groups of a hidden stage's group norm.
pub const GROUPS: usize = 8;

fn group_norm(channels: usize, device: &Device) -> GroupNorm {
    GroupNormConfig::new(GROUPS.min(channels), channels)
        .with_epsilon(1e-5)
        .init(device)
}

/// Stride-2 convolutions from an image to a feature map, flattened.
#[derive(Module, Debug)]
pub struct ConvDown {
    /// One convolution per stage.
    pub convs: Vec<Conv2d>,
    /// The group norms of the stages after the first.
    pub norms: Vec<GroupNorm>,
    /// `[channels, height, width]` of the images.
    #[module(skip)]
    pub shape: [usize; 3],
    /// LeakyReLU 0.2 between stages (a discriminator) rather than ReLU.
    #[module(skip)]
    pub leaky: bool,
}

impl ConvDown {
    /// The rows' images through the stages, flattened; columns after the image's (the ALI
    /// discriminator's latent code) pass through unchanged after the features.
    ///
    /// # Shapes
    ///   x `[batch, pixels + extra]` -> `[batch, features + extra]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [c, h, w] = self.shape;
        let [batch, columns] = x.dims();
        let pixels = c * h * w;
        let (image, extra) = if columns > pixels {
            (
                x.clone().slice([0..batch, 0..pixels]),
                Some(x.slice([0..batch, pixels..columns])),
            )
        } else {
            (x, None)
        };
        let features = if self.fusable(&image) {
            self.forward_fused(image)
        } else {
            self.forward_composed(image)
        };
        match extra {
            Some(extra) => Tensor::cat(vec![features, extra], 1),
            None => features,
        }
    }

    fn fusable(&self, x: &Tensor<2>) -> bool {
        fused::conv_fusable(x)
            && self.convs.iter().all(|c| c.bias.is_some())
            && self
                .norms
                .iter()
                .all(|n| n.gamma.is_some() && n.beta.is_some())
    }

    fn slope(&self) -> f32 {
        if self.leaky { 0.2 } else { 0.0 }
    }

    /// The stages on channels-last images through the fused kernels; the features leave in
    /// the composed path's order (channel, row, column).
    fn forward_fused(&self, image: Tensor<2>) -> Tensor<2> {
        let [mut h, mut w, mut c] = [self.shape[1], self.shape[2], self.shape[0]];
        let batch = image.dims()[0];
        let mut f = image;
        for (i, conv) in self.convs.iter().enumerate() {
            let out = conv.weight.dims()[0];
            let geom = ConvGeom {
                big: [h, w, c],
                small: [down_side(h), down_side(w), out],
                kernel: [KERNEL, KERNEL],
                stride: STRIDE,
                pad: PAD,
            };
            f = if i == 0 {
                fused::conv2d(conv, f, geom, self.slope())
            } else {
                let f = fused::conv2d(conv, f, geom, 1.0);
                fused::group_norm(&self.norms[i - 1], f, self.slope())
            };
            [h, w, c] = geom.small;
        }
        f.reshape([batch, h * w, c])
            .swap_dims(1, 2)
            .reshape([batch, c * h * w])
    }

    fn forward_composed(&self, image: Tensor<2>) -> Tensor<2> {
        let [c, h, w] = self.shape;
        let batch = image.dims()[0];
        let mut f = image.reshape([batch, h, w, c]).permute([0, 3, 1, 2]);
        for (i, conv) in self.convs.iter().enumerate() {
            f = conv.forward(f);
            if i > 0 {
                f = self.norms[i - 1].forward(f);
            }
            f = match self.leaky {
                true => leaky_relu(f, 0.2),
                false => relu(f),
            };
        }
        f.flatten(1, 3)
    }
}

/// A side after one stage of [`ConvUp`]: `(n - 1) stride + kernel - 2 pad`.
fn up_side(n: usize) -> usize {
    ((n.max(1) - 1) * STRIDE + KERNEL).saturating_sub(2 * PAD)
}

/// A side after one stage of [`ConvDown`]: `(n + 2 pad - kernel) / stride + 1`.
fn down_side(n: usize) -> usize {
    (n + 2 * PAD).saturating_sub(KERNEL) / STRIDE + 1
}

/// Stride-2 transposed convolutions from a feature map to an image of logits.
#[derive(Module, Debug)]
pub struct ConvUp {
    /// One transposed convolution per stage; the last gives the image's channels.
    pub convs: Vec<ConvTranspose2d>,
    /// The group norms after every stage but the last.
    pub norms: Vec<GroupNorm>,
    /// `[channels, height, width]` of the first feature map.
    #[module(skip)]
    pub base: [usize; 3],
    /// `[channels, height, width]` of the images.
    #[module(skip)]
    pub shape: [usize; 3],
}

impl ConvUp {
    /// Logits per pixel value from the first feature map, flattened (already through ReLU).
    ///
    /// # Shapes
    ///   h `[batch, base features]` -> `[batch, pixels]`
    pub fn forward(&self, h: Tensor<2>) -> Tensor<2> {
        let fusable = fused::conv_fusable(&h)
            && self.convs.iter().all(|c| c.bias.is_some())
            && self
                .norms
                .iter()
                .all(|n| n.gamma.is_some() && n.beta.is_some());
        if fusable {
            self.forward_fused(h)
        } else {
            self.forward_composed(h)
        }
    }

    /// The stages on channels-last images through the fused kernels (the first feature map
    /// arrives in the composed path's order: channel, row, column); the last is cropped as
    /// it is computed.
    fn forward_fused(&self, h: Tensor<2>) -> Tensor<2> {
        let batch = h.dims()[0];
        let [c0, h0, w0] = self.base;
        let [c, height, width] = self.shape;
        let last = self.convs.len() - 1;
        let mut f = h
            .reshape([batch, c0, h0 * w0])
            .swap_dims(1, 2)
            .reshape([batch, h0 * w0 * c0]);
        let mut small = [h0, w0, c0];
        for (i, conv) in self.convs.iter().enumerate() {
            let out = conv.weight.dims()[1];
            let big = if i == last {
                [height, width, c]
            } else {
                [up_side(small[0]), up_side(small[1]), out]
            };
            let geom = ConvGeom {
                big,
                small,
                kernel: [KERNEL, KERNEL],
                stride: STRIDE,
                pad: PAD,
            };
            f = fused::conv_transpose2d(conv, f, geom);
            if i < last {
                f = fused::group_norm(&self.norms[i], f, 0.0);
            }
            small = big;
        }
        f
    }

    fn forward_composed(&self, h: Tensor<2>) -> Tensor<2> {
        let batch = h.dims()[0];
        let [c0, h0, w0] = self.base;
        let [c, height, width] = self.shape;
        let last = self.convs.len() - 1;
        let mut f = h.reshape([batch, c0, h0, w0]);
        for (i, conv) in self.convs.iter().enumerate() {
            f = conv.forward(f);
            if i < last {
                f = relu(self.norms[i].forward(f));
            }
        }
        let [_, _, fh, fw] = f.dims();
        if fh != height || fw != width {
            f = f.slice([0..batch, 0..c, 0..height, 0..width]);
        }
        f.permute([0, 2, 3, 1]).reshape([batch, c * height * width])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_halve_to_a_small_map_and_cover_odd_sides() {
        let mnist = ConvPlan::new(ImageShape::new(1, 28, 28));
        assert_eq!(mnist.channels, vec![32, 64]);
        assert_eq!(mnist.encoded(), (7, 7));
        assert_eq!(mnist.base(), (64, 7, 7));
        let big = ConvPlan::new(ImageShape::new(3, 64, 48));
        assert_eq!(big.channels, vec![32, 64, 128]);
        assert_eq!(big.encoded(), (8, 6));
        let odd = ConvPlan::new(ImageShape::new(3, 27, 13));
        assert_eq!(odd.stages(), 1);
        assert_eq!(odd.encoded(), (13, 6));
        // 14 x 7 doubled once is 28 x 14, cropped to 27 x 13.
        assert_eq!(odd.base(), (32, 14, 7));
    }

    /// Values in a fixed pseudo-random pattern in [-1, 1].
    fn pattern(n: usize, salt: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919 + salt * 104_729) % 2003) as f32 / 1001.5 - 1.0)
            .collect()
    }

    fn tensor(v: Vec<f32>, shape: [usize; 2], device: &Device) -> Tensor<2> {
        Tensor::from_data(burn::tensor::TensorData::new(v, shape), device)
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        crate::data::batch::to_vec(t)
    }

    fn worst(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "sizes differ");
        let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs() / scale)
            .fold(0.0, f32::max)
    }

    /// The fused stacks against burn's composition on flex: the output, the input's gradient
    /// and every parameter's gradient, for 1 and 3 channels, odd sides (cropped decoders) and
    /// one to three stages, a discriminator's leaky stages among them.
    #[test]
    fn fused_stacks_match_burns_composition_in_value_and_every_gradient() {
        let device = Device::flex().autodiff();
        let cases = [
            (ImageShape::new(1, 28, 28), false),
            (ImageShape::new(3, 32, 32), true),
            (ImageShape::new(3, 27, 13), false),
            (ImageShape::new(1, 40, 36), true),
            (ImageShape::new(3, 5, 7), false),
        ];
        for (case, (shape, leaky)) in cases.into_iter().enumerate() {
            let plan = ConvPlan::new(shape);
            let down = plan.down(leaky, &device);
            let up = plan.up(&device);
            // Randomise the norms' affine maps so gamma and beta matter.
            let down = randomise_norms(down, &device);
            let batch = 3;
            let x = tensor(
                pattern(batch * shape.dim(), case),
                [batch, shape.dim()],
                &device,
            )
            .require_grad();
            let h = tensor(
                pattern(batch * plan.base_features(), case + 7),
                [batch, plan.base_features()],
                &device,
            )
            .require_grad();
            let wf = tensor(
                pattern(batch * plan.encoded_features(), case + 3),
                [batch, plan.encoded_features()],
                &device,
            );
            let wi = tensor(
                pattern(batch * shape.dim(), case + 5),
                [batch, shape.dim()],
                &device,
            );
            let run = |fused_on: bool| {
                let levers = if fused_on {
                    crate::fused::levers()
                } else {
                    crate::fused::Levers::NONE
                };
                crate::fused::with_levers(levers, || {
                    let f = down.forward(x.clone());
                    let y = up.forward(h.clone());
                    let loss = (f.clone() * wf.clone()).sum() + (y.clone() * wi.clone()).sum();
                    let grads = loss.backward();
                    let mut out = vec![values(f), values(y)];
                    out.push(values(x.grad(&grads).expect("x grad")));
                    out.push(values(h.grad(&grads).expect("h grad")));
                    for conv in &down.convs {
                        out.push(values(conv.weight.grad(&grads).expect("weight grad")));
                        out.push(values(
                            conv.bias.as_ref().unwrap().grad(&grads).expect("bias"),
                        ));
                    }
                    for conv in &up.convs {
                        out.push(values(conv.weight.grad(&grads).expect("weight grad")));
                        out.push(values(
                            conv.bias.as_ref().unwrap().grad(&grads).expect("bias"),
                        ));
                    }
                    for norm in down.norms.iter().chain(&up.norms) {
                        out.push(values(
                            norm.gamma.as_ref().unwrap().grad(&grads).expect("g"),
                        ));
                        out.push(values(norm.beta.as_ref().unwrap().grad(&grads).expect("b")));
                    }
                    out
                })
            };
            let (fused, composed) = (run(true), run(false));
            assert_eq!(fused.len(), composed.len());
            for (i, (a, b)) in fused.iter().zip(&composed).enumerate() {
                let w = worst(a, b);
                assert!(w < 1e-4, "{shape:?}: output {i} differs by {w} (relative)");
            }
        }
    }

    fn randomise_norms(mut down: ConvDown, device: &Device) -> ConvDown {
        for (i, norm) in down.norms.iter_mut().enumerate() {
            let c = norm.num_channels;
            let gamma = Tensor::<1>::from_data(
                burn::tensor::TensorData::new(
                    pattern(c, i + 11)
                        .iter()
                        .map(|v| 1.0 + 0.5 * v)
                        .collect::<Vec<_>>(),
                    [c],
                ),
                device,
            );
            let beta = Tensor::<1>::from_data(
                burn::tensor::TensorData::new(pattern(c, i + 13), [c]),
                device,
            );
            norm.gamma = Some(burn::module::Param::from_tensor(gamma));
            norm.beta = Some(burn::module::Param::from_tensor(beta));
        }
        down
    }

    #[test]
    fn stacks_map_images_to_features_and_back() {
        let device = Device::flex();
        for shape in [ImageShape::new(1, 28, 28), ImageShape::new(3, 27, 13)] {
            let plan = ConvPlan::new(shape);
            let x = Tensor::<2>::ones([2, shape.dim() + 5], &device);
            let f = plan.down(false, &device).forward(x);
            assert_eq!(f.dims(), [2, plan.encoded_features() + 5]);
            let h = Tensor::<2>::ones([2, plan.base_features()], &device);
            assert_eq!(plan.up(&device).forward(h).dims(), [2, shape.dim()]);
        }
    }

    #[test]
    fn the_plain_copy_decodes_odd_sizes_like_the_model() {
        use crate::data::batch::{to_tensor, to_vec};
        let device = Device::flex();
        for shape in [ImageShape::new(3, 27, 13), ImageShape::new(1, 40, 36)] {
            let vae = crate::model::VaeConfig::new(shape.dim())
                .with_hidden(vec![16])
                .with_conv(Some(shape))
                .with_colour_offset(true)
                .init(&device);
            assert_eq!(vae.decoder.colour.is_some(), shape.channels > 1);
            let model = crate::model::Model::Vae(vae);
            let plain = crate::train::trainer::plain_decoder(&model, shape.width, shape.height);
            let z = [0.3f32, -1.1];
            let expected = to_vec(burn::tensor::activation::sigmoid(model.decode(to_tensor(
                z.to_vec(),
                1,
                2,
                &device,
            ))));
            let got = plain.decode(&z);
            assert_eq!(got.len(), shape.dim());
            let worst = got
                .iter()
                .zip(&expected)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst < 1e-5, "{shape:?}: differs by {worst}");
        }
    }
}
