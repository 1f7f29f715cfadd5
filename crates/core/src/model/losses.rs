//! The loss terms of the VAE family, in one place, each checked against a closed form.
//!
//! Notation: `mu` and `logvar` are the posterior's mean and log-variance, `[batch, latent]`;
//! `logits` the decoder's output before the sigmoid and `x` the target, `[batch, pixels]`.

use burn::tensor::Tensor;

/// ln(2 pi).
pub const LN_2PI: f32 = 1.837_877_1;

/// KL(N(mu, sigma^2) || N(0, I)) per latent dimension:
/// `1/2 (mu^2 + sigma^2 - log sigma^2 - 1)`.
///
/// # Shapes
///   mu, logvar `[batch, latent]` -> `[batch, latent]`
pub fn kl_standard_normal(mu: Tensor<2>, logvar: Tensor<2>) -> Tensor<2> {
    (mu.square() + logvar.clone().exp() - logvar - 1.0) * 0.5
}

/// KL(N(mu, sigma^2) || N(mean, I)) per latent dimension, the CVAE's term with a class mean
/// (seeds/000, eq. 8): `1/2 ((mu - mean)^2 + sigma^2 - log sigma^2 - 1)`.
///
/// # Shapes
///   mu, logvar, mean `[batch, latent]` -> `[batch, latent]`
pub fn kl_to_mean(mu: Tensor<2>, logvar: Tensor<2>, mean: Tensor<2>) -> Tensor<2> {
    kl_standard_normal(mu - mean, logvar)
}

/// Bernoulli negative log-likelihood (binary cross-entropy with logits), summed over pixels:
/// `-x log sigmoid(l) - (1 - x) log(1 - sigmoid(l)) = softplus(l) - x l`.
///
/// On the flex backend this is one fused pass forward and one backward
/// ([`crate::fused::bernoulli_nll`]); other backends compose it from the stable `log_sigmoid`.
///
/// # Shapes
///   logits, x `[batch, pixels]` -> `[batch]`
pub fn bernoulli_nll(logits: Tensor<2>, x: Tensor<2>) -> Tensor<1> {
    crate::fused::bernoulli_nll(logits, x)
}

/// Gaussian negative log-likelihood with a fixed standard deviation `sigma` around the
/// decoder mean `sigmoid(logits)`, summed over pixels:
/// `|x - mean|^2 / (2 sigma^2) + D/2 log(2 pi sigma^2)`.
///
/// # Shapes
///   logits, x `[batch, pixels]` -> `[batch]`
pub fn gaussian_nll(logits: Tensor<2>, x: Tensor<2>, sigma: f32) -> Tensor<1> {
    let pixels = x.dims()[1] as f32;
    let constant = 0.5 * pixels * (LN_2PI + 2.0 * sigma.ln());
    let mean = burn::tensor::activation::sigmoid(logits);
    ((mean - x).square().sum_dim(1) / (2.0 * sigma * sigma) + constant).squeeze_dim(1)
}

/// Half the width of one of the 256 grey levels in `[0, 1]`.
const HALF_LEVEL: f32 = 0.5 / 255.0;

/// Discretised logistic negative log-likelihood (Salimans et al. 2017, one component) of
/// 8-bit values `x` in `[0, 1]` around the decoder mean `sigmoid(logits)` with a fixed `scale`,
/// summed over pixel values: each value's level takes the logistic's mass over its bin of
/// width 1/255, the first and last levels take the tails, so the 256 probabilities sum to one
/// and the figure is a normalised likelihood of the bytes.
///
/// # Shapes
///   logits, x `[batch, pixels]` -> `[batch]`
pub fn logistic_nll(logits: Tensor<2>, x: Tensor<2>, scale: f32) -> Tensor<1> {
    use burn::tensor::activation::{log_sigmoid, sigmoid, softplus};
    let centred = (x.clone() - sigmoid(logits)) / scale;
    let step = HALF_LEVEL / scale;
    let (upper, lower) = (centred.clone() + step, centred.clone() - step);
    let mass = sigmoid(upper.clone()) - sigmoid(lower.clone());
    // Far out in a tail the difference of two CDFs cancels: there the bin's mass is its width
    // times the density at its centre.
    let density = centred.clone() - 2.0 * softplus(centred, 1.0) + (2.0 * step).ln();
    let thin = mass.clone().lower_elem(1e-5);
    let interior = mass.clamp_min(1e-30).log().mask_where(thin, density);
    let log_p = interior
        .mask_where(x.clone().lower_elem(HALF_LEVEL), log_sigmoid(upper))
        .mask_where(x.greater_elem(1.0 - HALF_LEVEL), log_sigmoid(lower.neg()));
    log_p.sum_dim(1).neg().squeeze_dim(1)
}

/// Gaussian negative log-likelihood with a trained standard deviation `exp(log_sigma)` (one
/// scalar, the f-VAE's sigma2) around `sigmoid(logits)`, summed over pixels:
/// `|x - mean|^2 / (2 sigma^2) + D log sigma + D/2 log(2 pi)`.
///
/// # Shapes
///   logits, x `[batch, pixels]`, log_sigma `[1]` -> `[batch]`
pub fn gaussian_nll_trained(logits: Tensor<2>, x: Tensor<2>, log_sigma: Tensor<1>) -> Tensor<1> {
    let pixels = x.dims()[1] as f32;
    let mean = burn::tensor::activation::sigmoid(logits);
    let inv_var = (log_sigma.clone() * -2.0).exp().unsqueeze_dim::<2>(0);
    let squared = (mean - x).square().sum_dim(1) * inv_var * 0.5;
    (squared + (log_sigma * pixels).unsqueeze_dim::<2>(0) + 0.5 * pixels * LN_2PI).squeeze_dim(1)
}

/// Log-density of a diagonal Gaussian `N(mean, exp(logvar))` at `z`, summed over dimensions.
///
/// # Shapes
///   z, mean, logvar `[batch, latent]` -> `[batch]`
pub fn log_normal(z: Tensor<2>, mean: Tensor<2>, logvar: Tensor<2>) -> Tensor<1> {
    let d = z.dims()[1] as f32;
    let mahalanobis = (z - mean).square() * logvar.clone().neg().exp();
    ((mahalanobis + logvar).sum_dim(1) * -0.5 - 0.5 * d * LN_2PI).squeeze_dim(1)
}

/// Log-density of the standard normal at `z`, summed over dimensions.
///
/// # Shapes
///   z `[batch, latent]` -> `[batch]`
pub fn log_standard_normal(z: Tensor<2>) -> Tensor<1> {
    let d = z.dims()[1] as f32;
    (z.square().sum_dim(1) * -0.5 - 0.5 * d * LN_2PI).squeeze_dim(1)
}

/// The importance-weighted bound per image (Burda et al. 2016): `log mean_k w_k` over each
/// image's `k` log-weights `log w = log p(x|z) + log p(z) - log q(z|x)`, with `z` the
/// reparameterised draws, so the gradient flows through them as in the paper. Stable: the
/// largest weight is taken out before exponentiating. `k = 1` is the one-draw ELBO.
///
/// # Shapes
///   log_w `[k * batch]` (draw `j` of image `i` at `j * batch + i`) -> `[batch]`
pub fn iw_bound(log_w: Tensor<1>, k: usize) -> Tensor<1> {
    let batch = log_w.dims()[0] / k.max(1);
    let log_w = log_w.reshape([k, batch]);
    // The shift cancels in value and in gradient; held constant, it keeps exp finite.
    let max = log_w.clone().max_dim(0).detach();
    let sum = (log_w - max.clone()).exp().sum_dim(0);
    (sum.log() + max).squeeze_dim(0) - (k as f32).ln()
}

/// `log(mean(exp(values)))`, computed stably on the host.
pub fn log_mean_exp(values: &[f32]) -> f32 {
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return max;
    }
    let sum: f64 = values.iter().map(|&v| ((v - max) as f64).exp()).sum();
    max + (sum / values.len() as f64).ln() as f32
}

/// The sum over `m` images of `-log mean_k w_k`, from `k * m` log weights laid out draw-major
/// (`log_w[j * m + i]` is image i's draw j, as `repeat_dim(0, k)` lays out their inputs).
pub fn sum_neg_log_mean_exp(log_w: &[f32], m: usize, k: usize) -> f64 {
    (0..m)
        .map(|i| {
            let per_image: Vec<f32> = (0..k).map(|j| log_w[j * m + i]).collect();
            -log_mean_exp(&per_image) as f64
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::batch::{to_tensor, to_vec};
    use crate::rng::Rng;
    use burn::tensor::Device;

    fn device() -> Device {
        Device::flex()
    }

    fn t(values: &[f32], rows: usize, cols: usize) -> Tensor<2> {
        to_tensor(values.to_vec(), rows, cols, &device())
    }

    #[test]
    fn kl_is_zero_at_the_prior() {
        let kl = to_vec(kl_standard_normal(t(&[0.0; 6], 3, 2), t(&[0.0; 6], 3, 2)));
        assert!(kl.iter().all(|&v| v.abs() < 1e-7), "{kl:?}");
    }

    #[test]
    fn kl_matches_the_closed_form() {
        let (mu, logvar) = ([0.5f32, -1.2, 2.0, 0.0], [0.3f32, -0.7, 1.1, -2.0]);
        let kl = to_vec(kl_standard_normal(t(&mu, 2, 2), t(&logvar, 2, 2)));
        for i in 0..4 {
            let expected = 0.5 * (mu[i].powi(2) + logvar[i].exp() - logvar[i] - 1.0);
            assert!(
                (kl[i] - expected).abs() < 1e-6,
                "{i}: {} vs {expected}",
                kl[i]
            );
        }
    }

    #[test]
    fn kl_agrees_with_a_monte_carlo_estimate() {
        // KL = E_q[log q(z) - log p(z)], estimated with 200,000 draws from q.
        let (mu, logvar) = ([0.8f32, -0.4], [-0.5f32, 0.6]);
        let closed: f32 = to_vec(kl_standard_normal(t(&mu, 1, 2), t(&logvar, 1, 2)))
            .iter()
            .sum();
        let n = 200_000;
        let mut rng = Rng::new(5);
        let mut z = Vec::with_capacity(2 * n);
        for _ in 0..n {
            for d in 0..2 {
                z.push(mu[d] + (0.5 * logvar[d]).exp() * rng.normal());
            }
        }
        let z = t(&z, n, 2);
        let mean = t(&mu, 1, 2).repeat_dim(0, n);
        let lv = t(&logvar, 1, 2).repeat_dim(0, n);
        let diff = log_normal(z.clone(), mean, lv) - log_standard_normal(z);
        let estimate = to_vec(diff.mean())[0];
        assert!(
            (estimate - closed).abs() < 0.01,
            "MC {estimate} vs closed {closed}"
        );
    }

    #[test]
    fn bernoulli_nll_matches_the_definition_and_stays_finite() {
        let logits = [-3.0f32, 0.0, 2.5, 100.0, -100.0, 0.7];
        let x = [0.0f32, 1.0, 0.3, 1.0, 0.0, 1.0];
        let nll = to_vec(bernoulli_nll(t(&logits, 2, 3), t(&x, 2, 3)));
        let sig = |l: f32| 1.0 / (1.0 + (-l as f64).exp());
        let term = |l: f32, x: f32| {
            let p = sig(l).clamp(1e-300, 1.0 - 1e-16);
            -(x as f64 * p.ln() + (1.0 - x as f64) * (1.0 - p).ln())
        };
        let expected0: f64 = (0..3).map(|i| term(logits[i], x[i])).sum();
        assert!(
            (nll[0] as f64 - expected0).abs() < 1e-4,
            "{} vs {expected0}",
            nll[0]
        );
        assert!(nll[1].is_finite() && nll[1] < 1.0, "{}", nll[1]);
    }

    #[test]
    fn the_discretised_logistic_sums_to_one_over_the_levels_and_matches_its_cdf() {
        let cdf = |v: f64| 1.0 / (1.0 + (-v).exp());
        for (mean, scale) in [(0.3f32, 0.05f32), (0.0001, 0.02), (0.97, 0.2), (0.5, 0.001)] {
            let logit = (mean / (1.0 - mean)).ln();
            let levels: Vec<f32> = (0..256).map(|i| i as f32 / 255.0).collect();
            let nll = to_vec(logistic_nll(
                t(&vec![logit; 256], 256, 1),
                t(&levels, 256, 1),
                scale,
            ));
            let total: f64 = nll.iter().map(|&v| (-f64::from(v)).exp()).sum();
            assert!((total - 1.0).abs() < 1e-3, "{mean} {scale}: mass {total}");
            // An interior level near the mean: the CDF's difference over its bin.
            let i = (mean * 255.0).round().clamp(1.0, 254.0) as usize;
            let (m, s, x) = (f64::from(mean), f64::from(scale), i as f64 / 255.0);
            let h = 0.5 / 255.0;
            let expected = -(cdf((x + h - m) / s) - cdf((x - h - m) / s)).ln();
            assert!(
                (f64::from(nll[i]) - expected).abs() < 1e-3 * expected.abs().max(1.0),
                "{mean} {scale}: level {i}: {} vs {expected}",
                nll[i]
            );
        }
    }

    #[test]
    fn gaussian_nll_matches_the_density() {
        let nll = to_vec(gaussian_nll(
            t(&[0.0, 0.0], 1, 2),
            t(&[0.5, 1.0], 1, 2),
            0.5,
        ));
        // mean = sigmoid(0) = 0.5 for both pixels.
        let expected = (0.0 + 0.25) / (2.0 * 0.25) + 2.0 * 0.5 * (LN_2PI + 2.0 * 0.5f32.ln());
        assert!((nll[0] - expected).abs() < 1e-5, "{} vs {expected}", nll[0]);
    }

    #[test]
    fn kl_to_the_class_mean_is_zero_there_and_matches_the_closed_form() {
        let mean = [0.7f32, -1.5, 2.0, 0.1];
        let at_mean = to_vec(kl_to_mean(
            t(&mean, 2, 2),
            t(&[0.0; 4], 2, 2),
            t(&mean, 2, 2),
        ));
        assert!(at_mean.iter().all(|&v| v.abs() < 1e-7), "{at_mean:?}");
        let (mu, logvar) = ([0.0f32, 1.0, -1.0, 0.5], [0.2f32, -0.3, 0.0, 1.0]);
        let kl = to_vec(kl_to_mean(t(&mu, 2, 2), t(&logvar, 2, 2), t(&mean, 2, 2)));
        for i in 0..4 {
            let expected = 0.5 * ((mu[i] - mean[i]).powi(2) + logvar[i].exp() - logvar[i] - 1.0);
            assert!(
                (kl[i] - expected).abs() < 1e-6,
                "{i}: {} vs {expected}",
                kl[i]
            );
        }
    }

    #[test]
    fn trained_gaussian_nll_equals_the_fixed_one_at_the_same_sigma() {
        let (logits, x) = (
            t(&[0.3, -1.0, 2.0, 0.0], 2, 2),
            t(&[0.5, 0.1, 0.9, 1.0], 2, 2),
        );
        let fixed = to_vec(gaussian_nll(logits.clone(), x.clone(), 0.3));
        let log_sigma = Tensor::<1>::from_floats([0.3f32.ln()], &device());
        let trained = to_vec(gaussian_nll_trained(logits, x, log_sigma));
        for (a, b) in fixed.iter().zip(&trained) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    #[test]
    fn the_iw_bound_matches_a_brute_force_log_mean_exp_per_image() {
        let (k, batch) = (7, 5);
        let mut rng = Rng::new(4);
        // Large magnitudes too: a naive exp would overflow or vanish.
        let values: Vec<f32> = rng
            .normals(k * batch)
            .iter()
            .enumerate()
            .map(|(i, v)| v * 3.0 - if i % 2 == 0 { 900.0 } else { 20.0 })
            .collect();
        let got = to_vec(iw_bound(
            Tensor::<1>::from_floats(values.as_slice(), &device()),
            k,
        ));
        for (i, &g) in got.iter().enumerate() {
            let per_image: Vec<f32> = (0..k).map(|j| values[j * batch + i]).collect();
            let want = log_mean_exp(&per_image);
            assert!((g - want).abs() < 1e-3, "image {i}: {g} against {want}");
        }
        // One draw: the log-weight itself.
        let one = to_vec(iw_bound(
            Tensor::<1>::from_floats(&values[..batch], &device()),
            1,
        ));
        assert_eq!(one, values[..batch]);
    }

    /// A linear-Gaussian model in one dimension, `p(z) = N(0, 1)`, `p(x|z) = N(z, s2)`, with
    /// a posterior `q = N(m, v)` that is not the true one: `log p(x) = log N(x; 0, 1 + s2)` is
    /// known, and the ELBO has a closed form. The bound's mean rises with `k` from the ELBO
    /// towards `log p(x)`, and never past it.
    #[test]
    fn the_iw_bound_rises_with_k_from_the_elbo_towards_the_log_likelihood() {
        let (x, s2, m, v) = (1.5f32, 0.5f32, 0.7f32, 0.25f32);
        let ln2pi = LN_2PI;
        let log_px = -0.5 * (ln2pi + (1.0 + s2).ln()) - x * x / (2.0 * (1.0 + s2));
        let elbo = -0.5 * (ln2pi + s2.ln())
            - ((x - m).powi(2) + v) / (2.0 * s2)
            - 0.5 * ln2pi
            - (m * m + v) / 2.0
            + 0.5 * (ln2pi + v.ln())
            + 0.5;
        let mut rng = Rng::new(9);
        let images = 2000;
        let mean_bound = |k: usize, rng: &mut Rng| -> f32 {
            let eps = t(&rng.normals(k * images), k * images, 1);
            let z = eps * v.sqrt() + m;
            let full = |value: f32| Tensor::<2>::full([k * images, 1], value, &device());
            let log_w = log_normal(full(x), z.clone(), full(s2.ln()))
                + log_standard_normal(z.clone())
                - log_normal(z, full(m), full(v.ln()));
            let bound = to_vec(iw_bound(log_w, k));
            bound.iter().sum::<f32>() / images as f32
        };
        let bounds: Vec<f32> = [1, 5, 50, 500]
            .iter()
            .map(|&k| mean_bound(k, &mut rng))
            .collect();
        // About four standard errors of 2,000 images each.
        assert!(
            (bounds[0] - elbo).abs() < 0.04,
            "K = 1: {} against the ELBO {elbo}",
            bounds[0]
        );
        assert!(
            bounds[0] < bounds[1] && bounds[1] < bounds[2],
            "the bound rises with K: {bounds:?}"
        );
        assert!(log_px - elbo > 0.15, "the posterior is off: a gap to close");
        assert!(
            bounds[3] <= log_px + 0.005,
            "{bounds:?} past log p(x) = {log_px}"
        );
        assert!(
            log_px - bounds[3] < 0.015,
            "{bounds:?} against log p(x) = {log_px}"
        );
    }

    #[test]
    fn log_mean_exp_is_stable() {
        assert!((log_mean_exp(&[1000.0, 1000.0]) - 1000.0).abs() < 1e-3);
        let v = log_mean_exp(&[0.0, (3.0f32).ln()]);
        assert!((v - 2.0f32.ln()).abs() < 1e-6);
    }
}
