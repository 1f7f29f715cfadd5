//! Samples from the prior at temperature T: `z = mode + T eps`, the mode being the origin, a
//! CVAE class's mean, or (every class) each column's class mean. The window's samples tab and
//! `samples.png` draw the same points.

use latent_atlas_core::rng::Rng;
use latent_atlas_core::train::Snapshot;

/// Samples per row of the grid.
const COLS: usize = 8;

/// What the samples grid shows; a change means it must be decoded again.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleRequest {
    /// The snapshot's [`Snapshot::key`] (run and step).
    pub step: u64,
    /// Prior temperature.
    pub temperature: f32,
    /// Seed of the noise.
    pub noise_seed: u64,
    /// CVAE: the class drawn from, or `None` for a row per class (the prior itself for others).
    pub class: Option<usize>,
}

/// Columns of the sample grid: 8, or one per class when every class is shown.
pub fn sample_columns(s: &Snapshot, request: &SampleRequest) -> usize {
    match (s.view.classes(s.latent_dim), request.class) {
        (k, None) if k > 0 => k,
        _ => COLS,
    }
}

/// The latent points of a sample request, row-major for [`sample_columns`] columns.
pub fn sample_points(s: &Snapshot, request: &SampleRequest) -> Vec<f32> {
    let mut rng = Rng::new(request.noise_seed);
    let d = s.latent_dim;
    let classes = s.view.classes(d);
    let modes: Vec<Vec<f32>> = match (classes, request.class) {
        (0, _) => vec![s.prior_mode(None); COLS * COLS],
        (_, Some(c)) => vec![s.prior_mode(Some(c)); COLS * COLS],
        (k, None) => (0..COLS)
            .flat_map(|_| (0..k).map(|c| s.prior_mode(Some(c))))
            .collect(),
    };
    modes
        .iter()
        .flat_map(|m| {
            m.iter()
                .map(|v| v + request.temperature * rng.normal())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The grid's title: what the samples are drawn from.
pub fn sample_title(s: &Snapshot, request: &SampleRequest) -> String {
    let t = request.temperature;
    match (s.view.classes(s.latent_dim), request.class) {
        (0, _) => format!("prior samples, T = {t:.2}"),
        (_, Some(c)) => {
            let name = s.probe.class_names.get(c).cloned().unwrap_or(c.to_string());
            format!("samples of class {name}, z ~ N(mu_y, T^2 I), T = {t:.2}")
        }
        (_, None) => format!("samples per class (a column each), T = {t:.2}"),
    }
}
