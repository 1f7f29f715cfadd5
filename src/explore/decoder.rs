//! A plain-data copy of a decoder MLP. The worker sends one with each snapshot, so whoever
//! explores the latent space decodes at once, never waiting behind a training step.

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

/// A decoder MLP (ReLU between layers, a sigmoid at the end) that maps a latent point to
/// pixel intensities in `[0, 1]`; for the f-VAE the point first goes back through the flow.
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
}

impl PlainDecoder {
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
        for (i, layer) in self.layers.iter().enumerate() {
            layer.forward(&a, &mut b);
            if i + 1 < self.layers.len() {
                b.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            std::mem::swap(&mut a, &mut b);
        }
        a.iter_mut().for_each(|v| *v = 1.0 / (1.0 + (-*v).exp()));
        a
    }

    /// Decodes many points (`points.len() / latent_dim` of them), using every core.
    pub fn decode_many(&self, points: &[f32]) -> Vec<Vec<f32>> {
        let d = self.latent_dim().max(1);
        let rows: Vec<&[f32]> = points.chunks_exact(d).collect();
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(rows.len().max(1));
        let per = rows.len().div_ceil(threads.max(1)).max(1);
        std::thread::scope(|s| {
            let handles: Vec<_> = rows
                .chunks(per)
                .map(|chunk| {
                    s.spawn(move || chunk.iter().map(|z| self.decode(z)).collect::<Vec<_>>())
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_through_relu_and_sigmoid() {
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
            width: 1,
            height: 1,
        };
        // h = relu([1*1 + 2*1, -1*1 + 0 + 0.5]) = [3, 0]; out = sigmoid(3 + 0 - 1) = sigmoid(2)
        let y = dec.decode(&[1.0, 1.0]);
        assert!((y[0] - 1.0 / (1.0 + (-2.0f32).exp())).abs() < 1e-6);
        let many = dec.decode_many(&[1.0, 1.0, 0.0, 0.0, 1.0, 1.0]);
        assert_eq!(many.len(), 3);
        assert_eq!(many[0], many[2]);
    }
}
