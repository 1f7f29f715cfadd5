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
