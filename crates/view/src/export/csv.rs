//! CSV tables of a run: metrics (train and test rows) and the probe set's posteriors.

use std::fmt::Write;

use latent_atlas_core::evaluator::Scores;
use latent_atlas_core::train::{Snapshot, StepMetrics, TestMetrics};

/// `metrics.csv`: one row per training step (`kind = train`) and one per test evaluation
/// (`kind = test`), with the KL of every latent dimension and the family's own values (the
/// BN-VAE's `kl_floor`, the f-VAE's `sigma1` and `sigma2`). Empty cells mean "not defined".
pub fn metrics_csv<'a>(
    train: impl Iterator<Item = &'a StepMetrics> + Clone,
    test: &[TestMetrics],
    latent_dim: usize,
) -> String {
    let mut extras: Vec<&str> = Vec::new();
    for m in train.clone() {
        for (name, _) in &m.extra {
            if !extras.contains(&name.as_str()) {
                extras.push(name);
            }
        }
    }
    let mut out = String::from(
        "kind,step,epoch,reconstruction,kl,total,kl_weight,neg_elbo,nll_is,nll_samples,hole_share,active_units,validation",
    );
    for name in &extras {
        let _ = write!(out, ",{name}");
    }
    for d in 0..latent_dim {
        let _ = write!(out, ",kl_dim_{d}");
    }
    out.push('\n');
    let opt = |v: Option<f32>| v.map(|v| v.to_string()).unwrap_or_default();
    let dims = |out: &mut String, v: &[f32]| {
        for k in v {
            let _ = write!(out, ",{k}");
        }
        out.push('\n');
    };
    for m in train {
        let _ = write!(
            out,
            "train,{},{},{},{},{},{},,,,,,",
            m.step, m.epoch, m.reconstruction, m.kl, m.total, m.kl_weight
        );
        for name in &extras {
            let _ = write!(out, ",{}", opt(m.extra(name)));
        }
        dims(&mut out, &m.kl_per_dim);
    }
    for m in test {
        let _ = write!(
            out,
            "test,{},{},{},{},{},1,{},{},{},{},{},{}",
            m.step,
            m.epoch,
            m.reconstruction,
            m.kl,
            opt(m.neg_elbo.or(Some(m.reconstruction))),
            opt(m.neg_elbo),
            opt(m.nll),
            m.nll_samples,
            opt(m.hole_share),
            m.active_units().map(|u| u.to_string()).unwrap_or_default(),
            opt(m.validation)
        );
        out.push_str(&",".repeat(extras.len()));
        dims(&mut out, &m.kl_per_dim);
    }
    out
}

/// `scores.csv`: the evaluator's scores after each epoch.
pub fn scores_csv(rows: &[Scores]) -> String {
    let classes = rows.first().map_or(0, |r| r.histogram.len());
    let factors: Vec<&str> = rows
        .first()
        .map(|r| r.factor_readout.iter().map(|(n, _)| n.as_str()).collect())
        .unwrap_or_default();
    let mut out = String::from(
        "step,temperature,samples,entropy,max_entropy,frechet,class_accuracy,reconstruction_accuracy",
    );
    for c in 0..classes {
        let _ = write!(out, ",share_class_{c}");
    }
    for f in &factors {
        let _ = write!(out, ",readout_{f}");
    }
    out.push('\n');
    for r in rows {
        let acc = r.class_accuracy.map(|a| a.to_string()).unwrap_or_default();
        let rec = r
            .reconstruction_accuracy
            .map(|a| a.to_string())
            .unwrap_or_default();
        let _ = write!(
            out,
            "{},{},{},{},{},{},{acc},{rec}",
            r.step, r.temperature, r.samples, r.entropy, r.max_entropy, r.frechet
        );
        for h in &r.histogram {
            let _ = write!(out, ",{h}");
        }
        for f in &factors {
            let v = r
                .factor_readout
                .iter()
                .find(|(n, _)| n == f)
                .map(|(_, v)| v);
            let _ = write!(out, ",{}", v.map(|v| v.to_string()).unwrap_or_default());
        }
        out.push('\n');
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

/// Reads back a `metrics.csv` written by [`metrics_csv`]: its train and test rows, columns
/// found by their header names. Rows that do not parse are skipped.
pub fn parse_metrics_csv(text: &str) -> (Vec<StepMetrics>, Vec<TestMetrics>) {
    let (mut train, mut test) = (Vec::new(), Vec::new());
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let dim_cols: Vec<usize> = (0..header.len())
        .filter(|&i| header[i].starts_with("kl_dim_"))
        .collect();
    let fixed = [
        "kind",
        "step",
        "epoch",
        "reconstruction",
        "kl",
        "total",
        "kl_weight",
        "neg_elbo",
        "nll_is",
        "nll_samples",
        "hole_share",
        "active_units",
        "validation",
    ];
    let extra_cols: Vec<usize> = (0..header.len())
        .filter(|&i| !fixed.contains(&header[i]) && !header[i].starts_with("kl_dim_"))
        .collect();
    for line in lines {
        let cols: Vec<&str> = line.split(',').collect();
        let get = |name: &str| col(name).and_then(|i| cols.get(i)).copied().unwrap_or("");
        let f = |name: &str| get(name).parse::<f32>().ok();
        let (Ok(step), Ok(epoch)) = (get("step").parse::<u64>(), get("epoch").parse::<usize>())
        else {
            continue;
        };
        let dims: Vec<f32> = dim_cols
            .iter()
            .filter_map(|&i| cols.get(i).and_then(|c| c.parse().ok()))
            .collect();
        match get("kind") {
            "train" => {
                let (Some(reconstruction), Some(kl), Some(total), Some(kl_weight)) =
                    (f("reconstruction"), f("kl"), f("total"), f("kl_weight"))
                else {
                    continue;
                };
                let extra = extra_cols
                    .iter()
                    .filter_map(|&i| {
                        let v = cols.get(i)?.parse::<f32>().ok()?;
                        Some((header[i].to_owned(), v))
                    })
                    .collect();
                train.push(StepMetrics {
                    step,
                    epoch,
                    epoch_progress: 0.0,
                    reconstruction,
                    kl,
                    total,
                    kl_weight,
                    kl_per_dim: dims,
                    extra,
                });
            }
            "test" => {
                let (Some(reconstruction), Some(kl)) = (f("reconstruction"), f("kl")) else {
                    continue;
                };
                // The file holds the count of active units, not each dimension's activity: a
                // stand-in with that many active dimensions first gives the same count back.
                let mean_activity = match get("active_units").parse::<usize>() {
                    Ok(active) => {
                        let d = dims.len().max(active);
                        (0..d).map(|i| if i < active { 1.0 } else { 0.0 }).collect()
                    }
                    Err(_) => Vec::new(),
                };
                test.push(TestMetrics {
                    step,
                    epoch,
                    reconstruction,
                    kl,
                    neg_elbo: f("neg_elbo"),
                    nll: f("nll_is"),
                    nll_samples: get("nll_samples").parse().unwrap_or(0),
                    nll_images: 0,
                    kl_per_dim: dims,
                    hole_share: f("hole_share"),
                    mean_activity,
                    validation: f("validation"),
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
            extra: vec![("kl_floor".into(), 0.75)],
        }];
        let test = vec![TestMetrics {
            step: 3,
            epoch: 1,
            reconstruction: 149.0,
            kl: 4.5,
            neg_elbo: Some(153.5),
            nll: Some(150.25),
            nll_samples: 100,
            nll_images: 0,
            kl_per_dim: vec![2.0, 2.5],
            hole_share: Some(0.125),
            mean_activity: Vec::new(),
            validation: Some(151.75),
        }];
        let (t, e) = parse_metrics_csv(&metrics_csv(train.iter(), &test, 2));
        assert_eq!(t, train);
        assert_eq!(e, test);
    }
}
