//! The evaluator's work beside training: it loads (or, the first time for a dataset, trains,
//! a batch a step) the evaluator classifier without holding up training, then scores each
//! snapshot it is handed, newest first, and reports through the worker's events. It runs
//! through the platform's [`Runner`]: on a thread of its own at low priority, or turned by the
//! driver between training steps (a browser page's pacing).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use web_time::{Duration, Instant};

use super::Event;
use super::outbox::Outbox;
use crate::data::Dataset;
use crate::evaluator::{ClassifierTraining, Evaluator, Keeping, score};
use crate::platform::{Runner, Step, Work};
use crate::train::Snapshot;

/// Generated samples per score.
pub const SCORE_SAMPLES: usize = 1000;
/// Temperature of scored samples.
pub const SCORE_TEMPERATURE: f32 = 1.0;

/// The scorer's thread (and its pool's).
const NAME: &str = "latent-atlas-evaluator";

/// A handle on the scorer; its work ends when the handle is dropped.
pub struct Scorer {
    data: Arc<Dataset>,
    requests: SyncSender<Snapshot>,
    every: bool,
    runner: Runner<()>,
}

/// What the scorer does with each snapshot.
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
    /// Starts the scorer for `data`: on a thread of its own, with the evaluator kept in the
    /// cache folder; or, when `turned` (or no thread can be had), as work the driver turns
    /// ([`Scorer::turn`]), with the evaluator kept in the page's storage.
    pub fn start(data: Arc<Dataset>, job: ScoreJob, turned: bool, out: &Outbox) -> Self {
        let (requests, receive) = std::sync::mpsc::sync_channel(4);
        let work = |requests, stage, keeping| Scoring {
            data: data.clone(),
            job,
            requests,
            stage,
            pending: None,
            keeping,
            out: out.clone(),
            reported: Instant::now(),
        };
        let runner = match turned {
            true => Runner::turned(NAME, work(receive, Stage::Start, Keeping::Page)),
            false => Runner::start(NAME, work(receive, Stage::Start, Keeping::Cache))
                .unwrap_or_else(|e| {
                    // Without the thread, requests are dropped; say why once.
                    out.send(Event::ScoringFailed(format!(
                        "cannot start the evaluator's thread: {e}"
                    )));
                    let (_, none) = std::sync::mpsc::sync_channel(1);
                    Runner::turned(NAME, work(none, Stage::Failed, Keeping::Cache))
                }),
        };
        Self {
            data,
            requests,
            every: job.every,
            runner,
        }
    }

    /// Whether [`Scorer::turn`] has work: the evaluator to train, or a snapshot to score.
    pub fn wants_turn(&self) -> bool {
        self.runner.wants_turn()
    }

    /// Turns a scorer without a thread for about `budget`.
    pub fn turn(&mut self, budget: Duration) {
        self.runner.turn(budget);
    }

    /// The dataset it scores against.
    pub fn data(&self) -> &Arc<Dataset> {
        &self.data
    }

    /// Queues a snapshot. When the queue is full the request is dropped (a newer one follows),
    /// unless every request is scored by a scorer on its own thread: then it waits for room.
    pub fn submit(&mut self, snapshot: Snapshot) {
        if self.every && self.runner.on_thread() {
            // An error means the thread has ended (its failure was reported).
            let _ = self.requests.send(snapshot);
            return;
        }
        match self.requests.try_send(snapshot) {
            Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
        }
        self.runner.poke();
    }
}

/// The scorer as [`Work`].
struct Scoring {
    data: Arc<Dataset>,
    job: ScoreJob,
    requests: Receiver<Snapshot>,
    stage: Stage,
    /// The newest request taken from the queue while the evaluator trains (unless every
    /// request is scored), so that the queue never fills with stale ones.
    pending: Option<Snapshot>,
    keeping: Keeping,
    out: Outbox,
    /// When progress was last reported.
    reported: Instant,
}

enum Stage {
    /// The evaluator is looked for where it is kept.
    Start,
    /// The classifier trains, a batch a step.
    Training(Box<ClassifierTraining>),
    /// It scores.
    Ready(Box<Evaluator>),
    /// It could not be trained (said once).
    Failed,
}

impl Work for Scoring {
    type Output = ();

    fn step(&mut self, wait: bool) -> Step<()> {
        let sent = match &mut self.stage {
            Stage::Start => self.start(),
            Stage::Training(training) => {
                if !self.job.every {
                    while let Ok(newer) = self.requests.try_recv() {
                        self.pending = Some(newer);
                    }
                }
                match training.step(&self.data) {
                    None if self.reported.elapsed() > Duration::from_millis(250) => {
                        self.reported = Instant::now();
                        self.out.send(Event::EvaluatorProgress(training.share()))
                    }
                    None => true,
                    Some(classifier) => {
                        let evaluator = self.keeping.keep(&self.data, classifier);
                        let accuracy = evaluator.test_accuracy;
                        self.stage = Stage::Ready(Box::new(evaluator));
                        self.out.send(Event::EvaluatorReady(accuracy))
                    }
                }
            }
            Stage::Ready(evaluator) => {
                let next = match self.pending.take() {
                    Some(snapshot) => Ok(snapshot),
                    None if wait => self.requests.recv().map_err(|_| TryRecvError::Disconnected),
                    None => self.requests.try_recv(),
                };
                let mut snapshot = match next {
                    Ok(snapshot) => snapshot,
                    Err(TryRecvError::Empty) => return Step::Idle,
                    Err(TryRecvError::Disconnected) => return Step::Done(()),
                };
                // Unless every request is scored, only the newest matters.
                while !self.job.every
                    && let Ok(newer) = self.requests.try_recv()
                {
                    snapshot = newer;
                }
                let job = self.job;
                let scores = score(evaluator, &snapshot, job.samples, job.temperature, job.seed);
                self.out.send(Event::Scored(scores))
            }
            // Requests are dropped: the failure was said.
            Stage::Failed if wait => return Step::Done(()),
            Stage::Failed => return Step::Idle,
        };
        match sent {
            true => Step::Worked,
            false => Step::Done(()),
        }
    }

    /// On its thread the scorer runs in a pool of one thread at low priority (nice 10). On a
    /// two-core laptop the first-time training of the evaluator would otherwise take a core
    /// and the shared thread pool from the model being watched; this way it takes about a
    /// tenth of one.
    fn run(self) {
        match crate::backend::background_pool("latent-atlas-evaluator-pool") {
            Some(pool) => pool.install(move || crate::platform::run_steps(self)),
            None => crate::platform::run_steps(self),
        }
    }
}

impl Scoring {
    /// The evaluator where it is kept, else its training begun; `false` when the consumer is
    /// gone.
    fn start(&mut self) -> bool {
        if !self.data.is_labelled() {
            self.stage = Stage::Failed;
            return self.out.send(Event::ScoringFailed(format!(
                "evaluator: {} has no class labels, so no evaluator can be trained on it",
                self.data.name
            )));
        }
        match self.keeping.kept(&self.data) {
            Some(evaluator) => {
                let accuracy = evaluator.test_accuracy;
                self.stage = Stage::Ready(Box::new(evaluator));
                self.out.send(Event::EvaluatorReady(accuracy))
            }
            None => {
                let device = burn::tensor::Device::flex();
                let training = ClassifierTraining::new(&self.data, &device);
                self.stage = Stage::Training(Box::new(training));
                true
            }
        }
    }
}
