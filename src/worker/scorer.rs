//! The evaluator's own thread: it loads (or, the first time for a dataset, trains) the
//! evaluator classifier without holding up training, then scores each snapshot it is handed,
//! newest first, and reports through the worker's events.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use super::Event;
use super::thread::Outbox;
use crate::data::Dataset;
use crate::evaluator::{Evaluator, score};
use crate::train::Snapshot;

/// Generated samples per score.
pub const SCORE_SAMPLES: usize = 1000;
/// Temperature of scored samples.
pub const SCORE_TEMPERATURE: f32 = 1.0;

/// A handle on the scoring thread; it ends when the handle is dropped.
pub struct Scorer {
    data: Arc<Dataset>,
    requests: SyncSender<Snapshot>,
    every: bool,
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
        }
    }

    /// The dataset it scores against.
    pub fn data(&self) -> &Arc<Dataset> {
        &self.data
    }

    /// Queues a snapshot. When the queue is full the request is dropped (a newer one follows),
    /// unless every request is scored: then it waits for room.
    pub fn submit(&self, snapshot: Snapshot) {
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
