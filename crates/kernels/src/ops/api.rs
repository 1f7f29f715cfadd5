//! The tensor API the models call: dense layers, convolutions, normalisations, spectral
//! normalisation. Each routes to the fused kernels for flex `f32` tensors, and to the same
//! value from burn's tensor operations on every other backend.

use burn::backend::Dispatch;
use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::nn::{BatchNorm, GroupNorm};
use burn::tensor::Tensor;

use super::{Curve, FusedOps, levers};
use crate::conv::ConvGeom;
use crate::flex;

/// The activation after a dense layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// None: the layer's output as it is.
    Identity,
    /// `max(v, 0)`.
    Relu,
    /// `v` for positive `v`, `slope v` otherwise (`slope` in (0, 1)).
    LeakyRelu(f32),
    /// `1 / (1 + e^-v)`.
    Sigmoid,
    /// `tanh v` (Burda et al.'s hidden units).
    Tanh,
}

impl Activation {
    /// `(curve, slope)` as the kernels take them.
    fn code(self) -> (Curve, f32) {
        match self {
            Activation::Identity => (Curve::Piecewise, 1.0),
            Activation::Relu => (Curve::Piecewise, 0.0),
            Activation::LeakyRelu(slope) => (Curve::Piecewise, slope),
            Activation::Sigmoid => (Curve::Sigmoid, 1.0),
            Activation::Tanh => (Curve::Tanh, 1.0),
        }
    }

    /// The activation by burn's composed operations.
    pub fn apply(self, y: Tensor<2>) -> Tensor<2> {
        match self {
            Activation::Identity => y,
            Activation::Relu => burn::tensor::activation::relu(y),
            Activation::LeakyRelu(slope) => burn::tensor::activation::leaky_relu(y, slope as f64),
            Activation::Sigmoid => burn::tensor::activation::sigmoid(y),
            Activation::Tanh => burn::tensor::activation::tanh(y),
        }
    }
}

/// A dense layer on a batch, `act(x W + b)`.
///
/// On flex `f32` tensors with a bias this is one fused kernel forward (the product added onto
/// the bias, the activation in the same buffer) and a hand-written backward; otherwise it is
/// burn's `Linear::forward` followed by the activation.
///
/// # Shapes
///   x `[batch, in]` -> `[batch, out]`
pub fn linear(layer: &burn::nn::Linear, x: Tensor<2>, act: Activation) -> Tensor<2> {
    dense(layer, x, act, None)
}

/// Whether the fused convolutions take `x`: an `f32` tensor on flex (with or without
/// autodiff), with the `conv` lever on.
pub fn conv_fusable(x: &Tensor<2>) -> bool {
    levers().conv && flex::on_flex(x)
}

/// burn's `Conv2d` (with its bias) on channels-last images, then the activation with `slope`
/// (1: none), through the fused kernels; callers check [`conv_fusable`] first.
///
/// # Shapes
///   x `[batch, geom.big]` -> `[batch, geom.small]`
pub fn conv2d(conv: &Conv2d, x: Tensor<2>, geom: ConvGeom, slope: f32) -> Tensor<2> {
    let bias = conv
        .bias
        .as_ref()
        .expect("the fused convolution takes a bias");
    let out = Dispatch::conv_down(
        x.into_dispatch(),
        conv.weight.val().into_dispatch(),
        bias.val().into_dispatch(),
        true,
        geom,
        slope,
    );
    Tensor::from_dispatch(out)
}

/// burn's `ConvTranspose2d` (with its bias) on channels-last images, its output cropped to
/// `geom.big`, through the fused kernels; callers check [`conv_fusable`] first.
///
/// # Shapes
///   x `[batch, geom.small]` -> `[batch, geom.big]`
pub fn conv_transpose2d(conv: &ConvTranspose2d, x: Tensor<2>, geom: ConvGeom) -> Tensor<2> {
    let bias = conv
        .bias
        .as_ref()
        .expect("the fused convolution takes a bias");
    let out = Dispatch::conv_up(
        x.into_dispatch(),
        conv.weight.val().into_dispatch(),
        bias.val().into_dispatch(),
        true,
        geom,
    );
    Tensor::from_dispatch(out)
}

/// burn's affine `GroupNorm` on channels-last images, then the activation with `slope`, through
/// the fused kernels; callers check [`conv_fusable`] first.
///
/// # Shapes
///   x `[batch, pixels * channels]` -> the same
pub fn group_norm(norm: &GroupNorm, x: Tensor<2>, slope: f32) -> Tensor<2> {
    let (gamma, beta) = match (&norm.gamma, &norm.beta) {
        (Some(g), Some(b)) => (g.val(), b.val()),
        _ => panic!("the fused group norm is affine"),
    };
    let out = Dispatch::group_norm(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        norm.num_groups,
        norm.epsilon as f32,
        slope,
    );
    Tensor::from_dispatch(out)
}

/// burn's `BatchNorm` on a batch of rows, then `act`: in training (an autodiff device and the
/// module in training mode) the batch's statistics normalise it and move the running ones as
/// burn's module does; otherwise the running statistics normalise it.
///
/// While training on flex this is one fused kernel each way: the batch is group norm's one
/// image, with each feature a group of one channel (the activation in the same pass), and
/// the statistics for the running averages one more pass. Otherwise burn's module, then the
/// activation.
///
/// # Shapes
///   x `[batch, features]` -> the same
pub fn batch_norm(norm: &BatchNorm, x: Tensor<2>, act: Activation) -> Tensor<2> {
    let training = x.device().is_autodiff() && norm.training.is_enabled();
    let slope = match act {
        Activation::Identity => Some(1.0),
        Activation::Relu => Some(0.0),
        Activation::LeakyRelu(slope) => Some(slope),
        Activation::Sigmoid | Activation::Tanh => None,
    };
    let [rows, features] = x.dims();
    let fusable = training && rows > 0 && features > 0 && levers().batch_norm && flex::on_flex(&x);
    let Some(slope) = slope.filter(|_| fusable) else {
        return act.apply(norm.forward(x));
    };
    let (mean, var) = Dispatch::column_moments(x.clone().detach().into_dispatch());
    let (mean, var) = (
        Tensor::<1>::from_dispatch(mean),
        Tensor::<1>::from_dispatch(var),
    );
    let m = norm.momentum;
    let moved = |state: &burn::module::RunningState<Tensor<1>>, batch: Tensor<1>| {
        let old = state.value_sync().to_device(&batch.device());
        state.update(old.mul_scalar(1.0 - m).add(batch.mul_scalar(m)).detach());
    };
    moved(&norm.running_mean, mean);
    moved(&norm.running_var, var);
    let out = Dispatch::group_norm(
        x.reshape([1, rows * features]).into_dispatch(),
        norm.gamma.val().into_dispatch(),
        norm.beta.val().into_dispatch(),
        features,
        norm.epsilon as f32,
        slope,
    );
    Tensor::<2>::from_dispatch(out).reshape([rows, features])
}

/// [`linear`] followed by `dropout` (which acts only while training, as burn's does). The
/// fused path draws the mask from a hash of its position and a seed taken from the device's
/// random stream, so a seeded run repeats; its gradient is read off the output.
pub fn linear_dropout(
    layer: &burn::nn::Linear,
    x: Tensor<2>,
    act: Activation,
    dropout: &burn::nn::Dropout,
) -> Tensor<2> {
    let active = dropout.training.is_enabled() && x.device().is_autodiff() && dropout.prob > 0.0;
    if !active {
        return linear(layer, x, act);
    }
    dense(layer, x, act, Some(dropout))
}

fn dense(
    layer: &burn::nn::Linear,
    x: Tensor<2>,
    act: Activation,
    dropout: Option<&burn::nn::Dropout>,
) -> Tensor<2> {
    let bias = layer.bias.as_ref().map(|b| b.val());
    dense_with(layer.weight.val(), bias, x, act, dropout)
}

/// [`linear_dropout`] with the weights `[in, out]` and bias given as tensors (computed ones,
/// such as spectrally normalised weights).
pub fn dense_with(
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
    x: Tensor<2>,
    act: Activation,
    dropout: Option<&burn::nn::Dropout>,
) -> Tensor<2> {
    let dropout =
        dropout.filter(|d| d.training.is_enabled() && x.device().is_autodiff() && d.prob > 0.0);
    // Dropout after a sigmoid or tanh would make the backward's zeros ambiguous: composed
    // instead.
    let smooth = matches!(act, Activation::Sigmoid | Activation::Tanh);
    let fusable = !(smooth && dropout.is_some());
    if let Some(bias) = &bias
        && fusable
        && levers().linear
        && flex::on_flex(&x)
        && flex::on_flex(&weight)
    {
        let (curve, slope) = act.code();
        let (keep, seed) = match dropout {
            Some(d) => ((1.0 - d.prob) as f32, dropout_seed(&x.device())),
            None => (1.0, 0),
        };
        let out = Dispatch::dense(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.clone().into_dispatch(),
            curve,
            slope,
            keep,
            seed,
        );
        return Tensor::from_dispatch(out);
    }
    #[cfg(feature = "wgpu")]
    let product = crate::gpu::dense_product(&x, &weight, bias.as_ref());
    #[cfg(not(feature = "wgpu"))]
    let product = None;
    let y = act.apply(product.unwrap_or_else(|| burn::tensor::module::linear(x, weight, bias)));
    match dropout {
        Some(d) => d.forward(y),
        None => y,
    }
}

/// Spectral normalisation through the fused kernels: one step of power iteration on
/// `weight` `[in, out]` from `u` `[out]` (held constant), then `(W / sigma, u')`. `None` off
/// flex (or with the kernel switched off): the caller composes the same step from burn's
/// operations.
pub fn spectral_normalise(weight: Tensor<2>, u: Tensor<1>) -> Option<(Tensor<2>, Tensor<1>)> {
    if !(levers().spectral && flex::on_flex(&weight) && flex::on_flex(&u)) {
        return None;
    }
    let held = weight.clone().detach().into_dispatch();
    let (v, u, sigma) = Dispatch::power_iteration(held, u.detach().into_dispatch());
    let scaled = Dispatch::spectral_scale(weight.into_dispatch(), v, u.clone(), sigma);
    Some((Tensor::from_dispatch(scaled), Tensor::from_dispatch(u)))
}

/// 32 random bits from the device's seeded stream (the one burn's own dropout draws from).
fn dropout_seed(device: &burn::tensor::Device) -> u32 {
    let draws = Tensor::<1>::random(
        [2],
        burn::tensor::Distribution::Uniform(0.0, 1.0),
        &device.clone().inner(),
    );
    let v = crate::to_vec(draws);
    v.iter().fold(0x9e37_79b9u32, |h, x| {
        (h ^ x.to_bits()).rotate_left(13).wrapping_mul(0x85eb_ca6b)
    })
}
