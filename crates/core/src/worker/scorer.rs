//! The evaluator's own thread: it loads (or, the first time for a dataset, trains) the
//! evaluator classifier without holding up training, then scores each snapshot it is handed,
//! newest first, and reports through the worker's events.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use web_time::{Duration, Instant};

use super::Event;
use super::outbox::Outbox;
use crate::data::Dataset;
use crate::evaluator::{Evaluator, score};
use crate::train::Snapshot;

/// Generated samples per score.
pub const SCORE_SAMPLES: usize = 1000;
/// Temperature of scored samples.
pub const SCORE_TEMPERATURE: f32 = 1.0;

/// A handle on the scoring thread; it ends when the handle is dropped. Where there are no
/// threads (a browser page), the same work done a step at a time by [`Scorer::step`].
pub struct Scorer {
    data: Arc<Dataset>,
    requests: SyncSender<Snapshot>,
    every: bool,
    inline: Option<Box<Inline>>,
}

/// The scorer's work without a thread.
struct Inline {
    job: ScoreJob,
    stage: Stage,
    /// The newest snapshot waiting to be scored.
    pending: Option<Snapshot>,
    /// When progress was last reported.
    reported: Instant,
}

enum Stage {
    /// The classifier trains, a batch a step.
    Training(Box<crate::evaluator::ClassifierTraining>),
    /// It scores.
    Ready(Box<Evaluator>),
    /// It could not be trained (said once).
    Failed,
}

/// What the scoring thread does with each snapshot.
#[derive(Clone, Copy, Debug)]
pub struct ScoreJob {
    /// Seed of the samples' noise.
    pub seed: u64,
    /// Samples scored.
    pub samples: usize,
    /// Their prior temperature.
    pub temperature: f32,
    /// Score each request (and let [`Scorer::submit`] wait for room), not only the newest.
    pub every: bool,
}

impl Scorer {
    /// Starts the thread for `data`, scoring as `job` says.
    pub fn spawn(data: Arc<Dataset>, job: ScoreJob, out: Outbox) -> Self {
        let (requests, rx) = std::sync::mpsc::sync_channel(4);
        let (thread_data, thread_out) = (data.clone(), out.clone());
        let spawned = std::thread::Builder::new()
            .name("latent-atlas-evaluator".into())
            .spawn(move || run(thread_data, job, rx, thread_out));
        if let Err(e) = spawned {
            // Without the thread, requests are dropped; say why once.
            out.send(Event::Failed(format!(
                "cannot start the evaluator thread: {e}"
            )));
        }
        Self {
            data,
            requests,
            every: job.every,
            inline: None,
        }
    }

    /// The scorer without a thread: nothing happens but in [`Scorer::step`]. The evaluator
    /// is the one the page kept in the browser's storage for this dataset, or is trained
    /// afresh, a batch a step, and then kept there.
    pub fn inline(data: Arc<Dataset>, job: ScoreJob, out: &Outbox) -> Self {
        let (requests, _) = std::sync::mpsc::sync_channel(1);
        let kept = data
            .is_labelled()
            .then(|| crate::evaluator::kept_in_page(&data));
        let stage = match kept {
            Some(Some(classifier)) => {
                let evaluator = Evaluator::new(classifier, &data, None);
                out.send(Event::EvaluatorReady(evaluator.test_accuracy));
                Stage::Ready(Box::new(evaluator))
            }
            Some(None) => Stage::Training(Box::new(crate::evaluator::ClassifierTraining::new(
                &data,
                &burn::tensor::Device::flex(),
            ))),
            None => {
                out.send(Event::ScoringFailed(format!(
                    "evaluator: {} has no class labels, so no evaluator can be trained on it",
                    data.name
                )));
                Stage::Failed
            }
        };
        Self {
            data,
            requests,
            every: job.every,
            inline: Some(Box::new(Inline {
                job,
                stage,
                pending: None,
                reported: Instant::now(),
            })),
        }
    }

    /// Whether [`Scorer::step`] has work: the evaluator to train, or a snapshot to score.
    pub fn has_work(&self) -> bool {
        self.inline.as_ref().is_some_and(|i| match i.stage {
            Stage::Training(_) => true,
            Stage::Ready(_) => i.pending.is_some(),
            Stage::Failed => false,
        })
    }

    /// One step of an inline scorer's work: a batch of the evaluator's training, or the score
    /// of the snapshot waiting. `false` when the events' consumer is gone.
    pub fn step(&mut self, out: &Outbox) -> bool {
        let Some(inline) = &mut self.inline else {
            return true;
        };
        match &mut inline.stage {
            Stage::Training(training) => {
                let Some(classifier) = training.step(&self.data) else {
                    if inline.reported.elapsed() > Duration::from_millis(250) {
                        inline.reported = Instant::now();
                        return out.send(Event::EvaluatorProgress(training.share()));
                    }
                    return true;
                };
                // Kept for the page's next load (a full or refused storage only costs this
                // training again).
                crate::evaluator::keep_in_page(&self.data, &classifier);
                let evaluator = Evaluator::new(classifier, &self.data, None);
                let accuracy = evaluator.test_accuracy;
                inline.stage = Stage::Ready(Box::new(evaluator));
                out.send(Event::EvaluatorReady(accuracy))
            }
            Stage::Ready(evaluator) => match inline.pending.take() {
                Some(snapshot) => {
                    let job = inline.job;
                    let scores =
                        score(evaluator, &snapshot, job.samples, job.temperature, job.seed);
                    out.send(Event::Scored(scores))
                }
                None => true,
            },
            Stage::Failed => true,
        }
    }

    /// The dataset it scores against.
    pub fn data(&self) -> &Arc<Dataset> {
        &self.data
    }

    /// Queues a snapshot. When the queue is full the request is dropped (a newer one follows),
    /// unless every request is scored: then it waits for room.
    pub fn submit(&mut self, snapshot: Snapshot) {
        if let Some(inline) = &mut self.inline {
            // Only the newest matters.
            inline.pending = Some(snapshot);
            return;
        }
        if self.every {
            // An error means the thread has ended (its failure was reported).
            let _ = self.requests.send(snapshot);
            return;
        }
        match self.requests.try_send(snapshot) {
            Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// Runs the evaluator's work in a pool of its own: one thread at low priority (nice 10). On a
/// two-core laptop the first-time training of the evaluator would otherwise take a core and the
/// shared thread pool from the model being watched; this way it takes about a tenth of one.
fn run(data: Arc<Dataset>, job: ScoreJob, requests: Receiver<Snapshot>, out: Outbox) {
    match crate::backend::background_pool("latent-atlas-evaluator-pool") {
        Some(pool) => pool.install(|| evaluate(data, job, requests, out)),
        None => evaluate(data, job, requests, out),
    }
}

fn evaluate(data: Arc<Dataset>, job: ScoreJob, requests: Receiver<Snapshot>, out: Outbox) {
    let mut last = Instant::now();
    let mut progress = |p: f32| {
        if last.elapsed() > Duration::from_millis(250) {
            last = Instant::now();
            out.send(Event::EvaluatorProgress(p));
        }
    };
    let device = burn::tensor::Device::flex();
    let evaluator = match Evaluator::for_dataset(&data, &device, &mut progress) {
        Ok(e) => e,
        Err(e) => {
            out.send(Event::ScoringFailed(format!("evaluator: {e:#}")));
            return;
        }
    };
    if !out.send(Event::EvaluatorReady(evaluator.test_accuracy)) {
        return;
    }
    while let Ok(mut snapshot) = requests.recv() {
        // Unless every request is scored, only the newest matters.
        while !job.every
            && let Ok(newer) = requests.try_recv()
        {
            snapshot = newer;
        }
        let scores = score(
            &evaluator,
            &snapshot,
            job.samples,
            job.temperature,
            job.seed,
        );
        if !out.send(Event::Scored(scores)) {
            return;
        }
    }
}
