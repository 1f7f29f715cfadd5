//! Two-dimensional views of a latent space of any dimension: two chosen dimensions, or the
//! first two principal components of the posterior means.

use serde::{Deserialize, Serialize};

/// How a `d`-dimensional latent space is shown in a plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Projection {
    /// Two latent dimensions, as they are.
    Dims(usize, usize),
    /// The first two principal components of the posterior means.
    Pca,
}

impl Default for Projection {
    fn default() -> Self {
        Projection::Dims(0, 1)
    }
}

/// A linear map from the latent space to the plane: two unit axes of length `d`.
#[derive(Clone, Debug, PartialEq)]
pub struct PlaneAxes {
    /// The horizontal axis.
    pub x: Vec<f32>,
    /// The vertical axis.
    pub y: Vec<f32>,
}

impl PlaneAxes {
    /// Axes for `projection` of the `n x d` means `mu`.
    pub fn new(projection: Projection, mu: &[f32], d: usize) -> Self {
        let unit = |i: usize| {
            let mut v = vec![0.0; d];
            if d > 0 {
                v[i.min(d - 1)] = 1.0;
            }
            v
        };
        match projection {
            Projection::Dims(i, j) => Self {
                x: unit(i),
                y: unit(j),
            },
            Projection::Pca if d <= 2 => Self {
                x: unit(0),
                y: unit(1),
            },
            Projection::Pca => {
                let (x, y) = principal_axes(mu, d);
                Self { x, y }
            }
        }
    }

    /// The plane coordinates of a latent point.
    pub fn project(&self, z: &[f32]) -> [f32; 2] {
        let dot = |a: &[f32]| a.iter().zip(z).map(|(u, v)| u * v).sum::<f32>();
        [dot(&self.x), dot(&self.y)]
    }

    /// Semi-axes of a diagonal Gaussian's shadow on the two axes: `sqrt(sum_k (a_k sigma_k)^2)`.
    pub fn project_sigma(&self, sigma: &[f32]) -> [f32; 2] {
        let spread = |a: &[f32]| {
            a.iter()
                .zip(sigma)
                .map(|(u, s)| (u * s).powi(2))
                .sum::<f32>()
                .sqrt()
        };
        [spread(&self.x), spread(&self.y)]
    }

    /// The latent point for plane coordinates `p` (zero off the plane).
    pub fn lift(&self, p: [f32; 2]) -> Vec<f32> {
        self.x
            .iter()
            .zip(&self.y)
            .map(|(a, b)| a * p[0] + b * p[1])
            .collect()
    }
}

/// The two leading eigenvectors of the covariance of `n x d` points (power iteration with
/// deflation).
fn principal_axes(points: &[f32], d: usize) -> (Vec<f32>, Vec<f32>) {
    let n = points.len() / d.max(1);
    let mut mean = vec![0.0f64; d];
    for row in points.chunks_exact(d) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += *v as f64 / n.max(1) as f64;
        }
    }
    let mut cov = vec![0.0f64; d * d];
    for row in points.chunks_exact(d) {
        for i in 0..d {
            let a = row[i] as f64 - mean[i];
            for j in 0..d {
                cov[i * d + j] += a * (row[j] as f64 - mean[j]);
            }
        }
    }
    let leading = |cov: &[f64]| {
        let mut v: Vec<f64> = (0..d).map(|i| 1.0 + i as f64 * 0.01).collect();
        for _ in 0..200 {
            let mut w: Vec<f64> = (0..d)
                .map(|i| (0..d).map(|j| cov[i * d + j] * v[j]).sum())
                .collect();
            let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
            w.iter_mut().for_each(|x| *x /= norm);
            v = w;
        }
        let lambda: f64 = (0..d)
            .map(|i| v[i] * (0..d).map(|j| cov[i * d + j] * v[j]).sum::<f64>())
            .sum();
        (v, lambda)
    };
    let (v1, l1) = leading(&cov);
    let deflated: Vec<f64> = (0..d * d)
        .map(|k| cov[k] - l1 * v1[k / d] * v1[k % d])
        .collect();
    let (v2, _) = leading(&deflated);
    let to_f32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect();
    (to_f32(v1), to_f32(v2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pca_finds_the_spread_directions() {
        // Points spread along (1, 1, 0) strongly and along (0, 0, 1) weakly.
        let mut pts = Vec::new();
        for i in -50..=50 {
            let t = i as f32 / 10.0;
            let s = if i % 2 == 0 { 0.3 } else { -0.3 };
            pts.extend([t, t, s]);
        }
        let axes = PlaneAxes::new(Projection::Pca, &pts, 3);
        let r = std::f32::consts::FRAC_1_SQRT_2;
        assert!(
            (axes.x[0].abs() - r).abs() < 1e-2 && (axes.x[1].abs() - r).abs() < 1e-2,
            "{:?}",
            axes.x
        );
        assert!(axes.y[2].abs() > 0.99, "{:?}", axes.y);
    }

    #[test]
    fn dims_project_and_lift() {
        let axes = PlaneAxes::new(Projection::Dims(2, 0), &[], 3);
        assert_eq!(axes.project(&[1.0, 2.0, 3.0]), [3.0, 1.0]);
        assert_eq!(axes.project_sigma(&[0.1, 0.2, 0.3]), [0.3, 0.1]);
        assert_eq!(axes.lift([5.0, 6.0]), vec![6.0, 0.0, 5.0]);
    }
}
