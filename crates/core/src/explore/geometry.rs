//! Latent-space geometry: the inverse-CDF grid of a standard normal (Kingma & Welling's
//! manifold figure), interpolation paths, and ellipse outlines.

/// The inverse CDF of the standard normal (Acklam's rational approximation, |error| < 1.2e-9
/// relative before rounding to f32), for `p` in (0, 1).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383_577_518_672_69e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// The standard normal CDF (Abramowitz & Stegun 7.1.26; error below 1.5e-7).
pub fn normal_cdf(x: f64) -> f64 {
    let u = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * u);
    let poly = ((((1.061_405_429 * t - 1.453_152_027) * t + 1.421_413_741) * t - 0.284_496_736)
        * t
        + 0.254_829_592)
        * t;
    let erf = 1.0 - poly * (-u * u).exp();
    0.5 * (1.0 + erf.copysign(x))
}

/// The quantile at `p` of the equal mixture `(1/K) sum_k N(m_k, 1)`, by bisection on its CDF.
pub fn mixture_quantile(p: f64, means: &[f64]) -> f64 {
    if means.is_empty() {
        return normal_quantile(p);
    }
    let cdf = |x: f64| means.iter().map(|m| normal_cdf(x - m)).sum::<f64>() / means.len() as f64;
    let (mut lo, mut hi) = (
        means.iter().copied().fold(f64::INFINITY, f64::min) - 10.0,
        means.iter().copied().fold(f64::NEG_INFINITY, f64::max) + 10.0,
    );
    for _ in 0..80 {
        let mid = 0.5 * (lo + hi);
        if cdf(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// The `n x n` manifold grid over the prior: points `(F0^-1(u), F1^-1(v))` for `u, v` evenly
/// spaced in `(0, 1)` at `(i + 0.5) / n`, `F` the prior's marginal CDF on dims 0 and 1 (the
/// standard normal, or the CVAE's mixture of unit Gaussians at its class means, row-major
/// `[classes, latent_dim]`), rows from top (large second coordinate) to bottom. Other dims are
/// at the prior's mean. Returns `n * n * latent_dim` values.
pub fn manifold_grid(n: usize, latent_dim: usize, class_means: Option<&[f32]>) -> Vec<f32> {
    let d = latent_dim;
    let means_of = |a: usize| -> Vec<f64> {
        class_means.map_or_else(Vec::new, |m| {
            m.chunks_exact(d.max(1)).map(|c| c[a] as f64).collect()
        })
    };
    let axis = |a: usize| -> Vec<f32> {
        let means = means_of(a);
        (0..n)
            .map(|i| mixture_quantile((i as f64 + 0.5) / n as f64, &means) as f32)
            .collect()
    };
    let (q0, q1) = (axis(0), if d > 1 { axis(1) } else { Vec::new() });
    let centre: Vec<f32> = (0..d)
        .map(|a| {
            let m = means_of(a);
            if m.is_empty() {
                0.0
            } else {
                (m.iter().sum::<f64>() / m.len() as f64) as f32
            }
        })
        .collect();
    let mut out = Vec::with_capacity(n * n * d);
    for row in 0..n {
        for &x in &q0 {
            let mut z = centre.clone();
            if d > 0 {
                z[0] = x;
            }
            if d > 1 {
                z[1] = q1[n - 1 - row];
            }
            out.extend(z);
        }
    }
    out
}

/// How to move between two latent points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PathKind {
    /// A straight line.
    Linear,
    /// Spherical interpolation (slerp), which keeps the norm typical of the prior.
    Spherical,
}

/// The point a fraction `t` in `[0, 1]` of the way from `a` to `b`.
pub fn interpolate(a: &[f32], b: &[f32], t: f32, kind: PathKind) -> Vec<f32> {
    let lerp = || a.iter().zip(b).map(|(x, y)| x + t * (y - x)).collect();
    match kind {
        PathKind::Linear => lerp(),
        PathKind::Spherical => {
            let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
            let (na, nb) = (norm(a), norm(b));
            if na < 1e-6 || nb < 1e-6 {
                return lerp();
            }
            let cos =
                (a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>() / (na * nb)).clamp(-1.0, 1.0);
            let omega = cos.acos();
            if omega.sin().abs() < 1e-5 {
                return lerp();
            }
            let (wa, wb) = (
                ((1.0 - t) * omega).sin() / omega.sin(),
                (t * omega).sin() / omega.sin(),
            );
            a.iter().zip(b).map(|(x, y)| wa * x + wb * y).collect()
        }
    }
}

/// `steps` points evenly spaced from `a` to `b` inclusive, concatenated.
pub fn interpolation_path(a: &[f32], b: &[f32], steps: usize, kind: PathKind) -> Vec<f32> {
    (0..steps)
        .flat_map(|i| interpolate(a, b, i as f32 / (steps.max(2) - 1) as f32, kind))
        .collect()
}

/// `segments` points on the ellipse with centre `(cx, cy)` and semi-axes `(rx, ry)`.
pub fn ellipse_outline(cx: f32, cy: f32, rx: f32, ry: f32, segments: usize) -> Vec<[f32; 2]> {
    (0..segments)
        .map(|i| {
            let a = std::f32::consts::TAU * i as f32 / segments as f32;
            [cx + rx * a.cos(), cy + ry * a.sin()]
        })
        .collect()
}

/// The f-VAE's posterior outline: the sigma1-circle around the pre-flow centre `centre` (in the
/// plane of `dims`; other coordinates stay at the centre's) pushed through the flow, as `n`
/// points of the prior's space in those two dims.
pub fn warped_outline(
    flow: &super::PlainFlow,
    centre: &[f32],
    sigma1: f32,
    dims: [usize; 2],
    n: usize,
) -> Vec<[f32; 2]> {
    (0..n)
        .map(|k| {
            let a = k as f32 / n as f32 * std::f32::consts::TAU;
            let mut w = centre.to_vec();
            w[dims[0]] += sigma1 * a.cos();
            w[dims[1]] += sigma1 * a.sin();
            let (z, _) = flow.forward(&w);
            [z[dims[0]], z[dims[1]]]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_matches_known_values() {
        assert!(normal_quantile(0.5).abs() < 1e-9);
        assert!((normal_quantile(0.975) - 1.959_963_985).abs() < 1e-6);
        assert!((normal_quantile(0.001) + 3.090_232_306).abs() < 1e-6);
    }

    #[test]
    fn manifold_grid_is_symmetric_and_ordered() {
        let g = manifold_grid(20, 2, None);
        assert_eq!(g.len(), 800);
        // First point: leftmost column, top row.
        assert!(g[0] < -1.9 && g[1] > 1.9);
        // Symmetric about zero.
        assert!((g[0] + g[2 * 19]).abs() < 1e-6);
    }

    #[test]
    fn the_mixture_quantile_inverts_the_mixture_cdf() {
        // One component: a shifted normal quantile.
        assert!((mixture_quantile(0.975, &[1.0]) - (1.0 + 1.959_964)).abs() < 1e-4);
        assert!((normal_cdf(1.959_964) - 0.975).abs() < 1e-6);
        // A symmetric pair: the median is the centre, and the CDF at each quantile is p.
        let means = [-2.0, 2.0];
        assert!(mixture_quantile(0.5, &means).abs() < 1e-6);
        for p in [0.01, 0.2, 0.7, 0.99] {
            let x = mixture_quantile(p, &means);
            let cdf = (normal_cdf(x + 2.0) + normal_cdf(x - 2.0)) / 2.0;
            assert!((cdf - p).abs() < 1e-9, "{p}: {cdf}");
        }
        // The CVAE's grid spans its classes: a mean at (4, 0) pulls the grid to the right.
        let g = manifold_grid(10, 2, Some(&[0.0, 0.0, 4.0, 0.0]));
        let xs: Vec<f32> = g.chunks_exact(2).take(10).map(|z| z[0]).collect();
        assert!(xs[0] < -1.0 && xs[9] > 5.0, "{xs:?}");
    }

    #[test]
    fn paths_hit_their_ends_and_slerp_keeps_norm() {
        let (a, b) = ([1.0f32, 0.0], [0.0f32, 1.0]);
        let p = interpolation_path(&a, &b, 10, PathKind::Linear);
        assert_eq!(&p[..2], &a);
        assert_eq!(&p[18..], &b);
        let mid = interpolate(&a, &b, 0.5, PathKind::Spherical);
        let norm = (mid[0] * mid[0] + mid[1] * mid[1]).sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
}
