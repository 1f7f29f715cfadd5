//! CSV tables of a run: metrics (train and test rows) and the probe set's posteriors.

use std::fmt::Write;

use crate::train::{Snapshot, StepMetrics, TestMetrics};

/// `metrics.csv`: one row per training step (`kind = train`) and one per test evaluation
/// (`kind = test`), with the KL of every latent dimension.
pub fn metrics_csv(train: &[StepMetrics], test: &[TestMetrics], latent_dim: usize) -> String {
    let mut out = String::from(
        "kind,step,epoch,reconstruction,kl,total,kl_weight,neg_elbo,nll_is,nll_samples",
    );
    for d in 0..latent_dim {
        let _ = write!(out, ",kl_dim_{d}");
    }
    out.push('\n');
    let dims = |out: &mut String, v: &[f32]| {
        for k in v {
            let _ = write!(out, ",{k}");
        }
        out.push('\n');
    };
    for m in train {
        let _ = write!(
            out,
            "train,{},{},{},{},{},{},,,",
            m.step, m.epoch, m.reconstruction, m.kl, m.total, m.kl_weight
        );
        dims(&mut out, &m.kl_per_dim);
    }
    for m in test {
        let nll = m.nll.map(|v| v.to_string()).unwrap_or_default();
        let _ = write!(
            out,
            "test,{},{},{},{},{},1,{},{},{}",
            m.step, m.epoch, m.reconstruction, m.kl, m.neg_elbo, m.neg_elbo, nll, m.nll_samples
        );
        dims(&mut out, &m.kl_per_dim);
    }
    out
}

/// `latent.csv`: per probe sample its test-split index, label, posterior mean and standard
/// deviation.
pub fn latent_csv(snapshot: &Snapshot) -> String {
    let d = snapshot.latent_dim;
    let mut out = String::from("test_index,label");
    for i in 0..d {
        let _ = write!(out, ",mu_{i}");
    }
    for i in 0..d {
        let _ = write!(out, ",sigma_{i}");
    }
    out.push('\n');
    for i in 0..snapshot.probe.len() {
        let _ = write!(
            out,
            "{},{}",
            snapshot.probe.indices[i], snapshot.probe.labels[i]
        );
        for v in snapshot.mu_of(i).iter().chain(snapshot.sigma_of(i)) {
            let _ = write!(out, ",{v}");
        }
        out.push('\n');
    }
    out
}

/// Reads back a `metrics.csv` written by [`metrics_csv`]: its train and test rows. Rows that do
/// not parse are skipped.
pub fn parse_metrics_csv(text: &str) -> (Vec<StepMetrics>, Vec<TestMetrics>) {
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split(',').collect();
        if cols.len() < 10 {
            continue;
        }
        let f = |i: usize| cols[i].parse::<f32>().ok();
        let (Ok(step), Ok(epoch)) = (cols[1].parse::<u64>(), cols[2].parse::<usize>()) else {
            continue;
        };
        let dims: Vec<f32> = cols[10..].iter().filter_map(|c| c.parse().ok()).collect();
        match cols[0] {
            "train" => {
                let (Some(reconstruction), Some(kl), Some(total), Some(kl_weight)) =
                    (f(3), f(4), f(5), f(6))
                else {
                    continue;
                };
                train.push(StepMetrics {
                    step,
                    epoch,
                    epoch_progress: 0.0,
                    reconstruction,
                    kl,
                    total,
                    kl_weight,
                    kl_per_dim: dims,
                });
            }
            "test" => {
                let (Some(reconstruction), Some(kl), Some(neg_elbo)) = (f(3), f(4), f(7)) else {
                    continue;
                };
                test.push(TestMetrics {
                    step,
                    epoch,
                    reconstruction,
                    kl,
                    neg_elbo,
                    nll: f(8),
                    nll_samples: cols[9].parse().unwrap_or(0),
                    nll_images: 0,
                    kl_per_dim: dims,
                });
            }
            _ => {}
        }
    }
    (train, test)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_round_trip_through_csv() {
        let train = vec![StepMetrics {
            step: 3,
            epoch: 1,
            epoch_progress: 0.0,
            reconstruction: 150.5,
            kl: 4.25,
            total: 154.75,
            kl_weight: 1.0,
            kl_per_dim: vec![2.0, 2.25],
        }];
        let test = vec![TestMetrics {
            step: 3,
            epoch: 1,
            reconstruction: 149.0,
            kl: 4.5,
            neg_elbo: 153.5,
            nll: Some(150.25),
            nll_samples: 100,
            nll_images: 0,
            kl_per_dim: vec![2.0, 2.5],
        }];
        let (t, e) = parse_metrics_csv(&metrics_csv(&train, &test, 2));
        assert_eq!(t, train);
        assert_eq!(e, test);
    }
}
