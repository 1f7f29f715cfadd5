//! How well a linear read-out of the latent codes predicts each known generative factor: a
//! least-squares fit (with an intercept and a small ridge) on one half of the samples, scored
//! on the other half.
//!
//! - a linear factor scores the R^2 of its prediction (1: perfect; 0: no better than the mean;
//!   negative: worse);
//! - a circular factor (hue, rotation) the mean R^2 of its cosine and sine, so that both ends
//!   of its range are one value;
//! - a categorical factor the share of samples whose largest predicted one-hot entry is their
//!   category.

use crate::data::{Factor, FactorKind};

/// Ridge on the normal equations, relative to their diagonal's mean.
const RIDGE: f64 = 1e-6;

/// One score per factor (see the module's notes) of the codes `mu` (`d` per sample) against
/// `factors` (`info.len()` per sample, in `info`'s order). `None` where there are too few
/// samples to fit and test (fewer than `2 (d + 2)`).
pub fn factor_readout(mu: &[f32], d: usize, factors: &[f32], info: &[Factor]) -> Vec<Option<f32>> {
    let k = info.len();
    let n = if d == 0 || k == 0 {
        0
    } else {
        (mu.len() / d).min(factors.len() / k)
    };
    if n < 2 * (d + 2) {
        return vec![None; k];
    }
    // Alternate samples: even ones fit, odd ones test.
    let fit: Vec<usize> = (0..n).step_by(2).collect();
    let test: Vec<usize> = (1..n).step_by(2).collect();
    // Each sample's code with a 1 for the intercept.
    let rows: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            let mut r: Vec<f64> = mu[i * d..(i + 1) * d].iter().map(|&v| v as f64).collect();
            r.push(1.0);
            r
        })
        .collect();
    let solver = Solver::new(&fit.iter().map(|&i| rows[i].clone()).collect::<Vec<_>>());
    info.iter()
        .enumerate()
        .map(|(j, factor)| {
            let values: Vec<f64> = (0..n).map(|i| factors[i * k + j] as f64).collect();
            // What is fitted, each over every sample.
            let targets: Vec<Vec<f64>> = match factor.kind {
                FactorKind::Linear => vec![values.clone()],
                FactorKind::Circular(period) => {
                    let w = std::f64::consts::TAU / period as f64;
                    vec![
                        values.iter().map(|v| (w * v).cos()).collect(),
                        values.iter().map(|v| (w * v).sin()).collect(),
                    ]
                }
                FactorKind::Categorical(c) => (0..c)
                    .map(|c| {
                        values
                            .iter()
                            .map(|v| f64::from(v.round() as usize == c))
                            .collect()
                    })
                    .collect(),
            };
            // Each target's prediction on the test half.
            let predictions: Vec<Vec<f64>> = targets
                .iter()
                .map(|t| {
                    let w = solver.solve(&fit.iter().map(|&i| t[i]).collect::<Vec<_>>());
                    test.iter()
                        .map(|&i| rows[i].iter().zip(&w).map(|(a, b)| a * b).sum())
                        .collect()
                })
                .collect();
            let score = match factor.kind {
                FactorKind::Categorical(_) => {
                    let right = test
                        .iter()
                        .enumerate()
                        .filter(|&(r, &i)| {
                            let best = (0..predictions.len())
                                .max_by(|&a, &b| predictions[a][r].total_cmp(&predictions[b][r]));
                            best == Some(values[i].round() as usize)
                        })
                        .count();
                    right as f64 / test.len() as f64
                }
                _ => {
                    let r2: f64 = targets
                        .iter()
                        .zip(&predictions)
                        .map(|(t, p)| {
                            let y: Vec<f64> = test.iter().map(|&i| t[i]).collect();
                            r_squared(&y, p)
                        })
                        .sum();
                    r2 / targets.len() as f64
                }
            };
            Some(score as f32)
        })
        .collect()
}

/// `1 - SS_res / SS_tot` (0 when the targets do not vary and the fit is exact, else -inf is
/// avoided by flooring SS_tot).
fn r_squared(y: &[f64], prediction: &[f64]) -> f64 {
    let mean = y.iter().sum::<f64>() / y.len().max(1) as f64;
    let ss_tot: f64 = y.iter().map(|v| (v - mean).powi(2)).sum();
    let ss_res: f64 = y.iter().zip(prediction).map(|(v, p)| (v - p).powi(2)).sum();
    1.0 - ss_res / ss_tot.max(1e-12)
}

/// The ridge-regularised normal equations of one design matrix, factorised once (Cholesky).
struct Solver {
    /// The rows, kept for the right-hand sides.
    rows: Vec<Vec<f64>>,
    /// Lower-triangular factor `L` of `X^T X + ridge I`, row-major `m x m`.
    l: Vec<f64>,
    m: usize,
}

impl Solver {
    fn new(rows: &[Vec<f64>]) -> Self {
        let m = rows.first().map_or(0, Vec::len);
        let mut a = vec![0.0; m * m];
        for r in rows {
            for i in 0..m {
                for j in 0..=i {
                    a[i * m + j] += r[i] * r[j];
                }
            }
        }
        let diag = (0..m).map(|i| a[i * m + i]).sum::<f64>() / m.max(1) as f64;
        for i in 0..m {
            a[i * m + i] += RIDGE * diag.max(1e-12);
        }
        // Cholesky in place on the lower triangle.
        let mut l = vec![0.0; m * m];
        for i in 0..m {
            for j in 0..=i {
                let s: f64 = (0..j).map(|p| l[i * m + p] * l[j * m + p]).sum();
                if i == j {
                    l[i * m + i] = (a[i * m + i] - s).max(1e-300).sqrt();
                } else {
                    l[i * m + j] = (a[i * m + j] - s) / l[j * m + j];
                }
            }
        }
        Self {
            rows: rows.to_vec(),
            l,
            m,
        }
    }

    /// The weights of the least-squares fit of `y` (one target per row).
    fn solve(&self, y: &[f64]) -> Vec<f64> {
        let m = self.m;
        let mut b = vec![0.0; m];
        for (r, &t) in self.rows.iter().zip(y) {
            for (bi, ri) in b.iter_mut().zip(r) {
                *bi += ri * t;
            }
        }
        // L z = b, then L^T w = z.
        let mut z = vec![0.0; m];
        for i in 0..m {
            let s: f64 = (0..i).map(|p| self.l[i * m + p] * z[p]).sum();
            z[i] = (b[i] - s) / self.l[i * m + i];
        }
        let mut w = vec![0.0; m];
        for i in (0..m).rev() {
            let s: f64 = (i + 1..m).map(|p| self.l[p * m + i] * w[p]).sum();
            w[i] = (z[i] - s) / self.l[i * m + i];
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn factor(name: &str, kind: FactorKind) -> Factor {
        Factor {
            name: name.into(),
            kind,
        }
    }

    #[test]
    fn a_code_that_holds_a_factor_linearly_reads_it_out_and_noise_does_not() {
        let mut rng = Rng::new(3);
        let n = 2000;
        let (mut mu, mut factors) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let (x, hue, noise) = (rng.uniform(), rng.uniform(), rng.uniform());
            let class = rng.below(3) as f32;
            let angle = std::f32::consts::TAU * hue;
            // dims: 2x - 1 (exact), the hue as a point on a circle, the class, and noise.
            mu.extend([2.0 * x - 1.0, angle.cos(), angle.sin(), class, rng.normal()]);
            factors.extend([x, hue, class, noise]);
        }
        let info = [
            factor("x", FactorKind::Linear),
            factor("hue", FactorKind::Circular(1.0)),
            factor("class", FactorKind::Categorical(3)),
            factor("noise", FactorKind::Linear),
        ];
        let s: Vec<f32> = factor_readout(&mu, 5, &factors, &info)
            .into_iter()
            .map(Option::unwrap)
            .collect();
        assert!(s[0] > 0.999, "x is read out exactly: {s:?}");
        assert!(s[1] > 0.999, "the hue's circle is read out exactly: {s:?}");
        // A linear read-out of a class index 0, 1, 2 as one-hot targets: the middle class
        // is not linearly separable from one dimension, the outer two are.
        assert!(s[2] > 0.6, "{s:?}");
        assert!(s[3].abs() < 0.02, "unrelated noise scores about 0: {s:?}");
    }

    #[test]
    fn the_least_squares_fit_matches_a_closed_form() {
        // y = 3 a - 2 b + 0.5 exactly: the weights come back.
        let rows: Vec<Vec<f64>> = (0..50)
            .map(|i| vec![(i as f64).sin(), (i as f64 * 0.7).cos(), 1.0])
            .collect();
        let y: Vec<f64> = rows.iter().map(|r| 3.0 * r[0] - 2.0 * r[1] + 0.5).collect();
        let w = Solver::new(&rows).solve(&y);
        for (got, want) in w.iter().zip([3.0, -2.0, 0.5]) {
            assert!((got - want).abs() < 1e-4, "{w:?}");
        }
    }

    #[test]
    fn too_few_samples_give_no_score() {
        let info = [factor("x", FactorKind::Linear)];
        assert_eq!(factor_readout(&[0.0; 10], 2, &[0.0; 5], &info), vec![None]);
        assert!(factor_readout(&[], 2, &[], &[]).is_empty());
    }
}
