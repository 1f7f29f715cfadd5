//! Prior coverage (seeds/003): the aggregate posterior `q(z) = mean_i N(z; mu_i, sigma_i^2)`
//! on a grid over the plane, against the prior (`N(0, I)`, or the CVAE's mixture of class
//! Gaussians), and the share of the prior's mass where `q(z) < 0.1 p(z)`: the "holes" a sampler
//! falls into. Points (codes without uncertainty) and posteriors narrower than a small kernel
//! get the kernel's width. For a latent space above two dimensions the grid is over two chosen
//! dimensions, and both densities are the exact marginals there.

use super::PlainFlow;

/// The least standard deviation a posterior is given on the grid: points get this kernel, and
/// a sigma below it is raised to it (`max(sigma, kernel)`, continuous in sigma).
pub const POINT_KERNEL: f32 = 0.1;

/// The prior the holes are measured against, on the grid's two axes.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Prior {
    /// `N(0, I)`.
    #[default]
    Standard,
    /// The CVAE's `(1/K) sum_y N(mu_y, I)`, by the class means' coordinates on the two axes.
    ClassMixture(Vec<[f32; 2]>),
}

impl Prior {
    /// The CVAE's mixture from its class means (row-major `[classes, d]`) on `axes`.
    pub fn class_mixture(means: &[f32], d: usize, axes: (usize, usize)) -> Self {
        Prior::ClassMixture(
            means
                .chunks_exact(d.max(1))
                .map(|m| [m[axes.0], m.get(axes.1).copied().unwrap_or(0.0)])
                .collect(),
        )
    }

    /// The density at `(x, y)` of the prior's marginal on the two axes.
    pub fn density(&self, x: f32, y: f32) -> f32 {
        let unit = |x: f32, y: f32| (-(x * x + y * y) / 2.0).exp() / std::f32::consts::TAU;
        match self {
            Prior::Standard => unit(x, y),
            Prior::ClassMixture(means) if means.is_empty() => unit(x, y),
            Prior::ClassMixture(means) => {
                means.iter().map(|m| unit(x - m[0], y - m[1])).sum::<f32>() / means.len() as f32
            }
        }
    }
}

/// A posterior's standard deviation as the grid sees it.
fn widened(sigma: f32) -> f32 {
    sigma.abs().max(POINT_KERNEL)
}
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

    fn finish(n: usize, extent: f32, axes: (usize, usize), q: Vec<f32>, prior: &Prior) -> Self {
        let cell = 2.0 * extent / n as f32;
        let centre = |i: usize| -extent + (i as f32 + 0.5) * cell;
        let mut p = Vec::with_capacity(n * n);
        for r in 0..n {
            for c in 0..n {
                p.push(prior.density(centre(c), centre(r)));
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

/// The aggregate posterior of diagonal Gaussians (or points, where sigma is 0) over `axes`,
/// against `prior`. `mu` and `sigma` are row-major `[samples, d]`.
pub fn gaussian_mixture(
    mu: &[f32],
    sigma: &[f32],
    d: usize,
    axes: (usize, usize),
    prior: &Prior,
) -> Coverage {
    let (n, extent) = (GRID, EXTENT);
    let mut q = vec![0.0f32; n * n];
    let samples = mu.len() / d.max(1);
    for i in 0..samples {
        let s = |a: usize| widened(sigma[i * d + a]);
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
    Coverage::finish(n, extent, axes, q, prior)
}

/// The f-VAE's aggregate posterior in the prior's space of a 2-D latent, exactly:
/// `q(z) = mean_i N(F^-1(z); E_i, sigma1^2 I) |det dF^-1/dz|` (a sigma1 below the point kernel
/// is raised to it, in the pre-flow space), against `N(0, I)`.
pub fn flow_mixture(centres: &[f32], sigma1: f32, flow: &PlainFlow) -> Coverage {
    let (n, extent) = (GRID, EXTENT);
    let cell = 2.0 * extent / n as f32;
    let samples = centres.len() / 2;
    let sigma1 = widened(sigma1);
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
    Coverage::finish(n, extent, (0, 1), q, &Prior::Standard)
}

/// The f-VAE's aggregate posterior on dims 0 and 1 of a latent of any dimension `d`, by
/// sampling through the flow: `per_centre` draws `w = E_i + sigma1 u`, `u ~ N(0, I_d)`, per
/// centre, pushed to `z = F(w)`, their first two coordinates spread by the point kernel (a
/// kernel density estimate), against `N(0, I)`. [`flow_mixture`] is exact for `d = 2`.
pub fn flow_sampled(
    centres: &[f32],
    d: usize,
    sigma1: f32,
    flow: &PlainFlow,
    per_centre: usize,
    seed: u64,
) -> Coverage {
    let mut rng = crate::rng::Rng::new(seed);
    let mut points = Vec::with_capacity(centres.len() / d.max(1) * per_centre * 2);
    let mut w = vec![0.0f32; d];
    for e in centres.chunks_exact(d.max(1)) {
        for _ in 0..per_centre {
            for (wi, ei) in w.iter_mut().zip(e) {
                *wi = ei + sigma1 * rng.normal();
            }
            let (z, _) = flow.forward(&w);
            points.extend([z[0], z.get(1).copied().unwrap_or(0.0)]);
        }
    }
    let kernel = vec![POINT_KERNEL; points.len()];
    gaussian_mixture(&points, &kernel, 2, (0, 1), &Prior::Standard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prior_itself_has_no_holes_and_a_point_has_almost_only_holes() {
        // Many unit Gaussians at the origin: q = p.
        let mu = vec![0.0; 20];
        let sigma = vec![1.0; 20];
        let c = gaussian_mixture(&mu, &sigma, 2, (0, 1), &Prior::Standard);
        assert!(c.hole_share < 1e-6, "{}", c.hole_share);
        let cell_area = c.cell() * c.cell();
        let mass: f32 = c.q.iter().sum::<f32>() * cell_area;
        assert!((mass - 1.0).abs() < 0.01, "q integrates to {mass}");
        // One point at (3, 3): the prior's bulk is uncovered.
        let c = gaussian_mixture(&[3.0, 3.0], &[0.0, 0.0], 2, (0, 1), &Prior::Standard);
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
        let c = gaussian_mixture(&mu, &sigma, 2, (0, 1), &Prior::Standard);
        let centre = c.n / 2;
        let (q0, p0) = (c.q[centre * c.n + centre], c.p[centre * c.n + centre]);
        assert!(q0 < HOLE_RATIO * p0, "q {q0} p {p0}");
        assert!(c.hole_share > 0.3 && c.hole_share < 0.9, "{}", c.hole_share);
    }

    #[test]
    fn an_identity_flow_gives_the_gaussian_mixture() {
        let centres = vec![0.5, -0.2, -1.0, 1.0];
        let a = flow_mixture(&centres, 0.7, &PlainFlow::default());
        let b = gaussian_mixture(&centres, &[0.7; 4], 2, (0, 1), &Prior::Standard);
        for (x, y) in a.q.iter().zip(&b.q) {
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
        assert!((a.hole_share - b.hole_share).abs() < 1e-6);
    }

    /// One affine coupling in `d` dimensions (dims after the first half move), not the identity.
    fn coupling(d: usize) -> PlainFlow {
        use crate::explore::{Dense, PlainCoupling};
        let (inputs, outputs) = (d / 2, d - d / 2);
        let dense = |w: f32, b: f32| Dense {
            inputs,
            outputs,
            weights: vec![w; inputs * outputs],
            bias: vec![b; outputs],
        };
        PlainFlow {
            layers: vec![PlainCoupling {
                net: Vec::new(),
                log_scale: dense(0.5, 0.2),
                shift: dense(0.7, -0.3),
                flip: false,
            }],
        }
    }

    #[test]
    fn sampling_through_the_flow_agrees_with_the_exact_coverage() {
        let centres = vec![0.5, -0.2, -1.0, 1.0, 1.5, 0.5, -0.5, -1.5];
        let (sigma1, flow) = (0.6, coupling(2));
        let exact = flow_mixture(&centres, sigma1, &flow);
        let sampled = flow_sampled(&centres, 2, sigma1, &flow, 4000, 7);
        assert!(
            (exact.hole_share - sampled.hole_share).abs() < 0.03,
            "exact {} sampled {}",
            exact.hole_share,
            sampled.hole_share
        );
        // In 3-D through the identity, the sample's shadow on dims 0 and 1 is the exact
        // marginal N(E_01, sigma1^2), widened by the kernel.
        let centres3 = vec![0.5, -0.2, 3.0, -1.0, 1.0, -2.0];
        let sampled = flow_sampled(&centres3, 3, sigma1, &PlainFlow::default(), 20_000, 9);
        let widened = (sigma1 * sigma1 + POINT_KERNEL * POINT_KERNEL).sqrt();
        let exact = gaussian_mixture(&centres3, &[widened; 6], 3, (0, 1), &Prior::Standard);
        let cell = exact.cell() * exact.cell();
        let l1: f32 = exact
            .q
            .iter()
            .zip(&sampled.q)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            * cell;
        assert!(l1 < 0.08, "L1 distance {l1}");
        assert!((exact.hole_share - sampled.hole_share).abs() < 0.03);
        // Through a real coupling in 3-D, the flow moves the mass: the result differs from the
        // mixture at F(E) with sigma1 that was used before.
        let flow3 = coupling(3);
        let sampled = flow_sampled(&centres3, 3, sigma1, &flow3, 4000, 9);
        let moved: Vec<f32> = centres3
            .chunks(3)
            .flat_map(|e| flow3.forward(e).0)
            .collect();
        let naive = gaussian_mixture(&moved, &[sigma1; 6], 3, (0, 1), &Prior::Standard);
        let l1: f32 = naive
            .q
            .iter()
            .zip(&sampled.q)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            * cell;
        assert!(l1 > 0.1, "the flow changed nothing: L1 {l1}");
    }

    #[test]
    fn the_kernel_is_continuous_in_sigma() {
        let share = |s: f32| gaussian_mixture(&[0.5, 0.5], &[s, s], 2, (0, 1), &Prior::Standard);
        let (below, at) = (share(POINT_KERNEL - 1e-4), share(POINT_KERNEL));
        for (a, b) in below.q.iter().zip(&at.q) {
            assert!((a - b).abs() <= 1e-3 * b.max(1e-6), "{a} vs {b}");
        }
    }

    #[test]
    fn the_cvae_mixture_prior_has_no_holes_under_its_own_aggregate() {
        // Unit Gaussians at the class means: q is the mixture prior itself.
        let means = [[-2.0f32, 0.0], [2.0, 0.0], [0.0, 2.5]];
        let prior = Prior::ClassMixture(means.to_vec());
        let mu: Vec<f32> = means.iter().cycle().take(30).flatten().copied().collect();
        let sigma = vec![1.0; mu.len()];
        let c = gaussian_mixture(&mu, &sigma, 2, (0, 1), &prior);
        assert!(c.hole_share < 1e-6, "{}", c.hole_share);
        // Against N(0, I) the same aggregate leaves the origin's neighbourhood thin but no
        // hole, and the brute-force share over the grid matches the reported one.
        let standard = gaussian_mixture(&mu, &sigma, 2, (0, 1), &Prior::Standard);
        let brute: f64 = {
            let (mut holes, mut total) = (0.0f64, 0.0f64);
            for r in 0..standard.n {
                for k in 0..standard.n {
                    let (x, y) = (standard.centre(k), standard.centre(r));
                    let p = Prior::Standard.density(x, y) as f64;
                    total += p;
                    if (standard.q[r * standard.n + k] as f64) < 0.1 * p {
                        holes += p;
                    }
                }
            }
            holes / total
        };
        assert!((brute - standard.hole_share as f64).abs() < 1e-6);
        // A posterior mass far from every class mean leaves the mixture prior's bulk uncovered.
        let far = gaussian_mixture(&[0.0, -3.0], &[0.2, 0.2], 2, (0, 1), &prior);
        assert!(far.hole_share > 0.95, "{}", far.hole_share);
    }
}
