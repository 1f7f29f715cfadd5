//! Prior coverage (seeds/003): the aggregate posterior `q(z) = mean_i N(z; mu_i, sigma_i^2)`
//! on a grid over the plane, against the prior `p(z) = N(0, I)`, and the share of the prior's
//! mass where `q(z) < 0.1 p(z)`: the "holes" a sampler falls into. Points (codes without
//! uncertainty) get a small fixed kernel. For a latent space above two dimensions the grid is
//! over two chosen dimensions, and both densities are the exact marginals there.

use super::PlainFlow;

/// Standard deviation of the kernel given to points (and added in quadrature to every sigma
/// too small to be seen on the grid).
pub const POINT_KERNEL: f32 = 0.1;
/// A cell is a hole where `q < HOLE_RATIO * p`.
pub const HOLE_RATIO: f32 = 0.1;
/// Half-width of the grid: it covers `[-EXTENT, EXTENT]^2`, over 99.9% of the prior's mass.
pub const EXTENT: f32 = 4.0;
/// Cells per side.
pub const GRID: usize = 48;

/// Densities on a square grid over `[-extent, extent]^2`.
#[derive(Clone, Debug, PartialEq)]
pub struct Coverage {
    /// Cells per side.
    pub n: usize,
    /// Half-width of the grid.
    pub extent: f32,
    /// The two latent dimensions on the grid's axes.
    pub axes: (usize, usize),
    /// Aggregate posterior density per cell, row `r` at `y = -extent + (r + 0.5) * cell`,
    /// column `c` at `x = -extent + (c + 0.5) * cell`.
    pub q: Vec<f32>,
    /// The prior's density per cell, same layout.
    pub p: Vec<f32>,
    /// Share of the prior's mass (on the grid) in holes.
    pub hole_share: f32,
}

impl Coverage {
    /// Width of one cell.
    pub fn cell(&self) -> f32 {
        2.0 * self.extent / self.n as f32
    }

    /// Centre of cell index `i` along an axis.
    pub fn centre(&self, i: usize) -> f32 {
        -self.extent + (i as f32 + 0.5) * self.cell()
    }

    fn finish(n: usize, extent: f32, axes: (usize, usize), q: Vec<f32>) -> Self {
        let cell = 2.0 * extent / n as f32;
        let centre = |i: usize| -extent + (i as f32 + 0.5) * cell;
        let mut p = Vec::with_capacity(n * n);
        for r in 0..n {
            for c in 0..n {
                let (x, y) = (centre(c), centre(r));
                p.push((-(x * x + y * y) / 2.0).exp() / std::f32::consts::TAU);
            }
        }
        let total: f64 = p.iter().map(|&v| v as f64).sum();
        let holes: f64 = p
            .iter()
            .zip(&q)
            .filter(|(p, q)| **q < HOLE_RATIO * **p)
            .map(|(p, _)| *p as f64)
            .sum();
        Self {
            n,
            extent,
            axes,
            q,
            p,
            // An empty sum is -0.0; a share is never negative.
            hole_share: if holes > 0.0 {
                (holes / total) as f32
            } else {
                0.0
            },
        }
    }
}

/// Density of N(m, s^2) at each of `n` cell centres along one axis.
fn axis_density(m: f32, s: f32, n: usize, extent: f32) -> Vec<f32> {
    let cell = 2.0 * extent / n as f32;
    let norm = 1.0 / (s * (std::f32::consts::TAU).sqrt());
    (0..n)
        .map(|i| {
            let u = (-extent + (i as f32 + 0.5) * cell - m) / s;
            if u.abs() > 8.0 {
                0.0
            } else {
                norm * (-0.5 * u * u).exp()
            }
        })
        .collect()
}

/// The aggregate posterior of diagonal Gaussians (or points, where sigma is 0) over `axes`.
/// `mu` and `sigma` are row-major `[samples, d]`.
pub fn gaussian_mixture(mu: &[f32], sigma: &[f32], d: usize, axes: (usize, usize)) -> Coverage {
    let (n, extent) = (GRID, EXTENT);
    let mut q = vec![0.0f32; n * n];
    let samples = mu.len() / d.max(1);
    for i in 0..samples {
        let s = |a: usize| {
            let v = sigma[i * d + a].abs();
            (v * v + POINT_KERNEL * POINT_KERNEL * f32::from(v < POINT_KERNEL)).sqrt()
        };
        let gx = axis_density(mu[i * d + axes.0], s(axes.0), n, extent);
        let gy = axis_density(mu[i * d + axes.1], s(axes.1), n, extent);
        for (r, &y) in gy.iter().enumerate() {
            if y == 0.0 {
                continue;
            }
            for (qv, &x) in q[r * n..(r + 1) * n].iter_mut().zip(&gx) {
                *qv += x * y;
            }
        }
    }
    let inv = 1.0 / samples.max(1) as f32;
    q.iter_mut().for_each(|v| *v *= inv);
    Coverage::finish(n, extent, axes, q)
}

/// The f-VAE's aggregate posterior in the prior's space of a 2-D latent, exactly:
/// `q(z) = mean_i N(F^-1(z); E_i, sigma1^2 I) |det dF^-1/dz|` (a sigma1 below the point kernel
/// is widened like a point's, in the pre-flow space).
pub fn flow_mixture(centres: &[f32], sigma1: f32, flow: &PlainFlow) -> Coverage {
    let (n, extent) = (GRID, EXTENT);
    let cell = 2.0 * extent / n as f32;
    let samples = centres.len() / 2;
    let sigma1 = if sigma1 < POINT_KERNEL {
        (sigma1 * sigma1 + POINT_KERNEL * POINT_KERNEL).sqrt()
    } else {
        sigma1
    };
    let norm = 1.0 / (std::f32::consts::TAU * sigma1 * sigma1);
    let mut q = Vec::with_capacity(n * n);
    for r in 0..n {
        for c in 0..n {
            let z = [
                -extent + (c as f32 + 0.5) * cell,
                -extent + (r as f32 + 0.5) * cell,
            ];
            let (w, log_det) = flow.inverse(&z);
            let mut sum = 0.0f32;
            for e in centres.chunks_exact(2) {
                let (dx, dy) = ((w[0] - e[0]) / sigma1, (w[1] - e[1]) / sigma1);
                let m = dx * dx + dy * dy;
                if m < 64.0 {
                    sum += (-0.5 * m).exp();
                }
            }
            q.push(sum * norm / samples.max(1) as f32 * log_det.exp());
        }
    }
    Coverage::finish(n, extent, (0, 1), q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prior_itself_has_no_holes_and_a_point_has_almost_only_holes() {
        // Many unit Gaussians at the origin: q = p.
        let mu = vec![0.0; 20];
        let sigma = vec![1.0; 20];
        let c = gaussian_mixture(&mu, &sigma, 2, (0, 1));
        assert!(c.hole_share < 1e-6, "{}", c.hole_share);
        let cell_area = c.cell() * c.cell();
        let mass: f32 = c.q.iter().sum::<f32>() * cell_area;
        assert!((mass - 1.0).abs() < 0.01, "q integrates to {mass}");
        // One point at (3, 3): the prior's bulk is uncovered.
        let c = gaussian_mixture(&[3.0, 3.0], &[0.0, 0.0], 2, (0, 1));
        assert!(c.hole_share > 0.99, "{}", c.hole_share);
    }

    #[test]
    fn a_narrow_ring_leaves_the_centre_as_a_hole() {
        // Posteriors of sigma 0.3 on a circle of radius 2: the origin and far corners are holes.
        let (mut mu, mut sigma) = (Vec::new(), Vec::new());
        for k in 0..64 {
            let a = k as f32 / 64.0 * std::f32::consts::TAU;
            mu.extend([2.0 * a.cos(), 2.0 * a.sin()]);
            sigma.extend([0.3, 0.3]);
        }
        let c = gaussian_mixture(&mu, &sigma, 2, (0, 1));
        let centre = c.n / 2;
        let (q0, p0) = (c.q[centre * c.n + centre], c.p[centre * c.n + centre]);
        assert!(q0 < HOLE_RATIO * p0, "q {q0} p {p0}");
        assert!(c.hole_share > 0.3 && c.hole_share < 0.9, "{}", c.hole_share);
    }

    #[test]
    fn an_identity_flow_gives_the_gaussian_mixture() {
        let centres = vec![0.5, -0.2, -1.0, 1.0];
        let a = flow_mixture(&centres, 0.7, &PlainFlow::default());
        let b = gaussian_mixture(&centres, &[0.7; 4], 2, (0, 1));
        for (x, y) in a.q.iter().zip(&b.q) {
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
        assert!((a.hole_share - b.hole_share).abs() < 1e-6);
    }
}
