//! A plain-data copy of the f-VAE's flow, so the explorer can push posterior outlines through
//! F, decode through F^-1 and measure densities without the training thread.

use serde::{Deserialize, Serialize};

use super::Dense;

/// Bound on `|log s|` per coordinate and layer, in the model and in this copy of it alike.
pub const LOG_SCALE_BOUND: f32 = 2.0;

/// One affine coupling layer (the model's `Coupling`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlainCoupling {
    /// Conditioning network's hidden layers (tanh after each).
    pub net: Vec<Dense>,
    /// Unbounded log-scale output.
    pub log_scale: Dense,
    /// Shift output.
    pub shift: Dense,
    /// Whether the first half is the changed one.
    pub flip: bool,
}

impl PlainCoupling {
    fn split(&self, dim: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let first = dim / 2;
        if self.flip {
            (first..dim, 0..first)
        } else {
            (0..first, first..dim)
        }
    }

    fn scale_shift(&self, cond: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let mut h = cond.to_vec();
        let mut next = Vec::new();
        for layer in &self.net {
            layer.forward(&h, &mut next);
            next.iter_mut().for_each(|v| *v = v.tanh());
            std::mem::swap(&mut h, &mut next);
        }
        let (mut log_s, mut t) = (Vec::new(), Vec::new());
        self.log_scale.forward(&h, &mut log_s);
        self.shift.forward(&h, &mut t);
        log_s
            .iter_mut()
            .for_each(|v| *v = LOG_SCALE_BOUND * v.tanh());
        (log_s, t)
    }

    /// Applies the layer in place; returns `log |det|`.
    fn forward(&self, x: &mut [f32]) -> f32 {
        let (cond, changed) = self.split(x.len());
        let (log_s, t) = self.scale_shift(&x[cond]);
        for ((v, ls), tt) in x[changed].iter_mut().zip(&log_s).zip(&t) {
            *v = *v * ls.exp() + tt;
        }
        log_s.iter().sum()
    }

    /// Undoes the layer in place; returns `log |det|` of the inverse.
    fn inverse(&self, y: &mut [f32]) -> f32 {
        let (cond, changed) = self.split(y.len());
        let (log_s, t) = self.scale_shift(&y[cond]);
        for ((v, ls), tt) in y[changed].iter_mut().zip(&log_s).zip(&t) {
            *v = (*v - tt) * (-ls).exp();
        }
        -log_s.iter().sum::<f32>()
    }
}

/// The whole flow F.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PlainFlow {
    /// The layers, applied first to last by F.
    pub layers: Vec<PlainCoupling>,
}

impl PlainFlow {
    /// `F(w)` and `log |det dF/dw|`.
    pub fn forward(&self, w: &[f32]) -> (Vec<f32>, f32) {
        let mut x = w.to_vec();
        let log_det = self.layers.iter().map(|l| l.forward(&mut x)).sum();
        (x, log_det)
    }

    /// `F^-1(z)` and `log |det dF^-1/dz|`.
    pub fn inverse(&self, z: &[f32]) -> (Vec<f32>, f32) {
        let mut x = z.to_vec();
        let log_det = self.layers.iter().rev().map(|l| l.inverse(&mut x)).sum();
        (x, log_det)
    }
}
