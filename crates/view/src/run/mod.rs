//! A run as its consumers see it: the worker's [`Event`]s for one model folded into plain data
//! (curves, test rows, scores, the newest snapshot and a timeline of older ones). The window
//! keeps one for the main run and one for a comparison run; `train` on the command line folds
//! the same events into one and writes its folder from it.

pub mod history;

use history::{RowLog, Series};

use latent_atlas_core::evaluator::Scores;
use latent_atlas_core::train::{Snapshot, StepMetrics, TestMetrics, TrainConfig};
use latent_atlas_core::worker::{Event, RunState};

/// Points kept per curve.
pub const CURVE_CAPACITY: usize = 4000;
/// Snapshots kept for the timeline and the GIF.
pub const TIMELINE_CAPACITY: usize = 240;
/// Bytes of decoder copies the timeline keeps for decoding at past steps: 64 MiB, 31 copies of
/// the default 784-512-256-2 decoder. Frames beyond that borrow the nearest kept copy; the
/// first and the newest frame always keep their own.
pub const TIMELINE_DECODER_BUDGET: usize = 64 << 20;

/// The per-step loss curves.
#[derive(Clone, Debug)]
pub struct Curves {
    /// Reconstruction term.
    pub reconstruction: Series,
    /// KL term.
    pub kl: Series,
    /// Optimised total.
    pub total: Series,
    /// Test negative ELBO per epoch (test reconstruction for the AE).
    pub test_elbo: Series,
    /// The BN-VAE's KL floor per step.
    pub kl_floor: Series,
    /// Share of the prior in holes, per snapshot.
    pub hole_share: Series,
    /// The evaluator's Frechet distance per score.
    pub frechet: Series,
    /// The evaluator's class entropy of prior samples per score.
    pub entropy: Series,
    /// The family's own per-step values by name (the adversarial losses and accuracies, the
    /// f-VAE's sigmas, the BN-VAE's floor), in order of first appearance.
    pub extras: Vec<(String, Series)>,
}

impl Curves {
    /// The per-step series of a family-specific value.
    pub fn extra(&self, name: &str) -> Option<&Series> {
        self.extras.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }
}

impl Default for Curves {
    fn default() -> Self {
        let s = || Series::with_capacity(CURVE_CAPACITY);
        Self {
            reconstruction: s(),
            kl: s(),
            total: s(),
            test_elbo: s(),
            kl_floor: s(),
            hole_share: s(),
            frechet: s(),
            entropy: s(),
            extras: Vec::new(),
        }
    }
}

/// One frame of the training timeline: the probe posteriors at a step.
#[derive(Clone, Debug)]
pub struct TimelineFrame {
    /// The step.
    pub step: u64,
    /// The snapshot. Its decoder is the one of `decoder_step`.
    pub snapshot: Snapshot,
    /// The step whose decoder the snapshot carries: its own step, or the nearest step whose
    /// copy the timeline kept once [`TIMELINE_DECODER_BUDGET`] was reached.
    pub decoder_step: u64,
}

/// Where the dataset's evaluator stands.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum EvaluatorStatus {
    /// Not asked for yet.
    #[default]
    Idle,
    /// Being trained (share done).
    Training(f32),
    /// Ready, with its test accuracy.
    Ready(f32),
}

/// One run, folded from its worker's events.
#[derive(Clone, Debug, Default)]
pub struct RunView {
    /// The settings in force (those asked for until the model is ready).
    pub config: TrainConfig,
    /// Where the run stands (`None` before the worker said).
    pub state: Option<RunState>,
    /// Backend description.
    pub backend: String,
    /// Why the backend is not the one asked for, if it is not (a fallback to the CPU).
    pub backend_notice: Option<String>,
    /// Dataset name and sizes, once ready.
    pub dataset: Option<(String, usize, usize)>,
    /// Loss curves.
    pub curves: Curves,
    /// Test metrics per epoch.
    pub tests: Vec<TestMetrics>,
    /// The latest step's metrics.
    pub last_step: Option<StepMetrics>,
    /// Recent throughput.
    pub samples_per_sec: f32,
    /// The newest snapshot.
    pub snapshot: Option<Snapshot>,
    /// Snapshots over training, for the timeline slider and the GIF.
    pub timeline: Vec<TimelineFrame>,
    /// Every training row received, for the metrics CSV.
    pub train_rows: RowLog,
    /// The evaluator's scores over training.
    pub scores: Vec<Scores>,
    /// Where the evaluator stands.
    pub evaluator: EvaluatorStatus,
    /// The newest failure reported for this run.
    pub last_error: Option<String>,
    /// The first steps' losses since the model was ready (step, objective), up to
    /// [`FIRST_STEPS_KEPT`]: what a test compares between two devices from one saved run.
    pub first_losses: Vec<(u64, f32)>,
}

/// How many first steps' losses a run keeps (see [`RunView::first_losses`]).
pub const FIRST_STEPS_KEPT: usize = 16;

impl RunView {
    /// A run asked for with `config`, before its model is ready.
    pub fn new(config: TrainConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// Folds one worker event. Notices are not kept here: they are for whoever shows them.
    pub fn apply(&mut self, event: Event) {
        match event {
            Event::Ready {
                backend,
                backend_notice,
                dataset,
                train_len,
                test_len,
                config,
                ..
            } => {
                *self = Self {
                    config: *config,
                    backend,
                    backend_notice,
                    dataset: Some((dataset, train_len, test_len)),
                    state: self.state,
                    evaluator: self.evaluator,
                    ..Self::default()
                };
            }
            Event::Progress {
                metrics,
                samples_per_sec,
            } => {
                if self.first_losses.len() < FIRST_STEPS_KEPT {
                    self.first_losses.push((metrics.step, metrics.total));
                }
                self.push_step(metrics);
                self.samples_per_sec = samples_per_sec;
            }
            Event::Tested(t) => {
                let y = t.neg_elbo.unwrap_or(t.reconstruction);
                if y.is_finite() {
                    self.curves.test_elbo.push(t.step as f64, y as f64);
                }
                self.tests.push(t);
            }
            Event::State(s) => self.state = Some(s),
            Event::Failed(e) | Event::ScoringFailed(e) => self.last_error = Some(e),
            Event::EvaluatorProgress(p) => self.evaluator = EvaluatorStatus::Training(p),
            Event::EvaluatorReady(a) => self.evaluator = EvaluatorStatus::Ready(a),
            Event::Scored(scores) => {
                let x = scores.step as f64;
                self.curves.frechet.push(x, scores.frechet as f64);
                self.curves.entropy.push(x, scores.entropy as f64);
                self.scores.push(scores);
            }
            Event::Notice(_)
            | Event::SnapshotReady { .. }
            | Event::Saved(_)
            | Event::Draws(_)
            | Event::RunFiles(_) => {}
        }
    }

    fn push_step(&mut self, metrics: StepMetrics) {
        let x = metrics.step as f64;
        let c = &mut self.curves;
        c.reconstruction.push(x, metrics.reconstruction as f64);
        c.kl.push(x, metrics.kl as f64);
        c.total.push(x, metrics.total as f64);
        if let Some(floor) = metrics.extra("kl_floor") {
            c.kl_floor.push(x, floor as f64);
        }
        for (name, v) in &metrics.extra {
            let i = match c.extras.iter().position(|(n, _)| n == name) {
                Some(i) => i,
                None => {
                    let series = Series::with_capacity(CURVE_CAPACITY);
                    c.extras.push((name.clone(), series));
                    c.extras.len() - 1
                }
            };
            c.extras[i].1.push(x, *v as f64);
        }
        self.train_rows.push(metrics.clone());
        self.last_step = Some(metrics);
    }

    /// Restores a saved run's history (its `metrics.csv`) after its model is ready.
    pub fn restore(&mut self, train: Vec<StepMetrics>, tests: Vec<TestMetrics>) {
        for m in train {
            self.push_step(m);
        }
        for t in tests {
            self.apply(Event::Tested(t));
        }
    }

    /// Takes a new snapshot: it becomes the newest and joins the timeline (once per step).
    pub fn set_snapshot(&mut self, snapshot: Snapshot) {
        let keep = self.timeline.last().is_none_or(|f| f.step != snapshot.step);
        if keep {
            if self.timeline.len() >= TIMELINE_CAPACITY {
                // Thin the older half so the whole run stays covered, keeping the frames
                // whose decoder copies others borrow.
                let half = self.timeline.len() / 2;
                let mut i = 0;
                self.timeline.retain(|f| {
                    i += 1;
                    i > half || i % 2 == 1 || f.decoder_step == f.step
                });
            }
            self.timeline.push(TimelineFrame {
                step: snapshot.step,
                snapshot: snapshot.clone(),
                decoder_step: snapshot.step,
            });
            self.fit_decoder_budget();
            if let Some(c) = &snapshot.coverage {
                self.curves
                    .hole_share
                    .push(snapshot.step as f64, c.hole_share as f64);
            }
        }
        self.snapshot = Some(snapshot);
    }

    /// Keeps the timeline's distinct decoder copies within [`TIMELINE_DECODER_BUDGET`]: while
    /// there are too many, the inner copy whose kept neighbours lie closest together is
    /// dropped, and the frames that used it take the nearer neighbour's, so the kept copies
    /// stay spread over the run.
    fn fit_decoder_budget(&mut self) {
        let Some(newest) = self.timeline.last() else {
            return;
        };
        let bytes = newest.snapshot.decoder.heap_bytes().max(1);
        // At most a quarter of the frames, so thinning still halves the older half.
        let keep = (TIMELINE_DECODER_BUDGET / bytes).clamp(2, TIMELINE_CAPACITY / 4);
        loop {
            // Runs of consecutive frames sharing a copy: (first frame, end, decoder step).
            let mut runs: Vec<(usize, usize, u64)> = Vec::new();
            for (i, f) in self.timeline.iter().enumerate() {
                let shared = i > 0
                    && std::sync::Arc::ptr_eq(
                        &self.timeline[i - 1].snapshot.decoder,
                        &f.snapshot.decoder,
                    );
                match runs.last_mut() {
                    Some(r) if shared => r.1 = i + 1,
                    _ => runs.push((i, i + 1, f.decoder_step)),
                }
            }
            if runs.len() <= keep {
                return;
            }
            let Some(k) =
                (1..runs.len() - 1).min_by_key(|&k| runs[k + 1].2.abs_diff(runs[k - 1].2))
            else {
                return;
            };
            let (before, after) = (&runs[k - 1], &runs[k + 1]);
            let earlier = self.timeline[before.0].snapshot.decoder.clone();
            let later = self.timeline[after.0].snapshot.decoder.clone();
            let (earlier_step, later_step) = (before.2, after.2);
            for f in &mut self.timeline[runs[k].0..runs[k].1] {
                let (decoder, step) =
                    if f.step.abs_diff(earlier_step) <= f.step.abs_diff(later_step) {
                        (earlier.clone(), earlier_step)
                    } else {
                        (later.clone(), later_step)
                    };
                f.snapshot.decoder = decoder;
                f.decoder_step = step;
            }
        }
    }

    /// The bytes this view holds on the heap, roughly: the training rows, the curves' points,
    /// the tests, the scores, the timeline's posteriors and the decoder copy each timeline frame
    /// keeps (counted once per distinct copy; at most [`TIMELINE_DECODER_BUDGET`] in all, or two
    /// copies where one is larger). The probe set's images are shared.
    pub fn held_bytes(&self) -> usize {
        use std::mem::size_of;
        let rows: usize = self
            .train_rows
            .iter()
            .map(|r| {
                size_of::<StepMetrics>()
                    + 4 * r.kl_per_dim.capacity()
                    + r.extra
                        .iter()
                        .map(|(n, _)| 32 + n.capacity())
                        .sum::<usize>()
            })
            .sum();
        let c = &self.curves;
        let points: usize = [
            &c.reconstruction,
            &c.kl,
            &c.total,
            &c.test_elbo,
            &c.kl_floor,
            &c.hole_share,
            &c.frechet,
            &c.entropy,
        ]
        .into_iter()
        .chain(c.extras.iter().map(|(_, s)| s))
        .map(|s| 16 * s.len())
        .sum();
        let mut decoders = std::collections::HashSet::new();
        let frames: usize = self
            .timeline
            .iter()
            .map(|f| {
                let d = &f.snapshot.decoder;
                let weights = match decoders.insert(std::sync::Arc::as_ptr(d)) {
                    true => d.heap_bytes(),
                    false => 0,
                };
                4 * (f.snapshot.mu.len() + f.snapshot.sigma.len()) + weights
            })
            .sum();
        rows + points
            + frames
            + self.tests.len() * size_of::<TestMetrics>()
            + self.scores.len() * 1024
    }

    /// The run's family.
    pub fn family(&self) -> latent_atlas_core::train::ModelKind {
        self.config.model
    }

    /// Whether training is running.
    pub fn is_running(&self) -> bool {
        self.state == Some(RunState::Running)
    }
}

#[cfg(test)]
mod bounded_tests {
    use super::*;

    #[test]
    fn a_million_steps_of_events_hold_bounded_memory() {
        let mut view = RunView::new(TrainConfig::default());
        for step in 1..=1_000_000u64 {
            view.apply(Event::Progress {
                metrics: StepMetrics {
                    step,
                    epoch: (step / 469) as usize + 1,
                    epoch_progress: 0.5,
                    reconstruction: 150.0 - (step as f32).ln(),
                    kl: 5.0,
                    total: 155.0,
                    kl_weight: 1.0,
                    kl_per_dim: vec![2.5, 2.5],
                    extra: vec![("kl_floor".into(), 0.5)],
                },
                samples_per_sec: 10_000.0,
            });
        }
        assert!(view.train_rows.len() <= history::MAX_ROWS);
        assert!(view.curves.total.len() <= CURVE_CAPACITY);
        let held = view.held_bytes();
        // MAX_ROWS rows of about 150 bytes, six curves of 4,000 points: under 32 MiB.
        assert!(held < 32 << 20, "{held} bytes after a million steps");
        assert_eq!(view.last_step.as_ref().map(|m| m.step), Some(1_000_000));
    }

    /// A snapshot at `step` with its own decoder of the default sizes (784-512-256-2; the
    /// weights are zero pages, never touched).
    fn snapshot(step: u64) -> Snapshot {
        use latent_atlas_core::explore::{Dense, PlainDecoder};
        let dense = |inputs, outputs| Dense {
            inputs,
            outputs,
            weights: vec![0.0; inputs * outputs],
            bias: vec![0.0; outputs],
        };
        Snapshot {
            run: 1,
            family: latent_atlas_core::train::ModelKind::Vae,
            step,
            epoch: 0,
            latent_dim: 2,
            probe: Default::default(),
            mu: vec![0.0; 2 * 500],
            sigma: vec![1.0; 2 * 500],
            decoder: std::sync::Arc::new(PlainDecoder {
                layers: vec![dense(2, 256), dense(256, 512), dense(512, 784)],
                flow: None,
                width: 28,
                height: 28,
                up: None,
                colour: None,
                tanh: false,
            }),
            view: Default::default(),
            coverage: None,
        }
    }

    #[test]
    fn the_timeline_keeps_a_bounded_number_of_evenly_spread_decoders() {
        let mut view = RunView::new(TrainConfig::default());
        let bytes = snapshot(0).decoder.heap_bytes();
        let keep = TIMELINE_DECODER_BUDGET / bytes;
        assert!((20..=40).contains(&keep), "{keep} copies of {bytes} bytes");
        let last = 5_000 * 25;
        for step in (0..=last).step_by(25) {
            view.set_snapshot(snapshot(step));
            let kept: std::collections::BTreeSet<u64> =
                view.timeline.iter().map(|f| f.decoder_step).collect();
            assert!(kept.len() <= keep, "{} copies at step {step}", kept.len());
        }
        let t = &view.timeline;
        assert!(t.len() <= TIMELINE_CAPACITY);
        assert_eq!(t[0].decoder_step, 0, "the first frame keeps its own");
        assert_eq!(
            t[t.len() - 1].decoder_step,
            last,
            "the newest keeps its own"
        );
        let kept: Vec<u64> = t
            .iter()
            .map(|f| f.decoder_step)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        // Each frame borrows the nearest kept copy, and that copy is of that step's decoder.
        for f in t {
            let best = kept.iter().map(|k| k.abs_diff(f.step)).min().unwrap();
            assert_eq!(f.decoder_step.abs_diff(f.step), best, "frame {}", f.step);
        }
        // Spread over the run: no gap between kept copies more than two even gaps wide.
        let even = last / (kept.len() as u64 - 1);
        let widest = kept.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        assert!(
            widest <= 2 * even,
            "widest gap {widest} steps, even {even}: {kept:?}"
        );
        // Steps that come again (a rollback, a reconnection) bring new copies under old
        // numbers: they are still counted apart.
        for step in (last - 2_000..=last).step_by(25) {
            view.set_snapshot(snapshot(step));
            view.set_snapshot(snapshot(step + 10));
        }
        let copies: std::collections::HashSet<_> = view
            .timeline
            .iter()
            .map(|f| std::sync::Arc::as_ptr(&f.snapshot.decoder))
            .collect();
        assert!(
            copies.len() <= keep,
            "{} copies after steps came again",
            copies.len()
        );
        let held = view.held_bytes();
        assert!(
            held <= TIMELINE_DECODER_BUDGET + (4 << 20),
            "{held} bytes held"
        );
    }
}
