//! Scores of a generator, the same for every family: prior samples at temperature T are
//! classified (histogram, entropy), class-conditional samples are checked against their class
//! (CVAE), and the Frechet distance compares generated and real images in the classifier's
//! features.

use serde::{Deserialize, Serialize};

use super::{Evaluator, linalg};
use crate::rng::Rng;
use crate::train::Snapshot;

/// What the evaluator measured of one snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Steps completed by the scored model.
    pub step: u64,
    /// Temperature of the samples.
    pub temperature: f32,
    /// Generated samples behind the histogram and the distance.
    pub samples: usize,
    /// Share of prior samples classified as each class.
    pub histogram: Vec<f32>,
    /// Entropy of that histogram, in nats (log of the class count when every class is
    /// equally common).
    pub entropy: f32,
    /// The largest possible entropy, `ln(classes)`.
    pub max_entropy: f32,
    /// Frechet distance between generated and real test images in the classifier's features.
    pub frechet: f32,
    /// Share of class-conditional samples classified as their class (CVAE only).
    pub class_accuracy: Option<f32>,
    /// Share of the probe set's reconstructions (decoded codes or posterior means) classified
    /// as the input's label, for families with an encoder.
    #[serde(default)]
    pub reconstruction_accuracy: Option<f32>,
    /// For a dataset with known factors, how well a linear read-out of the probe set's codes
    /// predicts each (see [`super::readout`]), by factor name.
    #[serde(default)]
    pub factor_readout: Vec<(String, f32)>,
}

/// Entropy in nats of a histogram of shares.
pub fn entropy(histogram: &[f32]) -> f32 {
    histogram
        .iter()
        .filter(|&&p| p > 0.0)
        .map(|&p| -p * p.ln())
        .sum()
}

/// Scores `snapshot`'s generator with `n` samples at temperature `t`. For the CVAE the prior
/// is the even mixture of the class Gaussians, and `n` more samples (an equal share per class)
/// measure the class accuracy.
pub fn score(evaluator: &Evaluator, snapshot: &Snapshot, n: usize, t: f32, seed: u64) -> Scores {
    let d = snapshot.latent_dim;
    let classes = snapshot.view.classes(d);
    let mut rng = Rng::new(seed ^ 0x5C0E);
    let mut points = Vec::with_capacity(n * d);
    for _ in 0..n {
        let class = (classes > 0).then(|| rng.below(classes));
        let mode = snapshot.prior_mode(class);
        points.extend(mode.iter().map(|m| m + t * rng.normal()));
    }
    let images = snapshot.decoder.decode_many(&points);
    let results = evaluator.classifier.classify_many(&images);
    let k = evaluator.classes.max(1);
    let mut histogram = vec![0.0f32; k];
    for (c, _) in &results {
        histogram[(*c).min(k - 1)] += 1.0 / n.max(1) as f32;
    }
    let features: Vec<Vec<f32>> = results.into_iter().map(|(_, f)| f).collect();
    let dim = evaluator.real_mean.len();
    let (mean, cov) = linalg::mean_cov(&features, dim);
    let frechet = linalg::frechet(&mean, &cov, &evaluator.real_mean, &evaluator.real_cov) as f32;

    let class_accuracy = (classes > 0).then(|| {
        let per = n.div_ceil(classes).max(1);
        let mut points = Vec::with_capacity(per * classes * d);
        let mut wanted = Vec::new();
        for c in 0..classes {
            let mode = snapshot.prior_mode(Some(c));
            for _ in 0..per {
                points.extend(mode.iter().map(|m| m + t * rng.normal()));
                wanted.push(c);
            }
        }
        let images = snapshot.decoder.decode_many(&points);
        let got = evaluator.classifier.classify_many(&images);
        let hits = got
            .iter()
            .zip(&wanted)
            .filter(|((p, _), w)| p == *w)
            .count();
        hits as f32 / wanted.len() as f32
    });
    let reconstruction_accuracy = snapshot.family.draws().encoder.then(|| {
        let probe = &snapshot.probe;
        let images = snapshot.decoder.decode_many(&snapshot.mu);
        let got = evaluator.classifier.classify_many(&images);
        let hits = got
            .iter()
            .zip(&probe.labels)
            .filter(|((p, _), l)| *p == **l as usize)
            .count();
        hits as f32 / probe.len().max(1) as f32
    });
    let probe = &snapshot.probe;
    let factor_readout = match snapshot.family.draws().encoder {
        true => super::readout::factor_readout(&snapshot.mu, d, &probe.factors, &probe.factor_info)
            .into_iter()
            .zip(&probe.factor_info)
            .filter_map(|(s, f)| Some((f.name.clone(), s?)))
            .collect(),
        false => Vec::new(),
    };
    Scores {
        factor_readout,
        reconstruction_accuracy,
        step: snapshot.step,
        temperature: t,
        samples: n,
        entropy: entropy(&histogram),
        max_entropy: (k as f32).ln(),
        histogram,
        frechet,
        class_accuracy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_is_zero_for_one_class_and_ln_k_for_even_shares() {
        assert_eq!(entropy(&[0.0, 1.0, 0.0]), 0.0);
        assert!((entropy(&[0.25; 4]) - 4.0f32.ln()).abs() < 1e-6);
    }
}
