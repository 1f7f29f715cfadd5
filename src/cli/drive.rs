//! The command line's side of a training run: the worker's events folded into a run, shown as
//! progress bars, and written to the run folder after every epoch; and the printing of test
//! figures and scores.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::backend::BackendChoice;
use crate::evaluator::Scores;
use crate::export::csv;
use crate::export::folder::{self, ViewChoices};
use crate::fsio::atomic_write;
use crate::run::RunView;
use crate::train::{StepMetrics, TestMetrics, TrainConfig};
use crate::worker::{Command, Event, Options, RunState, Worker};

/// How `train` and `eval` name images of `channels` channels.
pub(super) fn colour_word(channels: usize) -> &'static str {
    if channels == 3 { "in colour" } else { "grey" }
}

pub(super) fn print_test(m: &TestMetrics) {
    let nll = m
        .nll
        .map(|v| {
            format!(
                ", importance-sampled NLL {v:.2} (K = {}, {} images)",
                m.nll_samples, m.nll_images
            )
        })
        .unwrap_or_default();
    let elbo = match m.neg_elbo {
        Some(v) => format!(", KL {:.2}, negative ELBO {v:.2} nats", m.kl),
        None => " nats (no KL term, so no ELBO)".to_owned(),
    };
    let mut active = if m.kl_per_dim.is_empty() {
        String::new()
    } else {
        format!(
            "; active dims {}/{} by KL",
            m.active_dims(),
            m.kl_per_dim.len()
        )
    };
    if let Some(units) = m.active_units() {
        let sep = if active.is_empty() { "; " } else { ", " };
        active.push_str(&format!(
            "{sep}{units}/{} active units (posterior-mean activity)",
            m.mean_activity.len()
        ));
    }
    let validation = m
        .validation
        .map(|v| format!("; validation {v:.2}"))
        .unwrap_or_default();
    let holes = m
        .hole_share
        .map(|h| format!("; prior holes {:.1}%", 100.0 * h))
        .unwrap_or_default();
    let rec = if m.reconstruction.is_finite() {
        format!("test reconstruction {:.2}", m.reconstruction)
    } else {
        "no encoder, so no reconstruction".to_owned()
    };
    let elbo = if m.reconstruction.is_finite() {
        elbo
    } else {
        String::new()
    };
    println!(
        "epoch {:>3}: {rec}{elbo}{nll}{validation}{active}{holes}",
        m.epoch
    );
}

fn print_scores(s: &Scores) {
    let mut cond = s
        .class_accuracy
        .map(|a| format!(", class-conditional accuracy {:.1}%", 100.0 * a))
        .unwrap_or_default();
    if let Some(a) = s.reconstruction_accuracy {
        cond.push_str(&format!(
            ", reconstruction class accuracy {:.1}%",
            100.0 * a
        ));
    }
    println!(
        "           step {}, evaluator at T = {}: class entropy {:.3} of {:.3} nats, Frechet distance {:.2}{cond}",
        s.step, s.temperature, s.entropy, s.max_entropy, s.frechet
    );
    if !s.factor_readout.is_empty() {
        let parts: Vec<String> = s
            .factor_readout
            .iter()
            .map(|(name, v)| format!("{name} {v:.2}"))
            .collect();
        println!(
            "           linear read-out of the codes: {}",
            parts.join(", ")
        );
    }
}

/// A progress bar with this template (or a plain one if the template is refused).
pub(super) fn bar(len: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// How long `train` waits for a silent evaluator after the last epoch.
const SCORE_PATIENCE: Duration = Duration::from_secs(120);

/// Trains `config` to the end on the worker thread without a folder or any output, scoring
/// `score_samples` samples after each epoch: the run as folded from its events, and why it
/// stopped early, if it did.
pub fn run_quietly(
    config: TrainConfig,
    backend: BackendChoice,
    score_samples: usize,
) -> (RunView, anyhow::Result<()>) {
    let options = Options::headless(None, score_samples, 1.0);
    let mut driver = Driver::new(
        RunView::new(config.clone()),
        None,
        ProgressBar::hidden(),
        score_samples > 0,
    );
    driver.quiet = true;
    let result = match Worker::spawn_with(config, backend, options, Arc::new(|| {})) {
        Ok(worker) => driver.drive(&worker),
        Err(e) => Err(anyhow::anyhow!("cannot start the training thread: {e}")),
    };
    (driver.run, result)
}

/// The command line's side of a training run.
pub(super) struct Driver {
    run: RunView,
    /// The run folder, rewritten after every epoch (none: nothing is written).
    out: Option<PathBuf>,
    /// Print nothing.
    quiet: bool,
    /// The loading spinner, then the step bar.
    bar: ProgressBar,
    evaluator_bar: Option<ProgressBar>,
    /// The newest failure, reported if the run stops on it.
    failure: Option<String>,
    /// Whether scores are still expected.
    scoring: bool,
    /// This epoch's sums of the negative IW bound and the one-draw negative ELBO, and the
    /// steps summed (when trained on the bound).
    iw_epoch: (f64, f64, usize),
    /// The step whose folder was last written.
    written: Option<u64>,
    /// A resumed run's history (its metrics.csv), restored once its model is ready.
    history: Option<(Vec<StepMetrics>, Vec<TestMetrics>)>,
    /// Test rows restored from before the resume, which were scored then (or not at all).
    tests_before: usize,
    /// A resumed run's scores.csv rows from before the resume, kept ahead of the new ones.
    scores_before: Vec<String>,
}

impl Driver {
    /// A driver that shows `bar` (a spinner until the model is ready) and writes the run
    /// folder `out` after every epoch.
    pub(super) fn new(run: RunView, out: Option<PathBuf>, bar: ProgressBar, scoring: bool) -> Self {
        Driver {
            run,
            out,
            quiet: false,
            bar,
            evaluator_bar: None,
            failure: None,
            scoring,
            iw_epoch: Default::default(),
            written: None,
            history: None,
            tests_before: 0,
            scores_before: Vec::new(),
        }
    }

    /// scores.csv: the rows a resumed run had, then this run's.
    fn scores_text(&self) -> String {
        let text = csv::scores_csv(&self.run.scores);
        if self.scores_before.is_empty() {
            return text;
        }
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default();
        let mut out = String::from(header);
        out.push('\n');
        for row in self.scores_before.iter().map(String::as_str).chain(lines) {
            out.push_str(row);
            out.push('\n');
        }
        out
    }

    /// A resumed run's curves and test rows: they are kept (and written again) before the new
    /// ones, so metrics.csv goes on from its last row.
    pub(super) fn resume_history(
        &mut self,
        train: Vec<StepMetrics>,
        tests: Vec<TestMetrics>,
        scores_csv: Option<String>,
    ) {
        self.history = Some((train, tests));
        self.scores_before = scores_csv
            .map(|text| text.lines().skip(1).map(str::to_owned).collect())
            .unwrap_or_default();
    }

    /// Clears the progress bars.
    pub(super) fn finish(&self) {
        self.bar.finish_and_clear();
        if let Some(b) = &self.evaluator_bar {
            b.finish_and_clear();
        }
    }

    /// Runs until every epoch is done, evaluated, saved and scored.
    pub(super) fn drive(&mut self, worker: &Worker) -> anyhow::Result<()> {
        let mut finished = false;
        let mut quiet_since = std::time::Instant::now();
        loop {
            let Some(event) = worker.recv_timeout(Duration::from_millis(200)) else {
                if !worker.is_alive() {
                    let why = self.failure.take();
                    anyhow::bail!("{}", why.unwrap_or_else(|| "training stopped".into()));
                }
                if finished && quiet_since.elapsed() > SCORE_PATIENCE {
                    // Training is done and the evaluator has gone quiet: leave without the
                    // missing scores rather than hang.
                    self.say(|| {
                        eprintln!(
                            "warning: the evaluator stopped answering; some epochs are not scored"
                        )
                    });
                    self.flush_failure();
                    return Ok(());
                }
                continue;
            };
            quiet_since = std::time::Instant::now();
            let stop = self.show(worker, &event);
            finished |= event == Event::State(RunState::Finished);
            let saved = matches!(event, Event::Saved(_));
            let scored = matches!(event, Event::Scored(_));
            let ready = matches!(event, Event::Ready { .. });
            self.run.apply(event);
            if ready && let Some((train, tests)) = self.history.take() {
                self.tests_before = tests.len();
                self.run.restore(train, tests);
            }
            if let Some(why) = stop {
                anyhow::bail!("{why}");
            }
            if saved {
                // The epoch's snapshot was published just before its checkpoint was written.
                if let Some(s) = worker.take_snapshot() {
                    self.run.set_snapshot(s);
                }
                self.write()?;
            } else if scored && let Some(out) = &self.out {
                atomic_write(&out.join("scores.csv"), self.scores_text().as_bytes())?;
            }
            // Evaluation and checkpoint come before `Finished`; only scores may follow it.
            // One score per epoch trained (fewer than configured when the schedule stopped early;
            // every epoch is evaluated before `Finished`).
            let scores_due =
                self.scoring && self.run.scores.len() + self.tests_before < self.run.tests.len();
            if finished && !scores_due {
                if self.written != self.run.last_step.as_ref().map(|m| m.step) {
                    self.write()?;
                }
                self.flush_failure();
                return Ok(());
            }
        }
    }

    /// Shows one event on the terminal and answers it; `Some(why)` when the run cannot go on.
    fn show(&mut self, worker: &Worker, event: &Event) -> Option<String> {
        match event {
            Event::Ready {
                backend,
                dataset,
                train_len,
                test_len,
                image: [width, height, channels],
                classes,
                config,
                ..
            } => {
                self.bar.finish_and_clear();
                if self.scoring && *classes == 0 {
                    self.say(|| {
                        eprintln!(
                            "note: {dataset} has no labels, so generated samples are not scored"
                        )
                    });
                    self.scoring = false;
                }
                self.say(|| {
                    eprintln!(
                        "dataset {dataset}: {train_len} training and {test_len} test images of {width}x{height} {}, {classes} classes",
                        colour_word(*channels)
                    );
                    eprintln!("backend: {backend}");
                });
                if !self.quiet {
                    let training = train_len.saturating_sub(config.schedule.validation);
                    let per_epoch = training.div_ceil(config.hyper.batch_size) as u64;
                    self.bar = bar(
                        per_epoch * config.epochs as u64,
                        "{bar:30} {pos}/{len} steps  {msg}  [{elapsed} < {eta}]",
                    );
                }
                worker.send(Command::Start);
            }
            Event::Notice(n) => self.say(|| eprintln!("note: {n}")),
            Event::Progress {
                metrics: m,
                samples_per_sec,
            } => {
                // Training went on after a failure: it was not fatal.
                self.flush_failure();
                self.bar.set_position(m.step);
                let elbo = m.extra(crate::train::NEG_ELBO);
                if let Some(elbo) = elbo {
                    let (bound, neg_elbo, steps) = &mut self.iw_epoch;
                    *bound += f64::from(m.total);
                    *neg_elbo += f64::from(elbo);
                    *steps += 1;
                }
                if m.step % 10 == 0 {
                    self.bar.set_message(match elbo {
                        Some(elbo) => format!(
                            "epoch {} negative IW bound {:.2}, negative ELBO {elbo:.2}  {samples_per_sec:.0} samples/s",
                            m.epoch, m.total
                        ),
                        None => format!(
                            "epoch {} loss {:.2} (rec {:.2} + KL {:.2})  {samples_per_sec:.0} samples/s",
                            m.epoch, m.total, m.reconstruction, m.kl
                        ),
                    });
                }
            }
            Event::Tested(t) => {
                let (bound, neg_elbo, steps) = std::mem::take(&mut self.iw_epoch);
                let k = self.run.config.hyper.iw_samples;
                self.say(|| {
                    if steps > 0 {
                        let n = steps as f64;
                        eprintln!(
                            "epoch {} training: negative IW bound (K = {k}) {:.2} nats, negative ELBO {:.2} nats (means over its steps)",
                            t.epoch,
                            bound / n,
                            neg_elbo / n
                        );
                    }
                    print_test(t)
                })
            }
            Event::Scored(s) => self.say(|| print_scores(s)),
            Event::EvaluatorProgress(p) => {
                let quiet = self.quiet;
                let b = self.evaluator_bar.get_or_insert_with(|| {
                    if quiet {
                        return ProgressBar::hidden();
                    }
                    bar(
                        1000,
                        "{bar:30} training the evaluator classifier (cached after)  [{elapsed}]",
                    )
                });
                b.set_position((p * 1000.0) as u64);
            }
            Event::EvaluatorReady(a) => {
                if let Some(b) = self.evaluator_bar.take() {
                    b.finish_and_clear();
                }
                self.say(|| eprintln!("evaluator: {:.2}% test accuracy", 100.0 * a));
            }
            Event::ScoringFailed(e) => {
                self.scoring = false;
                self.say(|| eprintln!("warning: samples not scored: {e}"));
            }
            Event::Failed(e) => self.failure = Some(e.clone()),
            Event::State(RunState::Paused | RunState::Stopped) => {
                return Some(
                    self.failure
                        .take()
                        .unwrap_or_else(|| "training paused".into()),
                );
            }
            Event::State(_)
            | Event::SnapshotReady { .. }
            | Event::Saved(_)
            | Event::Draws(_)
            | Event::RunFiles(_) => {}
        }
        None
    }

    /// Shows a failure that did not stop the run (a fatal one ends the command instead, named
    /// once).
    fn flush_failure(&mut self) {
        if let Some(e) = self.failure.take() {
            self.say(|| eprintln!("warning: {e}"));
        }
    }

    /// Prints what `f` prints, above the progress bar, unless quiet.
    fn say(&self, f: impl FnOnce()) {
        if !self.quiet {
            self.bar.suspend(f);
        }
    }

    /// Writes every view and table of the newest snapshot into the run folder.
    fn write(&mut self) -> anyhow::Result<()> {
        let Some(out) = &self.out else {
            return Ok(());
        };
        let written = folder::write_all(
            &self.run,
            self.run.snapshot.as_ref(),
            // The window's defaults: a fresh window exports the same pictures.
            &ViewChoices::default(),
            &mut folder::Folder(out.clone()),
            &folder::Progress::default(),
        )?;
        for s in &written.skipped {
            self.say(|| eprintln!("note: not written: {s}"));
        }
        self.written = self.run.last_step.as_ref().map(|m| m.step);
        Ok(())
    }
}
