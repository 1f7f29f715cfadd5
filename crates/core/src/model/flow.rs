//! An invertible flow on the latent space made of affine coupling layers (RealNVP, as used by
//! the f-VAE of seeds/002): the latent vector is split in two halves; one half passes through
//! unchanged and conditions an affine map of the other,
//! `y1 = x1, y2 = s(x1) * x2 + t(x1)`, with `log |det| = sum log s(x1)`.
//! Layers alternate which half is changed. `s` stays positive: `log s = S tanh(a(x1))`. The
//! conditioning networks use tanh, so F is smooth (its Jacobian has no kinks).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

pub use crate::explore::flow::LOG_SCALE_BOUND;

/// Shape of a [`Flow`].
#[derive(Config, Debug, PartialEq)]
pub struct FlowConfig {
    /// Dimension of the latent space (at least 2).
    pub dim: usize,
    /// Number of coupling layers.
    #[config(default = 4)]
    pub layers: usize,
    /// Width of each coupling network's hidden layers.
    #[config(default = 64)]
    pub hidden: usize,
}

impl FlowConfig {
    /// A flow that starts as the identity (the output layers are zero).
    pub fn init(&self, device: &Device) -> Flow {
        let layers = (0..self.layers)
            .map(|i| {
                let flip = i % 2 == 1;
                let (cond, changed) = halves(self.dim, flip);
                let zero = |a, b| {
                    LinearConfig::new(a, b)
                        .with_initializer(Initializer::Zeros)
                        .init(device)
                };
                Coupling {
                    net: vec![
                        LinearConfig::new(cond, self.hidden).init(device),
                        LinearConfig::new(self.hidden, self.hidden).init(device),
                    ],
                    log_scale: zero(self.hidden, changed),
                    shift: zero(self.hidden, changed),
                    flip,
                }
            })
            .collect();
        Flow { layers }
    }
}

/// Sizes of the conditioning and the changed half: the first `dim / 2` coordinates and the
/// rest, swapped when `flip`.
fn halves(dim: usize, flip: bool) -> (usize, usize) {
    let first = dim / 2;
    if flip {
        (dim - first, first)
    } else {
        (first, dim - first)
    }
}

/// One affine coupling layer.
#[derive(Module, Debug)]
pub struct Coupling {
    /// The conditioning network's hidden layers (tanh after each).
    pub net: Vec<Linear>,
    /// Output giving the unbounded log-scale.
    pub log_scale: Linear,
    /// Output giving the shift.
    pub shift: Linear,
    /// Whether the first half is the changed one (the second conditions).
    pub flip: bool,
}

impl Coupling {
    /// Splits `x` into (conditioning, changed) halves.
    fn split(&self, x: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let dim = x.dims()[1];
        let first = dim / 2;
        let a = x.clone().narrow(1, 0, first);
        let b = x.narrow(1, first, dim - first);
        if self.flip { (b, a) } else { (a, b) }
    }

    /// Reassembles the halves in their original order.
    fn join(&self, cond: Tensor<2>, changed: Tensor<2>) -> Tensor<2> {
        if self.flip {
            Tensor::cat(vec![changed, cond], 1)
        } else {
            Tensor::cat(vec![cond, changed], 1)
        }
    }

    /// `(log s, t)` of the conditioning half.
    fn scale_shift(&self, cond: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let h = self.net.iter().fold(cond, |h, l| l.forward(h).tanh());
        let log_s = self.log_scale.forward(h.clone()).tanh() * LOG_SCALE_BOUND;
        (log_s, self.shift.forward(h))
    }

    /// `y` and `log |det dy/dx|` per row.
    pub fn forward(&self, x: Tensor<2>) -> (Tensor<2>, Tensor<1>) {
        let (cond, changed) = self.split(x);
        let (log_s, t) = self.scale_shift(cond.clone());
        let y2 = changed * log_s.clone().exp() + t;
        (self.join(cond, y2), log_s.sum_dim(1).squeeze_dim(1))
    }

    /// The exact inverse of [`Coupling::forward`].
    pub fn inverse(&self, y: Tensor<2>) -> Tensor<2> {
        let (cond, changed) = self.split(y);
        let (log_s, t) = self.scale_shift(cond.clone());
        let x2 = (changed - t) * log_s.neg().exp();
        self.join(cond, x2)
    }
}

/// A stack of coupling layers, `F = f_n o ... o f_1`.
#[derive(Module, Debug)]
pub struct Flow {
    /// The layers, applied first to last.
    pub layers: Vec<Coupling>,
}

impl Flow {
    /// `F(x)` and `log |det dF/dx|` per row.
    ///
    /// # Shapes
    ///   x `[batch, dim]` -> (`[batch, dim]`, `[batch]`)
    pub fn forward(&self, x: Tensor<2>) -> (Tensor<2>, Tensor<1>) {
        let batch = x.dims()[0];
        let device = x.device();
        let mut log_det = Tensor::<1>::zeros([batch], &device);
        let mut h = x;
        for layer in &self.layers {
            let (next, ld) = layer.forward(h);
            h = next;
            log_det = log_det + ld;
        }
        (h, log_det)
    }

    /// `F^-1(y)`.
    ///
    /// # Shapes
    ///   y `[batch, dim]` -> `[batch, dim]`
    pub fn inverse(&self, y: Tensor<2>) -> Tensor<2> {
        self.layers.iter().rev().fold(y, |h, l| l.inverse(h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::batch::{to_tensor, to_vec};
    use crate::rng::Rng;

    /// A flow with random (non-identity) output layers, so the test exercises real scales.
    fn random_flow(dim: usize, device: &Device) -> Flow {
        let mut flow = FlowConfig::new(dim).init(device);
        for layer in &mut flow.layers {
            layer.log_scale = LinearConfig::new(64, layer.log_scale.weight.dims()[1]).init(device);
            layer.shift = LinearConfig::new(64, layer.shift.weight.dims()[1]).init(device);
        }
        flow
    }

    #[test]
    fn inverse_undoes_forward() {
        let device = Device::flex();
        device.seed(3);
        for dim in [2, 3, 6] {
            let flow = random_flow(dim, &device);
            let mut rng = Rng::new(dim as u64);
            let x = rng.normals(64 * dim);
            let (y, _) = flow.forward(to_tensor(x.clone(), 64, dim, &device));
            let y_vals = to_vec(y.clone());
            assert!(
                x.iter().zip(&y_vals).any(|(a, b)| (a - b).abs() > 1e-2),
                "the flow should not be the identity here"
            );
            let back = to_vec(flow.inverse(y));
            let worst = x
                .iter()
                .zip(&back)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst < 1e-5, "dim {dim}: |F^-1(F(x)) - x| up to {worst}");
        }
    }

    /// Determinant of a small square matrix by Gaussian elimination with partial pivoting.
    fn determinant(mut m: Vec<Vec<f64>>) -> f64 {
        let n = m.len();
        let mut det = 1.0;
        for c in 0..n {
            let p = (c..n)
                .max_by(|&a, &b| m[a][c].abs().total_cmp(&m[b][c].abs()))
                .unwrap_or(c);
            if p != c {
                m.swap(p, c);
                det = -det;
            }
            det *= m[c][c];
            let pivot = m[c].clone();
            for row in m.iter_mut().skip(c + 1) {
                let f = row[c] / pivot[c];
                for (v, p) in row.iter_mut().zip(&pivot).skip(c) {
                    *v -= f * p;
                }
            }
        }
        det
    }

    #[test]
    fn log_det_matches_a_finite_difference_jacobian() {
        let device = Device::flex();
        device.seed(5);
        for dim in [2, 3, 4] {
            let flow = random_flow(dim, &device);
            let mut rng = Rng::new(40 + dim as u64);
            for _ in 0..5 {
                let x = rng.normals(dim);
                let (_, log_det) = flow.forward(to_tensor(x.clone(), 1, dim, &device));
                let log_det = to_vec(log_det)[0] as f64;
                // Five-point central differences, all 4 * dim perturbed points in one batch.
                let h = 1e-2f32;
                let offsets = [2.0f32, 1.0, -1.0, -2.0];
                let mut rows = Vec::new();
                for j in 0..dim {
                    for o in offsets {
                        let mut p = x.clone();
                        p[j] += o * h;
                        rows.extend(p);
                    }
                }
                let (y, _) = flow.forward(to_tensor(rows, 4 * dim, dim, &device));
                let y = to_vec(y);
                // jac[i][j] = d y_i / d x_j = (-f(x+2h) + 8 f(x+h) - 8 f(x-h) + f(x-2h)) / 12h
                let jac: Vec<Vec<f64>> = (0..dim)
                    .map(|i| {
                        (0..dim)
                            .map(|j| {
                                let f = |k: usize| y[(4 * j + k) * dim + i] as f64;
                                (-f(0) + 8.0 * f(1) - 8.0 * f(2) + f(3)) / (12.0 * h as f64)
                            })
                            .collect()
                    })
                    .collect();
                let fd = determinant(jac).abs().ln();
                assert!(
                    (fd - log_det).abs() < 1e-3,
                    "dim {dim}: log-det {log_det} but finite differences give {fd}"
                );
            }
        }
    }

    #[test]
    fn a_new_flow_is_the_identity() {
        let device = Device::flex();
        let flow = FlowConfig::new(2).init(&device);
        let x = vec![0.3, -1.2, 2.0, 0.5];
        let (y, log_det) = flow.forward(to_tensor(x.clone(), 2, 2, &device));
        assert_eq!(to_vec(y), x);
        assert_eq!(to_vec(log_det), vec![0.0, 0.0]);
    }
}
