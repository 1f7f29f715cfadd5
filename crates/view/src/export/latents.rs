//! The probe set's posteriors for other tools: NumPy arrays (`latent_mu.npy`, `latent_sigma.npy`,
//! `latent_labels.npy`) and the TensorBoard Embedding Projector's two TSV files.

use std::fmt::Write as _;

use latent_atlas_core::codec::npy::write_f32;
use latent_atlas_core::train::Snapshot;

/// `latent_mu.npy`-style arrays of a snapshot: the posterior means `[n, d]`, standard deviations
/// `[n, d]` and labels `[n]` of the probe set.
pub fn latent_arrays(snapshot: &Snapshot) -> [Vec<u8>; 3] {
    let n = snapshot.probe.len();
    let d = snapshot.latent_dim;
    let labels: Vec<f32> = snapshot
        .probe
        .labels
        .iter()
        .map(|&l| f32::from(l))
        .collect();
    [
        write_f32(&[n, d], &snapshot.mu[..n * d]),
        write_f32(
            &[n, d],
            &snapshot.sigma[..(n * d).min(snapshot.sigma.len())],
        ),
        write_f32(&[n], &labels),
    ]
}

/// The TensorBoard Embedding Projector's two files for the probe set: the vectors (posterior
/// means, tab-separated, no header) and the metadata (a header, then label and class name).
pub fn projector_tsv(snapshot: &Snapshot) -> (String, String) {
    let class_names = &snapshot.probe.class_names;
    let mut vectors = String::new();
    let mut metadata = String::from("label\tclass\ttest_index\n");
    for i in 0..snapshot.probe.len() {
        let row: Vec<String> = snapshot.mu_of(i).iter().map(|v| v.to_string()).collect();
        vectors.push_str(&row.join("\t"));
        vectors.push('\n');
        let label = snapshot.probe.labels[i];
        let name = class_names
            .get(label as usize)
            .map_or_else(|| label.to_string(), |n| n.replace(['\t', '\n'], " "));
        let _ = writeln!(metadata, "{label}\t{name}\t{}", snapshot.probe.indices[i]);
    }
    (vectors, metadata)
}
