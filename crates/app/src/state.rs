//! The explorer's state, folded from worker events and changed by user actions. Plain data:
//! no egui, no worker, no files, so all of it is testable without a window.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use latent_atlas_core::backend::BackendChoice;
use latent_atlas_core::explore::geometry::{PathKind, interpolate};
use latent_atlas_core::explore::projection::{PlaneAxes, Projection};
use latent_atlas_core::train::{ImportanceDraws, Snapshot, TrainConfig};
use latent_atlas_core::worker::Event;
use latent_atlas_view::export::folder::{MarkChoices, ViewChoices};
use latent_atlas_view::run::RunView;
use latent_atlas_view::scene::samples::SampleRequest;
use latent_atlas_view::scene::{Marks, Scene, SceneOptions};

/// The tabs below the latent plane.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tab {
    /// Loss curves.
    #[default]
    Curves,
    /// Prior samples at temperature T.
    Samples,
    /// Interpolation between pinned points.
    Interpolation,
    /// Inputs beside reconstructions.
    Reconstructions,
}

impl Tab {
    /// Every tab, in display order.
    pub const ALL: [Tab; 4] = [
        Tab::Curves,
        Tab::Samples,
        Tab::Interpolation,
        Tab::Reconstructions,
    ];

    /// The tab's title.
    pub fn title(self) -> &'static str {
        match self {
            Tab::Curves => "Curves",
            Tab::Samples => "Samples",
            Tab::Interpolation => "Interpolation",
            Tab::Reconstructions => "Reconstructions",
        }
    }
}

/// Where the window's settings are remembered: `settings.json` in the platform's configuration
/// folder (beside eframe's own storage, which keeps the window's geometry).
pub fn settings_file() -> Option<std::path::PathBuf> {
    dirs::config_dir().map(|d| d.join("latent-atlas").join("settings.json"))
}

/// Writes the settings to `path` atomically (a temporary file renamed over it), so a crash at
/// any moment leaves the previous settings or the new ones, never a torn file. (eframe's own
/// storage truncates its file and then writes it.)
pub fn write_settings(path: &std::path::Path, settings: &Settings) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    latent_atlas_core::fsio::atomic_write(path, &serde_json::to_vec_pretty(settings)?)
}

/// The settings remembered in `path`, if it holds any.
pub fn read_settings(path: &std::path::Path) -> Option<Settings> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// What persists between launches. Fields added later load from old files with defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The training settings (dataset, model, hyper-parameters).
    pub config: TrainConfig,
    /// The compute backend.
    pub backend: BackendChoice,
    /// Prior temperature for samples.
    pub temperature: f32,
    /// The open tab.
    pub tab: Tab,
    /// Draw posteriors as ellipses (otherwise as points).
    pub show_ellipses: bool,
    /// Draw decoded tiles under the plane.
    pub show_manifold: bool,
    /// Logarithmic loss axis.
    pub log_scale: bool,
    /// How a latent space of more than two dimensions is shown.
    pub projection: Projection,
    /// Straight or spherical interpolation.
    pub path: PathKind,
    /// Images in the interpolation strip.
    pub strip_steps: usize,
    /// Bilinear grid between four pinned points instead of a strip between two.
    pub four_corners: bool,
    /// Folder the export buttons write into.
    pub export_dir: PathBuf,
    /// Width of exported latent-plane images, in pixels.
    pub export_size: u32,
    /// Tint the prior's holes (where the aggregate posterior is below a tenth of the prior).
    pub show_holes: bool,
    /// Draw the aggregate posterior q(z) as a heat map under the plane.
    pub show_density: bool,
    /// f-VAE: show the pre-flow space (E(x) and sigma1 circles) instead of the prior's space.
    pub pre_flow: bool,
    /// CVAE: the class the samples grid draws from (`None`: one row per class).
    pub sample_class: Option<usize>,
    /// Colour posteriors by this known factor of the data (`None`: by class).
    pub colour_by: Option<usize>,
    /// Show the hovered (or first pinned) image's importance draws, sized by weight.
    pub show_draws: bool,
}

/// The device a fresh start trains on: the CPU, except in a page built with WebGPU, which
/// takes the browser's GPU when it offers one (and the CPU otherwise).
fn default_backend() -> BackendChoice {
    match latent_atlas_core::platform::IS_WEB && latent_atlas_core::backend::HAS_GPU {
        true => BackendChoice::Auto,
        false => BackendChoice::Cpu,
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            config: TrainConfig::explorer(),
            backend: default_backend(),
            temperature: 1.0,
            tab: Tab::Curves,
            show_ellipses: true,
            show_manifold: false,
            log_scale: false,
            projection: Projection::default(),
            path: PathKind::Linear,
            strip_steps: 10,
            four_corners: false,
            export_dir: PathBuf::from("latent-atlas-exports"),
            export_size: 1000,
            show_holes: true,
            show_density: false,
            pre_flow: false,
            sample_class: None,
            colour_by: None,
            show_draws: true,
        }
    }
}

/// A point chosen in the latent space: a probe sample's posterior mean, or any point.
#[derive(Clone, Debug, PartialEq)]
pub enum Endpoint {
    /// A probe sample, by index.
    Sample(usize),
    /// A latent point.
    Point(Vec<f32>),
}

/// Notices and errors kept (the newest): the status bar shows the last.
pub const MAX_MESSAGES: usize = 64;

/// The whole explorer state. Cloned for an export, which then runs on its own thread.
#[derive(Clone, Debug, Default)]
pub struct AppState {
    /// What persists.
    pub settings: Settings,
    /// The main run, folded from its worker's events.
    pub main: RunView,
    /// A second run of another family, trained beside the main one for comparison.
    pub compare: Option<RunView>,
    /// The export running, and its share done.
    pub exporting: Option<(String, f32)>,
    /// Timeline position shown (`None`: the newest).
    pub timeline_pos: Option<usize>,
    /// Errors to show, newest last.
    pub errors: Vec<String>,
    /// Notices to show, newest last.
    pub notices: Vec<String>,
    /// Interpolation ends (A, B) and, in four-corner mode, C and D.
    pub pins: Vec<Endpoint>,
    /// Position of the handle on the path from A to B, in `[0, 1]`.
    pub handle_t: f32,
    /// A latent point waiting to be decoded into the preview.
    pub preview_request: Option<Vec<f32>>,
    /// The point the preview shows, and its decoded image.
    pub preview: Option<(Vec<f32>, Vec<f32>)>,
    /// Seed of the sample grid's noise ("new noise" changes it).
    pub noise_seed: u64,
    /// The probe sample whose importance draws the plane shows: the hovered one, else the first
    /// pinned one (set by the plane each frame).
    pub draws_focus: Option<usize>,
    /// The newest importance draws received.
    pub draws: Option<ImportanceDraws>,
    /// A draws request is with the worker (one at a time).
    pub draws_in_flight: bool,
    /// The overlay listing the keyboard and mouse shortcuts is open (F1 or `?`).
    pub shortcuts_open: bool,
}

/// Importance draws shown when the run trains on the ELBO (one draw would say nothing).
pub const DRAWS_FOR_ELBO: usize = 16;

impl AppState {
    /// A fresh state with the given persisted settings.
    pub fn new(settings: Settings) -> Self {
        Self {
            main: RunView::new(settings.config.clone()),
            settings,
            handle_t: 0.5,
            ..Default::default()
        }
    }

    /// Folds one of the main run's worker events into the state.
    pub fn apply(&mut self, event: Event) {
        match &event {
            Event::Ready { config, .. } => {
                self.settings.config = (**config).clone();
                self.timeline_pos = None;
                self.pins.clear();
                self.preview = None;
                self.draws = None;
                self.draws_focus = None;
                self.draws_in_flight = false;
            }
            Event::Draws(d) => {
                self.draws_in_flight = false;
                self.draws = d.clone();
            }
            Event::Notice(n) => self.notices.push(n.clone()),
            Event::Saved(p) => self.notices.push(format!("saved {}", p.display())),
            Event::Failed(e) | Event::ScoringFailed(e) => self.errors.push(e.clone()),
            _ => {}
        }
        for messages in [&mut self.notices, &mut self.errors] {
            let excess = messages.len().saturating_sub(MAX_MESSAGES);
            messages.drain(..excess);
        }
        self.main.apply(event);
    }

    /// Takes the main run's new snapshot: it becomes the current view and joins the timeline.
    pub fn set_snapshot(&mut self, snapshot: Snapshot) {
        self.main.set_snapshot(snapshot);
        // The handle follows the model: re-decode the preview at the same place.
        if let Some((z, _)) = &self.preview {
            self.preview_request = Some(z.clone());
        }
    }

    /// The snapshot to draw: the timeline's chosen frame, or the newest.
    pub fn shown_snapshot(&self) -> Option<&Snapshot> {
        match self.timeline_pos {
            Some(i) => self.main.timeline.get(i).map(|f| &f.snapshot),
            None => self.main.snapshot.as_ref(),
        }
    }

    /// The plane's axes for the shown snapshot.
    pub fn plane_axes(&self) -> Option<PlaneAxes> {
        let s = self.shown_snapshot()?;
        Some(PlaneAxes::new(
            self.settings.projection,
            &s.mu,
            s.latent_dim,
        ))
    }

    /// What shapes the latent plane's scene, from the settings.
    pub fn scene_options(&self) -> SceneOptions {
        let s = &self.settings;
        SceneOptions {
            projection: s.projection,
            ellipses: s.show_ellipses,
            holes: s.show_holes,
            density: s.show_density,
            pre_flow: s.pre_flow,
            tiles: s.show_manifold,
            colour_by: s.colour_by,
        }
    }

    /// The latent plane's scene for `snapshot` (the shown one, or a comparison run's), as the
    /// window draws it and the exports write it.
    pub fn plane_scene(&self, snapshot: &Snapshot) -> Scene {
        Scene::build(snapshot, &self.scene_options())
    }

    /// The user's marks on a scene's plane: pins, the path, the handle and the preview.
    pub fn plane_marks(&self, scene: &Scene) -> Marks {
        self.mark_choices().marks(scene)
    }

    /// The user's marks in latent coordinates.
    pub fn mark_choices(&self) -> MarkChoices {
        MarkChoices {
            temperature: self.settings.temperature,
            pins: self
                .pins
                .iter()
                .filter_map(|e| self.endpoint_z(e))
                .collect(),
            path: !self.settings.four_corners,
            handle: self.handle_point(),
            preview: self.preview.as_ref().map(|(z, _)| z.clone()),
            draws: self.shown_draws(),
        }
    }

    /// What shapes the exported pictures: everything the window shows.
    pub fn view_choices(&self) -> ViewChoices {
        let s = &self.settings;
        ViewChoices {
            size: s.export_size,
            scene: self.scene_options(),
            marks: self.mark_choices(),
            temperature: s.temperature,
            noise_seed: self.noise_seed,
            sample_class: s.sample_class,
            interpolation: self.interpolation_points(),
            log_scale: s.log_scale,
        }
    }

    /// What the samples grid must show now.
    pub fn sample_request(&self) -> Option<SampleRequest> {
        Some(SampleRequest {
            step: self.main.snapshot.as_ref()?.key(),
            temperature: self.settings.temperature,
            noise_seed: self.noise_seed,
            class: self.settings.sample_class,
        })
    }

    /// Sets the temperature, clamped to `[0, 1.5]`.
    pub fn set_temperature(&mut self, t: f32) {
        self.settings.temperature = t.clamp(0.0, 1.5);
    }

    /// New noise for the sample grid.
    pub fn new_noise(&mut self) {
        self.noise_seed = self.noise_seed.wrapping_add(1);
    }

    /// The latent point of an endpoint under the newest snapshot.
    pub fn endpoint_z(&self, e: &Endpoint) -> Option<Vec<f32>> {
        match e {
            Endpoint::Sample(i) => {
                let s = self.main.snapshot.as_ref()?;
                // Without an encoder the plane's points are prior draws: same positions.
                (*i < s.probe.len()).then(|| s.mu_of(*i).to_vec())
            }
            Endpoint::Point(z) => Some(z.clone()),
        }
    }

    /// Pins an endpoint: A, then B (then C and D in four-corner mode); further pins replace
    /// the oldest.
    pub fn pin(&mut self, e: Endpoint) {
        let max = if self.settings.four_corners { 4 } else { 2 };
        while self.pins.len() >= max {
            self.pins.remove(0);
        }
        self.pins.push(e);
        if self.pins.len() >= 2 {
            self.set_handle(self.handle_t);
        }
    }

    /// Clears the pins.
    pub fn clear_pins(&mut self) {
        self.pins.clear();
        self.preview = None;
        self.preview_request = None;
    }

    /// The handle's latent point on the path from A to B.
    pub fn handle_point(&self) -> Option<Vec<f32>> {
        let a = self.endpoint_z(self.pins.first()?)?;
        let b = self.endpoint_z(self.pins.get(1)?)?;
        Some(interpolate(&a, &b, self.handle_t, self.settings.path))
    }

    /// Moves the handle to `t` in `[0, 1]` along the path and asks for its decoding.
    pub fn set_handle(&mut self, t: f32) {
        self.handle_t = t.clamp(0.0, 1.0);
        if let Some(z) = self.handle_point() {
            self.preview_request = Some(z);
        }
    }

    /// Asks for the decoding of any latent point (a drag in the plane).
    pub fn request_preview(&mut self, z: Vec<f32>) {
        self.preview_request = Some(z);
    }

    /// How many importance draws to show: the run's K, or [`DRAWS_FOR_ELBO`] when it trains
    /// on the ELBO.
    pub fn draws_k(&self) -> usize {
        match self.settings.config.hyper.iw_samples {
            0 | 1 => DRAWS_FOR_ELBO,
            k => k,
        }
    }

    /// The importance-draws request to send now, if any: for the focused sample, when the
    /// draws shown are of another sample or an older step, and none is already asked for.
    /// Marks the request as sent.
    pub fn next_draws_request(&mut self) -> Option<(usize, usize)> {
        let s = self.main.snapshot.as_ref()?;
        let wanted = self.draws_focus?;
        if self.draws_in_flight
            || !self.settings.show_draws
            || self.timeline_pos.is_some()
            || !s.family.has_importance_weights()
        {
            return None;
        }
        let k = self.draws_k();
        let current = self
            .draws
            .as_ref()
            .is_some_and(|d| d.probe == wanted && d.run == s.run && d.step >= s.step && d.k() == k);
        if current {
            return None;
        }
        self.draws_in_flight = true;
        Some((wanted, k))
    }

    /// The draws to draw: of the focused sample and the shown run, with their normalised
    /// weights.
    pub fn shown_draws(&self) -> Option<(Vec<Vec<f32>>, Vec<f32>)> {
        let s = self.shown_snapshot()?;
        let d = self.draws.as_ref()?;
        if !self.settings.show_draws || Some(d.probe) != self.draws_focus || d.run != s.run {
            return None;
        }
        let dim = s.latent_dim.max(1);
        if d.z.len() != d.k() * dim {
            return None;
        }
        Some((
            d.z.chunks_exact(dim).map(<[f32]>::to_vec).collect(),
            d.normalised(),
        ))
    }

    /// The sample the plane focuses its importance draws on, given the one hovered now: that
    /// one, else the first pinned sample.
    pub fn focus_draws(&mut self, hovered: Option<usize>) {
        self.draws_focus = hovered.or_else(|| {
            self.pins.iter().find_map(|e| match e {
                Endpoint::Sample(i) => Some(*i),
                Endpoint::Point(_) => None,
            })
        });
    }

    /// Decodes a pending preview request with the newest snapshot's decoder. Returns whether
    /// anything was decoded.
    pub fn fulfil_preview(&mut self) -> bool {
        let (Some(z), Some(s)) = (self.preview_request.take(), self.main.snapshot.as_ref()) else {
            return false;
        };
        if z.len() != s.decoder.latent_dim() {
            return false;
        }
        let image = s.decoder.decode(&z);
        self.preview = Some((z, image));
        true
    }

    /// The latent points of the interpolation view: a strip from A to B, or an `n x n`
    /// bilinear grid between four corners (A top-left, B top-right, C bottom-left, D bottom-right).
    pub fn interpolation_points(&self) -> Option<(Vec<f32>, usize)> {
        let n = self.settings.strip_steps.clamp(2, 32);
        if self.settings.four_corners {
            if self.pins.len() < 4 {
                return None;
            }
            let c: Vec<Vec<f32>> = self
                .pins
                .iter()
                .map(|e| self.endpoint_z(e))
                .collect::<Option<_>>()?;
            let mut out = Vec::new();
            for row in 0..n {
                let v = row as f32 / (n - 1) as f32;
                let left = interpolate(&c[0], &c[2], v, self.settings.path);
                let right = interpolate(&c[1], &c[3], v, self.settings.path);
                for col in 0..n {
                    out.extend(interpolate(
                        &left,
                        &right,
                        col as f32 / (n - 1) as f32,
                        self.settings.path,
                    ));
                }
            }
            Some((out, n))
        } else {
            let a = self.endpoint_z(self.pins.first()?)?;
            let b = self.endpoint_z(self.pins.get(1)?)?;
            Some((
                latent_atlas_core::explore::geometry::interpolation_path(
                    &a,
                    &b,
                    n,
                    self.settings.path,
                ),
                n,
            ))
        }
    }

    /// The nearest probe sample to plane point `p` whose ellipse (or, for small ones, a disc of
    /// `min_radius`) contains it.
    pub fn sample_at(&self, p: [f32; 2], min_radius: f32) -> Option<usize> {
        let s = self.shown_snapshot()?;
        if !s.family.draws().encoder {
            // The points are prior draws, not encoded samples.
            return None;
        }
        let axes = self.plane_axes()?;
        let mut best: Option<(usize, f32)> = None;
        for i in 0..s.probe.len() {
            let c = axes.project(s.mu_of(i));
            let r = axes.project_sigma(s.sigma_of(i));
            let (rx, ry) = (r[0].max(min_radius), r[1].max(min_radius));
            let d = ((p[0] - c[0]) / rx).powi(2) + ((p[1] - c[1]) / ry).powi(2);
            if d <= 1.0 && best.is_none_or(|(_, bd)| d < bd) {
                best = Some((i, d));
            }
        }
        best.map(|(i, _)| i)
    }

    /// The newest error, if any.
    pub fn last_error(&self) -> Option<&str> {
        self.errors.last().map(String::as_str)
    }

    /// Whether training is running.
    pub fn is_running(&self) -> bool {
        self.main.is_running()
    }

    /// Where the main run stands, for a page script or a test to read.
    pub fn status(&self) -> Status {
        let run = &self.main;
        let step = run.last_step.as_ref();
        // The loss over the last 100 steps: single steps are too noisy to compare.
        let recent: Vec<f64> = run
            .curves
            .total
            .points()
            .iter()
            .rev()
            .take(100)
            .map(|p| p[1])
            .collect();
        Status {
            step: step.map_or(0, |m| m.step),
            epoch: step.map_or(0, |m| m.epoch),
            samples_per_sec: run.samples_per_sec,
            loss: step.map(|m| m.total),
            loss_recent_mean: (!recent.is_empty())
                .then(|| (recent.iter().sum::<f64>() / recent.len() as f64) as f32),
            family: run.config.model.label().to_owned(),
            dataset: run.dataset.as_ref().map(|d| d.0.clone()),
            state: run.state.map(|s| format!("{s:?}").to_lowercase()),
            probes: run
                .snapshot
                .as_ref()
                .map_or(0, |s| s.mu.len() / s.latent_dim.max(1)),
            error: self
                .last_error()
                .or(run.last_error.as_deref())
                .map(str::to_owned),
            tested: run.tests.last().map(|t| (t.epoch, t.neg_elbo)),
            evaluator: match run.evaluator {
                latent_atlas_view::run::EvaluatorStatus::Idle => None,
                latent_atlas_view::run::EvaluatorStatus::Training(p) => Some((p, None)),
                latent_atlas_view::run::EvaluatorStatus::Ready(a) => Some((1.0, Some(a))),
            },
            scored: run.scores.last().map(|s| (s.step, s.entropy)),
            backend: run.backend.clone(),
            backend_asked: self.settings.backend.to_string(),
            backend_notice: run.backend_notice.clone(),
            first_losses: run.first_losses.clone(),
        }
    }
}

/// The main run's progress as [`AppState::status`] gives it (serialised as JSON for pages).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Status {
    /// Training steps taken.
    pub step: u64,
    /// The epoch the last step was in.
    pub epoch: usize,
    /// Training samples per second, recently.
    pub samples_per_sec: f32,
    /// The last step's loss (the objective optimised).
    pub loss: Option<f32>,
    /// The mean loss of the last 100 steps.
    pub loss_recent_mean: Option<f32>,
    /// The model family's name.
    pub family: String,
    /// The dataset's name, once loaded.
    pub dataset: Option<String>,
    /// idle, running, paused, stopped or finished.
    pub state: Option<String>,
    /// Posteriors drawn in the plane.
    pub probes: usize,
    /// The newest error shown to the user.
    pub error: Option<String>,
    /// The newest end-of-epoch test result: its epoch and negative ELBO (nats).
    pub tested: Option<(usize, Option<f32>)>,
    /// The evaluator: the share of its training done, then 1 and its test accuracy.
    pub evaluator: Option<(f32, Option<f32>)>,
    /// The newest score of the samples: its step and their class entropy (nats).
    pub scored: Option<(u64, f32)>,
    /// The device that trains, as the status bar names it ("CPU (flex)", "WebGPU: ...").
    pub backend: String,
    /// The device asked for (`cpu`, `gpu`, `auto`).
    pub backend_asked: String,
    /// Why the device that trains is not the one asked for, if it is not.
    pub backend_notice: Option<String>,
    /// The first steps' losses since the model was ready, as (step, loss).
    pub first_losses: Vec<(u64, f32)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use latent_atlas_core::explore::PlainDecoder;
    use latent_atlas_core::explore::decoder::Dense;
    use latent_atlas_core::train::StepMetrics;
    use latent_atlas_core::train::snapshot::Probe;
    use latent_atlas_core::worker::RunState;
    use latent_atlas_view::run::TIMELINE_CAPACITY;
    use std::sync::Arc;

    fn snapshot(step: u64) -> Snapshot {
        // Three probe samples in 2-D; the decoder maps z to one pixel sigmoid(z0 + z1).
        Snapshot {
            step,
            epoch: 0,
            latent_dim: 2,
            probe: Arc::new(Probe {
                indices: vec![0, 1, 2],
                labels: vec![0, 1, 2],
                pixels: vec![0, 128, 255],
                width: 1,
                height: 1,
                channels: 1,
                class_names: vec!["a".into(), "b".into(), "c".into()],
                ..Default::default()
            }),
            mu: vec![-2.0, 0.0, 0.0, 0.0, 2.0, 1.0],
            sigma: vec![0.5, 0.5, 0.1, 0.1, 0.3, 0.3],
            decoder: Arc::new(PlainDecoder {
                layers: vec![Dense {
                    inputs: 2,
                    outputs: 1,
                    weights: vec![1.0, 1.0],
                    bias: vec![0.0],
                }],
                flow: None,
                width: 1,
                height: 1,
                up: None,
                colour: None,
                tanh: false,
            }),
            run: 1,
            family: latent_atlas_core::train::ModelKind::Vae,
            view: Default::default(),
            coverage: None,
        }
    }

    fn metrics(step: u64) -> StepMetrics {
        StepMetrics {
            step,
            epoch: 1,
            epoch_progress: 0.5,
            reconstruction: 100.0,
            kl: 5.0,
            total: 105.0,
            kl_weight: 1.0,
            kl_per_dim: vec![2.0, 3.0],
            extra: vec![],
        }
    }

    #[test]
    fn importance_draws_are_asked_for_the_focused_sample_and_follow_the_model() {
        let mut s = AppState::new(Settings::default());
        s.set_snapshot(snapshot(10));
        assert_eq!(s.next_draws_request(), None, "nothing focused");
        s.focus_draws(Some(1));
        assert_eq!(s.next_draws_request(), Some((1, DRAWS_FOR_ELBO)));
        assert_eq!(s.next_draws_request(), None, "one request at a time");
        s.apply(Event::Draws(None));
        assert!(!s.draws_in_flight, "an empty answer ends the request");
        s.settings.config.hyper.iw_samples = 2;
        assert_eq!(s.next_draws_request(), Some((1, 2)), "the run's K");
        let draws = ImportanceDraws {
            run: 1,
            step: 10,
            probe: 1,
            z: vec![0.0, 0.0, 1.0, 1.0],
            log_w: vec![-3.0, -1.0],
        };
        s.apply(Event::Draws(Some(draws.clone())));
        assert_eq!(s.next_draws_request(), None, "the draws shown are current");
        let marks = s.plane_marks(&s.plane_scene(&snapshot(10)));
        assert_eq!(marks.draws.len(), 2);
        let (w0, w1) = (marks.draws[0].1, marks.draws[1].1);
        assert!((w0 + w1 - 1.0).abs() < 1e-6 && w1 > w0, "{w0} {w1}");
        assert!(
            (w1 / w0 - 2f32.exp()).abs() < 1e-3,
            "weights in proportion to e^log_w"
        );
        // Exports draw what the window draws.
        assert_eq!(
            s.view_choices().marks.marks(&s.plane_scene(&snapshot(10))),
            marks
        );
        // A newer model: asked again.
        s.set_snapshot(snapshot(20));
        assert_eq!(s.next_draws_request(), Some((1, 2)));
        s.apply(Event::Draws(None));
        // Nothing hovered: the first pinned sample; another sample's draws are not drawn.
        s.pin(Endpoint::Point(vec![0.5, 0.5]));
        s.pin(Endpoint::Sample(2));
        s.focus_draws(None);
        assert_eq!(s.draws_focus, Some(2));
        s.draws = Some(draws);
        assert!(
            s.plane_marks(&s.plane_scene(&snapshot(20)))
                .draws
                .is_empty()
        );
        // None when switched off.
        s.settings.config.hyper.iw_samples = 5;
        assert_eq!(s.next_draws_request(), Some((2, 5)));
        s.apply(Event::Draws(None));
        s.settings.show_draws = false;
        assert_eq!(s.next_draws_request(), None);
    }

    #[test]
    fn events_fold_into_curves_and_state() {
        let mut s = AppState::new(Settings::default());
        s.apply(Event::State(RunState::Running));
        for step in 1..=3 {
            s.apply(Event::Progress {
                metrics: metrics(step),
                samples_per_sec: 1000.0,
            });
        }
        s.apply(Event::Failed("boom".into()));
        assert!(s.is_running());
        assert_eq!(s.main.curves.total.len(), 3);
        assert_eq!(s.main.train_rows.len(), 3);
        assert_eq!(s.last_error(), Some("boom"));
    }

    #[test]
    fn temperature_and_noise_change_the_sample_request() {
        let mut s = AppState::new(Settings::default());
        assert!(
            s.sample_request().is_none(),
            "nothing to sample before a snapshot"
        );
        s.set_snapshot(snapshot(10));
        let a = s.sample_request().unwrap();
        s.set_temperature(0.5);
        let b = s.sample_request().unwrap();
        assert_ne!(a, b);
        s.set_temperature(9.0);
        assert_eq!(s.settings.temperature, 1.5, "clamped to the slider's range");
        s.new_noise();
        assert_ne!(s.sample_request().unwrap().noise_seed, b.noise_seed);
    }

    #[test]
    fn two_pins_and_a_handle_move_request_a_decode() {
        let mut s = AppState::new(Settings::default());
        s.set_snapshot(snapshot(10));
        s.pin(Endpoint::Sample(0));
        assert!(s.preview_request.is_none(), "one pin is not a path yet");
        s.pin(Endpoint::Sample(2));
        s.set_handle(0.25);
        let z = s.preview_request.clone().unwrap();
        // A quarter of the way from (-2, 0) to (2, 1).
        assert!(
            (z[0] + 1.0).abs() < 1e-6 && (z[1] - 0.25).abs() < 1e-6,
            "{z:?}"
        );
        assert!(s.fulfil_preview());
        let (_, image) = s.preview.clone().unwrap();
        assert!((image[0] - 1.0 / (1.0 + (0.75f32).exp())).abs() < 1e-6);
        // A third pin replaces the oldest.
        s.pin(Endpoint::Point(vec![0.0, 3.0]));
        assert_eq!(
            s.pins,
            vec![Endpoint::Sample(2), Endpoint::Point(vec![0.0, 3.0])]
        );
    }

    #[test]
    fn hit_testing_finds_the_sample_under_the_pointer() {
        let mut s = AppState::new(Settings::default());
        s.set_snapshot(snapshot(10));
        assert_eq!(s.sample_at([-2.2, 0.1], 0.0), Some(0));
        assert_eq!(s.sample_at([1.0, -1.0], 0.0), None);
        assert_eq!(
            s.sample_at([0.15, 0.0], 0.2),
            Some(1),
            "tiny ellipses get a minimum radius"
        );
    }

    #[test]
    fn a_new_run_at_the_same_step_asks_for_new_pictures() {
        let mut s = AppState::new(Settings::default());
        s.set_snapshot(snapshot(1500));
        let before = s.sample_request().unwrap();
        let mut next = snapshot(1500);
        next.run = 2;
        s.set_snapshot(next);
        assert_ne!(s.sample_request().unwrap(), before);
    }

    #[test]
    fn the_timeline_keeps_the_whole_run_and_scrubs() {
        let mut s = AppState::new(Settings::default());
        for step in 0..1000 {
            s.set_snapshot(snapshot(step));
        }
        assert!(s.main.timeline.len() <= TIMELINE_CAPACITY);
        assert_eq!(s.main.timeline[0].step, 0, "the start is kept");
        s.timeline_pos = Some(0);
        assert_eq!(s.shown_snapshot().unwrap().step, 0);
        s.timeline_pos = None;
        assert_eq!(s.shown_snapshot().unwrap().step, 999);
    }

    #[test]
    fn notices_and_errors_keep_the_newest() {
        let mut s = AppState::new(Settings::default());
        for i in 0..10_000 {
            s.apply(Event::Notice(format!("notice {i}")));
            s.apply(Event::ScoringFailed(format!("error {i}")));
        }
        assert_eq!(s.notices.len(), MAX_MESSAGES);
        assert_eq!(s.errors.len(), MAX_MESSAGES);
        assert_eq!(s.notices.last().unwrap(), "notice 9999");
        assert_eq!(s.last_error(), Some("error 9999"));
    }

    #[test]
    fn four_corners_make_a_bilinear_grid() {
        let mut s = AppState::new(Settings::default());
        s.settings.four_corners = true;
        s.settings.strip_steps = 3;
        s.set_snapshot(snapshot(1));
        for p in [[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]] {
            s.pin(Endpoint::Point(p.to_vec()));
        }
        let (points, n) = s.interpolation_points().unwrap();
        assert_eq!(n, 3);
        assert_eq!(points.len(), 9 * 2);
        assert_eq!(
            &points[8..10],
            &[1.0, 1.0],
            "the centre is the mean of the corners"
        );
    }

    #[test]
    fn old_settings_load_with_defaults() {
        let s: Settings = serde_json::from_str(r#"{"temperature": 0.7}"#).unwrap();
        assert_eq!(s.temperature, 0.7);
        assert!(s.show_ellipses);
    }

    #[test]
    fn the_command_lines_pictures_are_the_windows_defaults() {
        // `train` writes its folder with `ViewChoices::default()`; a fresh window exports with
        // its own choices: the two must not drift apart.
        let s = AppState::new(Settings::default());
        assert_eq!(s.view_choices(), ViewChoices::default());
    }
}
