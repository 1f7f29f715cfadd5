//! A plain-data copy of a decoder: its dense layers and, for the convolutional architecture,
//! its transposed convolutions and group norms. The worker sends one with each snapshot, so
//! whoever explores the latent space decodes at once, never waiting behind a training step.
//!
//! The convolutions run on feature maps stored pixel by pixel (`[y][x][channel]`), with each
//! kernel tap's weights laid out over the output channels, so the innermost loop is one
//! contiguous multiply-add across channels; inputs that ReLU zeroed are skipped.

use serde::{Deserialize, Serialize};

use super::PlainFlow;

/// One dense layer, `y = x W + b`, weights row-major `[inputs, outputs]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dense {
    /// Input width.
    pub inputs: usize,
    /// Output width.
    pub outputs: usize,
    /// `inputs * outputs` weights, row `i` holding input `i`'s weight to every output.
    pub weights: Vec<f32>,
    /// `outputs` biases.
    pub bias: Vec<f32>,
}

impl Dense {
    /// A plain copy of burn's dense layer (the bias zero when it has none).
    pub fn of(layer: &burn::nn::Linear) -> Self {
        use crate::fused::to_vec;
        let [inputs, outputs] = layer.weight.val().dims();
        Dense {
            inputs,
            outputs,
            weights: to_vec(layer.weight.val()),
            bias: layer
                .bias
                .as_ref()
                .map_or(vec![0.0; outputs], |b| to_vec(b.val())),
        }
    }
}

impl Dense {
    /// `y = x W + b` for one input vector.
    pub fn forward(&self, x: &[f32], y: &mut Vec<f32>) {
        y.clear();
        y.extend_from_slice(&self.bias);
        for (xi, row) in x.iter().zip(self.weights.chunks_exact(self.outputs)) {
            if *xi != 0.0 {
                for (yo, w) in y.iter_mut().zip(row) {
                    *yo += xi * w;
                }
            }
        }
    }
}

/// A decoder MLP (ReLU between layers, or tanh with `tanh`; a sigmoid at the end) that maps a
/// latent point to pixel intensities in `[0, 1]`; for the f-VAE the point first goes back
/// through the flow.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PlainDecoder {
    /// The layers, first to last.
    pub layers: Vec<Dense>,
    /// The f-VAE's flow F: points of the prior's space are decoded at `F^-1(z)`.
    #[serde(default)]
    pub flow: Option<PlainFlow>,
    /// Image width in pixels.
    pub width: usize,
    /// Image height in pixels.
    pub height: usize,
    /// The transposed convolutions after the dense layers (the convolutional architecture).
    #[serde(default)]
    pub up: Option<PlainUp>,
    /// The colour offset: from the last hidden layer, one logit per channel added to every
    /// pixel after the transposed convolutions.
    #[serde(default)]
    pub colour: Option<Dense>,
    /// tanh between the dense layers instead of ReLU (the layer before transposed
    /// convolutions keeps its ReLU).
    #[serde(default)]
    pub tanh: bool,
}

/// A transposed convolution with a 4 x 4 kernel, stride 2 and padding 1: it doubles each side.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlainConvT {
    /// Input channels.
    pub inputs: usize,
    /// Output channels.
    pub outputs: usize,
    /// `inputs * 4 * 4 * outputs` weights: `[input][ky][kx][output]`.
    pub weights: Vec<f32>,
    /// `outputs` biases.
    pub bias: Vec<f32>,
}

/// Side of the transposed convolutions' kernel.
const KERNEL: usize = 4;

impl PlainConvT {
    /// The layer from burn's weight layout `[inputs, outputs, ky, kx]`.
    pub fn from_burn(inputs: usize, outputs: usize, weights: &[f32], bias: Vec<f32>) -> Self {
        let mut w = vec![0.0; inputs * KERNEL * KERNEL * outputs];
        for i in 0..inputs {
            for o in 0..outputs {
                for k in 0..KERNEL * KERNEL {
                    w[(i * KERNEL * KERNEL + k) * outputs + o] =
                        weights[(i * outputs + o) * KERNEL * KERNEL + k];
                }
            }
        }
        Self {
            inputs,
            outputs,
            weights: w,
            bias,
        }
    }

    /// The map of `height x width` pixels of `inputs` channels, doubled in each side.
    pub fn forward(&self, x: &[f32], height: usize, width: usize) -> Vec<f32> {
        let (oh, ow, co) = (2 * height, 2 * width, self.outputs);
        let mut out: Vec<f32> = std::iter::repeat_n(&self.bias, oh * ow)
            .flatten()
            .copied()
            .collect();
        for iy in 0..height {
            for ix in 0..width {
                let pixel = &x[(iy * width + ix) * self.inputs..][..self.inputs];
                for (c, &v) in pixel.iter().enumerate() {
                    if v == 0.0 {
                        continue;
                    }
                    for ky in 0..KERNEL {
                        // Output row 2 iy - 1 + ky (padding 1).
                        let Some(oy) = (2 * iy + ky).checked_sub(1).filter(|&y| y < oh) else {
                            continue;
                        };
                        for kx in 0..KERNEL {
                            let Some(ox) = (2 * ix + kx).checked_sub(1).filter(|&x| x < ow) else {
                                continue;
                            };
                            let tap = &self.weights[((c * KERNEL + ky) * KERNEL + kx) * co..][..co];
                            let target = &mut out[(oy * ow + ox) * co..][..co];
                            for (t, w) in target.iter_mut().zip(tap) {
                                *t += v * w;
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

/// Group normalisation with a scale and shift per channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlainGroupNorm {
    /// Groups of consecutive channels normalised together.
    pub groups: usize,
    /// Scale per channel.
    pub gamma: Vec<f32>,
    /// Shift per channel.
    pub beta: Vec<f32>,
    /// Added to the variance.
    pub epsilon: f32,
}

impl PlainGroupNorm {
    /// Normalises a map stored pixel by pixel, in place: each group's values over every pixel to
    /// zero mean and unit (biased) variance, then scaled and shifted per channel.
    pub fn forward(&self, x: &mut [f32]) {
        let channels = self.gamma.len();
        let per = channels / self.groups.max(1);
        if per == 0 || x.is_empty() {
            return;
        }
        for g in 0..self.groups {
            let range = g * per..(g + 1) * per;
            let values = || x.chunks_exact(channels).flat_map(|p| &p[range.clone()]);
            let n = (x.len() / channels * per) as f64;
            let mean = values().map(|&v| f64::from(v)).sum::<f64>() / n;
            let var = values()
                .map(|&v| (f64::from(v) - mean).powi(2))
                .sum::<f64>()
                / n;
            let inv = 1.0 / (var + f64::from(self.epsilon)).sqrt();
            for pixel in x.chunks_exact_mut(channels) {
                for c in range.clone() {
                    let v = ((f64::from(pixel[c]) - mean) * inv) as f32;
                    pixel[c] = v * self.gamma[c] + self.beta[c];
                }
            }
        }
    }
}

/// A decoder's transposed convolutions: the first feature map (ReLU already applied) to the
/// image's logits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlainUp {
    /// One per stage; the last gives the image's channels.
    pub stages: Vec<PlainConvT>,
    /// After every stage but the last, followed by ReLU.
    pub norms: Vec<PlainGroupNorm>,
    /// `[channels, height, width]` of the first feature map.
    pub base: [usize; 3],
    /// `[channels, height, width]` of the image.
    pub shape: [usize; 3],
}

impl PlainUp {
    /// Logits, pixel by pixel with interleaved channels, from the first feature map in the
    /// dense layer's order (`[channel][y][x]`).
    pub fn forward(&self, h: &[f32]) -> Vec<f32> {
        let [c0, mut fh, mut fw] = self.base;
        let mut map = vec![0.0; c0 * fh * fw];
        for c in 0..c0 {
            for p in 0..fh * fw {
                map[p * c0 + c] = h.get(c * fh * fw + p).copied().unwrap_or(0.0);
            }
        }
        let last = self.stages.len().saturating_sub(1);
        for (i, stage) in self.stages.iter().enumerate() {
            map = stage.forward(&map, fh, fw);
            (fh, fw) = (2 * fh, 2 * fw);
            if i < last {
                if let Some(norm) = self.norms.get(i) {
                    norm.forward(&mut map);
                }
                map.iter_mut().for_each(|v| *v = v.max(0.0));
            }
        }
        let [c, height, width] = self.shape;
        if (fh, fw) == (height, width) {
            return map;
        }
        (0..height)
            .flat_map(|y| map[y * fw * c..][..width * c].to_vec())
            .collect()
    }
}

impl PlainDecoder {
    /// Bytes its weights take on the heap.
    pub fn heap_bytes(&self) -> usize {
        let dense = |d: &Dense| 4 * (d.weights.len() + d.bias.len());
        let layers: usize = self.layers.iter().map(dense).sum();
        let flow: usize = self
            .flow
            .iter()
            .flat_map(|f| &f.layers)
            .map(|c| c.net.iter().map(dense).sum::<usize>() + dense(&c.log_scale) + dense(&c.shift))
            .sum();
        let up: usize = self
            .up
            .iter()
            .map(|u| {
                u.stages
                    .iter()
                    .map(|s| 4 * (s.weights.len() + s.bias.len()))
                    .sum::<usize>()
                    + u.norms
                        .iter()
                        .map(|n| 4 * (n.gamma.len() + n.beta.len()))
                        .sum::<usize>()
            })
            .sum();
        layers + flow + up
    }

    /// Dimension of the latent space it decodes from.
    pub fn latent_dim(&self) -> usize {
        self.layers.first().map_or(0, |l| l.inputs)
    }

    /// Decodes one point of the prior's space into `width * height` intensities in `[0, 1]`.
    pub fn decode(&self, z: &[f32]) -> Vec<f32> {
        match &self.flow {
            Some(flow) => self.decode_pre_flow(&flow.inverse(z).0),
            None => self.decode_pre_flow(z),
        }
    }

    /// Decodes a point given before the flow (the decoder's own input space; the same as
    /// [`PlainDecoder::decode`] for families without a flow).
    pub fn decode_pre_flow(&self, z: &[f32]) -> Vec<f32> {
        let mut a = z.to_vec();
        let mut b = Vec::new();
        let mut offset = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            if i + 1 == self.layers.len()
                && let Some(colour) = &self.colour
            {
                colour.forward(&a, &mut offset);
            }
            layer.forward(&a, &mut b);
            if i + 1 < self.layers.len() && self.tanh {
                b.iter_mut().for_each(|v| *v = v.tanh());
            } else if i + 1 < self.layers.len() || self.up.is_some() {
                b.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            std::mem::swap(&mut a, &mut b);
        }
        if let Some(up) = &self.up {
            a = up.forward(&a);
        }
        if !offset.is_empty() {
            for px in a.chunks_exact_mut(offset.len()) {
                px.iter_mut().zip(&offset).for_each(|(v, o)| *v += o);
            }
        }
        a.iter_mut().for_each(|v| *v = 1.0 / (1.0 + (-*v).exp()));
        a
    }

    /// Decodes many points (`points.len() / latent_dim` of them), using every core.
    pub fn decode_many(&self, points: &[f32]) -> Vec<Vec<f32>> {
        let d = self.latent_dim().max(1);
        let rows: Vec<&[f32]> = points.chunks_exact(d).collect();
        crate::platform::map_chunked(&rows, |z| self.decode(z))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_through_relu_or_tanh_and_sigmoid() {
        let dec = PlainDecoder {
            layers: vec![
                Dense {
                    inputs: 2,
                    outputs: 2,
                    weights: vec![1.0, -1.0, 2.0, 0.0],
                    bias: vec![0.0, 0.5],
                },
                Dense {
                    inputs: 2,
                    outputs: 1,
                    weights: vec![1.0, 1.0],
                    bias: vec![-1.0],
                },
            ],
            flow: None,
            colour: None,
            width: 1,
            height: 1,
            up: None,
            tanh: false,
        };
        // h = relu([1*1 + 2*1, -1*1 + 0 + 0.5]) = [3, 0]; out = sigmoid(3 + 0 - 1) = sigmoid(2)
        let sigmoid = |v: f32| 1.0 / (1.0 + (-v).exp());
        let y = dec.decode(&[1.0, 1.0]);
        assert!((y[0] - sigmoid(2.0)).abs() < 1e-6);
        let many = dec.decode_many(&[1.0, 1.0, 0.0, 0.0, 1.0, 1.0]);
        assert_eq!(many.len(), 3);
        assert_eq!(many[0], many[2]);
        // With tanh: h = tanh([3, -0.5]); out = sigmoid(tanh 3 + tanh(-0.5) - 1).
        let tanh = PlainDecoder { tanh: true, ..dec };
        let y = tanh.decode(&[1.0, 1.0]);
        let want = sigmoid(3f32.tanh() + (-0.5f32).tanh() - 1.0);
        assert!((y[0] - want).abs() < 1e-6, "{} against {want}", y[0]);
    }
}
