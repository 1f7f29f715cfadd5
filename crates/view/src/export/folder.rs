//! The one writer of a run's folder: every view as a PNG, `metrics.csv`, `latent.csv` and
//! `scores.csv`, from a [`RunView`] and the [`ViewChoices`] that shape the pictures. The
//! window's Save run and Export all use it with the user's choices; `train` on the command line
//! uses it with the defaults after every epoch. (The checkpoint itself is written by the
//! thread that owns the model.)

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use image::RgbaImage;

use super::{csv, views};
use crate::run::RunView;
use crate::scene::samples::{SampleRequest, sample_columns, sample_points, sample_title};
use crate::scene::{Census, Marks, Scene, SceneOptions};
use latent_atlas_core::explore::geometry::PathKind;
use latent_atlas_core::fsio::atomic_write;
use latent_atlas_core::train::Snapshot;

/// The views that export as images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// The latent plane with every posterior.
    Plane,
    /// Loss curves.
    Curves,
    /// Prior samples at temperature T.
    Samples,
    /// The interpolation strip or grid.
    Interpolation,
    /// The decoded manifold.
    Manifold,
    /// Inputs beside reconstructions.
    Reconstructions,
    /// The aggregate posterior against the prior, with its holes.
    Coverage,
}

impl View {
    /// Every view.
    pub const ALL: [View; 7] = [
        View::Plane,
        View::Curves,
        View::Samples,
        View::Interpolation,
        View::Manifold,
        View::Reconstructions,
        View::Coverage,
    ];

    /// The exported file's name.
    pub fn file_name(self) -> &'static str {
        match self {
            View::Plane => "latent_plane.png",
            View::Curves => "curves.png",
            View::Samples => "samples.png",
            View::Interpolation => "interpolation.png",
            View::Manifold => "manifold.png",
            View::Reconstructions => "reconstructions.png",
            View::Coverage => "prior_coverage.png",
        }
    }

    /// A button label.
    pub fn title(self) -> &'static str {
        match self {
            View::Plane => "Latent plane",
            View::Curves => "Curves",
            View::Samples => "Samples",
            View::Interpolation => "Interpolation",
            View::Manifold => "Manifold",
            View::Reconstructions => "Reconstructions",
            View::Coverage => "Prior coverage",
        }
    }
}

/// The user's marks on the plane, in latent coordinates: projected onto a scene's plane by
/// [`MarkChoices::marks`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MarkChoices {
    /// The temperature circle's radius (0: none).
    pub temperature: f32,
    /// Pinned points.
    pub pins: Vec<Vec<f32>>,
    /// Draw the path between the first two pins.
    pub path: bool,
    /// The handle on the path.
    pub handle: Option<Vec<f32>>,
    /// The decoded preview point.
    pub preview: Option<Vec<f32>>,
    /// A probe image's importance draws and their normalised weights.
    pub draws: Option<(Vec<Vec<f32>>, Vec<f32>)>,
}

impl MarkChoices {
    /// The marks on `scene`'s plane (none in the f-VAE's pre-flow space, where pins do not live).
    pub fn marks(&self, scene: &Scene) -> Marks {
        if scene.pre_flow {
            return Marks::default();
        }
        Marks::new(
            &scene.axes,
            self.temperature,
            &self.pins,
            self.path,
            self.handle.as_deref(),
            self.preview.as_deref(),
        )
        .with_draws(&scene.axes, self.draws.as_ref())
    }
}

/// What shapes the exported pictures: the window's current choices, or the defaults (the
/// window's own defaults) for the command line.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewChoices {
    /// Width of the latent plane and the curves, in pixels.
    pub size: u32,
    /// The plane's projection and layers.
    pub scene: SceneOptions,
    /// Pins, path, handle and preview.
    pub marks: MarkChoices,
    /// Prior temperature of the samples.
    pub temperature: f32,
    /// Seed of the samples' noise.
    pub noise_seed: u64,
    /// CVAE: the class sampled (`None`: a column per class).
    pub sample_class: Option<usize>,
    /// The interpolation's latent points and columns; `None`: a strip between two test samples
    /// of different classes, framed by the inputs.
    pub interpolation: Option<(Vec<f32>, usize)>,
    /// Logarithmic loss axis.
    pub log_scale: bool,
}

impl Default for ViewChoices {
    fn default() -> Self {
        Self {
            size: 1000,
            scene: SceneOptions::default(),
            marks: MarkChoices {
                temperature: 1.0,
                path: true,
                ..MarkChoices::default()
            },
            temperature: 1.0,
            noise_seed: 0,
            sample_class: None,
            interpolation: None,
            log_scale: false,
        }
    }
}

impl ViewChoices {
    /// The samples grid's request for `snapshot`.
    pub fn sample_request(&self, snapshot: &Snapshot) -> SampleRequest {
        SampleRequest {
            step: snapshot.key(),
            temperature: self.temperature,
            noise_seed: self.noise_seed,
            class: self.sample_class,
        }
    }

    /// The latent plane of `snapshot`, and a census of what was painted.
    pub fn plane(&self, snapshot: &Snapshot, size: u32) -> (RgbaImage, Census) {
        let scene = Scene::build(snapshot, &self.scene);
        views::latent_plane(&scene, &self.marks.marks(&scene), size)
    }
}

/// Renders one view of `run` (its `shown` snapshot), or says why it cannot.
pub fn render(
    run: &RunView,
    shown: Option<&Snapshot>,
    choices: &ViewChoices,
    view: View,
) -> anyhow::Result<RgbaImage> {
    let size = choices.size.clamp(200, 8000);
    let Some(snapshot) = shown else {
        return match view {
            View::Curves => Ok(curves(run, choices, size)),
            _ => anyhow::bail!("nothing to export yet: the model has no snapshot"),
        };
    };
    let decoder = &snapshot.decoder;
    Ok(match view {
        View::Curves => curves(run, choices, size),
        View::Plane => choices.plane(snapshot, size).0,
        View::Samples => {
            let request = choices.sample_request(snapshot);
            views::image_grid(
                &sample_title(snapshot, &request),
                &decoder.decode_many(&sample_points(snapshot, &request)),
                decoder.width,
                decoder.height,
                sample_columns(snapshot, &request),
                (size / 300).max(1),
            )
        }
        View::Coverage => {
            let c = snapshot.coverage.as_ref().ok_or_else(|| {
                anyhow::anyhow!("this snapshot has no prior coverage (it is computed with each snapshot while training)")
            })?;
            views::coverage(c, size / 2)
        }
        View::Interpolation => match &choices.interpolation {
            Some((points, cols)) => {
                let scale = (size / (*cols as u32 * decoder.width as u32).max(1)).max(1);
                views::image_grid(
                    "interpolation",
                    &decoder.decode_many(points),
                    decoder.width,
                    decoder.height,
                    *cols,
                    scale,
                )
            }
            None => {
                let (a, b) = views::interpolation_ends(snapshot);
                views::interpolation(snapshot, a, b, 10, PathKind::Linear)
            }
        },
        View::Manifold => views::manifold(decoder, 20, snapshot.view.class_means.as_deref()),
        View::Reconstructions => views::reconstructions(snapshot, 32),
    })
}

/// The loss curves as a chart.
fn curves(run: &RunView, choices: &ViewChoices, size: u32) -> RgbaImage {
    let c = &run.curves;
    let series = [
        (
            "reconstruction",
            c.reconstruction.smoothed(0.05),
            [31, 119, 180, 255],
        ),
        ("KL", c.kl.smoothed(0.05), [214, 39, 40, 255]),
        ("total", c.total.smoothed(0.05), [44, 160, 44, 255]),
        (
            "test negative ELBO",
            c.test_elbo.points().to_vec(),
            [0, 0, 0, 255],
        ),
    ];
    views::line_chart(
        "loss per step (nats)",
        &series,
        choices.log_scale,
        size,
        size * 5 / 8,
    )
}

/// Where exported files go: a folder on disk, or memory (the browser's downloads).
pub trait Sink {
    /// Keeps `bytes` as the file `name`; returns where it went, as a notice names it.
    fn put(&mut self, name: &str, bytes: &[u8]) -> anyhow::Result<String>;
}

/// A folder on disk, created when the first file arrives; each file is written atomically.
pub struct Folder(pub PathBuf);

impl Sink for Folder {
    fn put(&mut self, name: &str, bytes: &[u8]) -> anyhow::Result<String> {
        let dir = &self.0;
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
        let path = dir.join(name);
        atomic_write(&path, bytes)?;
        Ok(path.display().to_string())
    }
}

/// Files kept in memory, in the order they came.
#[derive(Debug, Default)]
pub struct Memory(pub Vec<(String, Vec<u8>)>);

impl Sink for Memory {
    fn put(&mut self, name: &str, bytes: &[u8]) -> anyhow::Result<String> {
        self.0.retain(|(n, _)| n != name);
        self.0.push((name.to_owned(), bytes.to_vec()));
        Ok(name.to_owned())
    }
}

/// An image as PNG bytes.
pub fn png_bytes(image: &RgbaImage) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| anyhow::anyhow!("cannot encode PNG: {e}"))?;
    Ok(bytes)
}

/// Writes one view into `sink`; returns where it went.
pub fn write_view(
    run: &RunView,
    shown: Option<&Snapshot>,
    choices: &ViewChoices,
    view: View,
    sink: &mut dyn Sink,
) -> anyhow::Result<String> {
    let png = png_bytes(&render(run, shown, choices, view)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", view.file_name()))?;
    sink.put(view.file_name(), &png)
}

/// What [`write_all`] wrote and what it skipped (with why).
#[derive(Debug, Default)]
pub struct Written {
    /// Where the files went.
    pub files: Vec<String>,
    /// The views that could not be drawn, with the reason.
    pub skipped: Vec<String>,
}

/// One part of [`write_all`]'s work, written by [`write_part`]: a page takes one a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// One view as a PNG.
    View(View),
    /// `metrics.csv` and `curves.svg`.
    Metrics,
    /// The shown snapshot's codes (`latent.csv`, the `.npy` arrays, the Projector's files) and
    /// `latent_plane.svg`.
    Codes,
    /// `scores.csv`, once there are scores.
    Scores,
}

/// The parts of [`write_all`], in order: every view (but prior coverage for a family without
/// an encoder, which has no posteriors to miss), the metrics, the codes and the scores.
pub fn all_parts(run: &RunView) -> Vec<Part> {
    View::ALL
        .into_iter()
        .filter(|&v| v != View::Coverage || run.config.model.draws().encoder)
        .map(Part::View)
        .chain([Part::Metrics, Part::Codes, Part::Scores])
        .collect()
}

/// Writes one part into `sink`, noting in `out` what went where (a view that cannot be drawn
/// is noted as skipped, with why).
pub fn write_part(
    run: &RunView,
    shown: Option<&Snapshot>,
    choices: &ViewChoices,
    part: Part,
    sink: &mut dyn Sink,
    out: &mut Written,
) -> anyhow::Result<()> {
    match part {
        Part::View(view) => match write_view(run, shown, choices, view, sink) {
            Ok(p) => out.files.push(p),
            Err(e) => out.skipped.push(format!("{}: {e}", view.title())),
        },
        Part::Metrics => {
            let d = run.config.latent_dim;
            let metrics = csv::metrics_csv(run.train_rows.iter(), &run.tests, d);
            out.files.push(sink.put("metrics.csv", metrics.as_bytes())?);
            let curves = super::svg::curves_svg(run);
            out.files.push(sink.put("curves.svg", curves.as_bytes())?);
        }
        Part::Codes => {
            let Some(s) = shown else { return Ok(()) };
            out.files
                .push(sink.put("latent.csv", csv::latent_csv(s).as_bytes())?);
            let plane = super::svg::plane_svg(&Scene::build(s, &choices.scene));
            let [mu, sigma, labels] = super::latents::latent_arrays(s);
            let (vectors, metadata) = super::latents::projector_tsv(s);
            for (name, bytes) in [
                ("latent_mu.npy", mu),
                ("latent_sigma.npy", sigma),
                ("latent_labels.npy", labels),
                ("projector_vectors.tsv", vectors.into_bytes()),
                ("projector_metadata.tsv", metadata.into_bytes()),
                ("latent_plane.svg", plane.into_bytes()),
            ] {
                out.files.push(sink.put(name, &bytes)?);
            }
        }
        Part::Scores => {
            if !run.scores.is_empty() {
                let scores = csv::scores_csv(&run.scores);
                out.files.push(sink.put("scores.csv", scores.as_bytes())?);
            }
        }
    }
    Ok(())
}

/// Writes every view that can be drawn, `metrics.csv`, the shown snapshot's codes
/// (`latent.csv`, `latent_mu.npy`, `latent_sigma.npy`, `latent_labels.npy` and the TensorBoard
/// Projector's `projector_vectors.tsv` and `projector_metadata.tsv`) and `scores.csv` (once
/// there are scores) into `sink`, with `latent_plane.svg` and `curves.svg` for papers.
pub fn write_all(
    run: &RunView,
    shown: Option<&Snapshot>,
    choices: &ViewChoices,
    sink: &mut dyn Sink,
    progress: &Progress,
) -> anyhow::Result<Written> {
    let mut out = Written::default();
    let parts = all_parts(run);
    progress.start(parts.len());
    for part in parts {
        write_part(run, shown, choices, part, sink, &mut out)?;
        progress.tick();
    }
    Ok(out)
}

/// Writes `latent_plane.gif`: the latent plane at every snapshot of the run's timeline.
pub fn write_gif(
    run: &RunView,
    choices: &ViewChoices,
    sink: &mut dyn Sink,
    progress: &Progress,
) -> anyhow::Result<String> {
    if run.timeline.is_empty() {
        anyhow::bail!("no snapshots yet to animate");
    }
    // One tick per frame, and the encoding counted as a tenth of the work.
    progress.start(run.timeline.len() * 10 / 9 + 1);
    let frames: Vec<RgbaImage> = (0..run.timeline.len())
        .map(|i| {
            progress.tick();
            gif_frame(run, choices, i)
        })
        .collect();
    put_gif(&frames, sink)
}

/// Frame `i` of `latent_plane.gif`: the latent plane at the timeline's `i`-th snapshot.
pub fn gif_frame(run: &RunView, choices: &ViewChoices, i: usize) -> RgbaImage {
    let scene = Scene::build(&run.timeline[i].snapshot, &choices.scene);
    views::latent_plane(&scene, &Marks::default(), 480).0
}

/// Encodes `frames` as `latent_plane.gif` into `sink`.
pub fn put_gif(frames: &[RgbaImage], sink: &mut dyn Sink) -> anyhow::Result<String> {
    if frames.is_empty() {
        anyhow::bail!("no snapshots yet to animate");
    }
    sink.put("latent_plane.gif", &views::gif(frames, 120)?)
}

/// Progress of an export: steps done out of a total, shared with whoever shows it.
#[derive(Clone, Default)]
pub struct Progress {
    done: Arc<AtomicUsize>,
    total: Arc<AtomicUsize>,
    notify: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl Progress {
    /// Progress that calls `notify` at each step (the window asks for a repaint).
    pub fn new(notify: Arc<dyn Fn() + Send + Sync>) -> Self {
        Self {
            notify: Some(notify),
            ..Self::default()
        }
    }

    /// Starts counting `total` steps.
    pub fn start(&self, total: usize) {
        self.done.store(0, Ordering::Relaxed);
        self.total.store(total.max(1), Ordering::Relaxed);
    }

    /// One step done.
    pub fn tick(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if let Some(r) = &self.notify {
            r();
        }
    }

    /// The share done, in `[0, 1]`.
    pub fn share(&self) -> f32 {
        let total = self.total.load(Ordering::Relaxed).max(1);
        (self.done.load(Ordering::Relaxed) as f32 / total as f32).min(1.0)
    }
}
