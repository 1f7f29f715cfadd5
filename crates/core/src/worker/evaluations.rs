//! The end-of-epoch test evaluations, beside training: on a thread of their own at low
//! priority (nice 10), or, where training comes first and there is no thread (a browser page),
//! a chunk at a time between training steps. Either way through one
//! [`Runner`](crate::platform::Runner). Only the newest evaluation matters: one still waiting
//! when the next epoch ends is replaced by it (the curve then skips an epoch rather than fall
//! behind), and a result for a model that has since been replaced (reset, load) is dropped.
//! `train` on the command line evaluates whole, on the driver's own thread, every epoch in turn.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use web_time::Duration;

use super::outbox::Outbox;
use super::{Event, guarded};
use crate::platform::{Runner, Step, Work};
use crate::train::{Evaluation, EvaluationSteps, TestMetrics};

/// Test images (or, in the importance sampling, images times samples) per chunk of an
/// evaluation without a thread: a few milliseconds of a browser's time each.
const SLICE_ROWS: usize = 100;

/// The evaluations' thread (and its pool's).
const NAME: &str = "latent-atlas-evaluation";

/// Where the end-of-epoch evaluations run, and how side work shares the driver's turns.
pub(super) struct Evaluations {
    /// `None`: each evaluation runs whole, at once, on the driver's thread.
    runner: Option<Runner<()>>,
    jobs: Option<Sender<(Evaluation, u64)>>,
    /// Bumped whenever the trainer is replaced.
    generation: Arc<AtomicU64>,
    /// Whether the driver's last turn was side work (it alternates with training calls).
    pub side_last: bool,
    /// How long the last training call took: a side turn takes as long, so that side work
    /// gets half of the time while it has any.
    pub last_training: Duration,
}

impl Evaluations {
    /// Evaluations run whole on the caller's thread (`inline`), turned by the driver a chunk
    /// at a time (`turned`, or wherever no thread can be had), or on a thread of their own.
    pub fn new(inline: bool, turned: bool, out: &Outbox) -> Self {
        let generation = Arc::new(AtomicU64::new(0));
        let (jobs, runner) = match inline {
            true => (None, None),
            false => {
                let (send, receive) = std::sync::mpsc::channel();
                let work = Evaluating {
                    jobs: receive,
                    current: None,
                    generation: generation.clone(),
                    out: out.clone(),
                };
                let runner = match turned {
                    true => Some(Runner::turned(NAME, work)),
                    // Without a thread, each evaluation runs whole on the driver's.
                    false => Runner::start(NAME, work)
                        .map_err(|e| log::warn!("no thread for the test evaluations: {e}"))
                        .ok(),
                };
                (runner.is_some().then_some(send), runner)
            }
        };
        Self {
            runner,
            jobs,
            generation,
            side_last: false,
            last_training: Duration::ZERO,
        }
    }

    /// Forgets evaluations of the trainer that was just replaced.
    pub fn replaced(&mut self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Evaluates `job` and reports it as [`Event::Tested`]: at once when inline, else handed
    /// to the runner (a newer job replaces one not yet done). `false` when the consumer is gone.
    pub fn evaluate(&mut self, job: Evaluation, out: &Outbox) -> bool {
        let (Some(jobs), Some(runner)) = (&self.jobs, &mut self.runner) else {
            return report(guarded(|| job.run(true)), out);
        };
        let _ = jobs.send((job, self.generation.load(Ordering::SeqCst)));
        runner.poke();
        true
    }

    /// The runner, where it has no thread and something to do.
    pub fn wants_turn(&self) -> bool {
        self.runner.as_ref().is_some_and(Runner::wants_turn)
    }

    /// Turns evaluations without a thread for about `budget`.
    pub fn turn(&mut self, budget: Duration) {
        if let Some(runner) = &mut self.runner {
            runner.turn(budget);
        }
    }
}

/// Sends an evaluation's result, or why it failed.
pub(super) fn report(result: Result<TestMetrics, String>, out: &Outbox) -> bool {
    match result {
        Ok(test) => out.send(Event::Tested(test)),
        Err(e) => out.send(Event::Failed(format!("evaluation failed: {e}"))),
    }
}

/// The evaluations as [`Work`].
struct Evaluating {
    jobs: Receiver<(Evaluation, u64)>,
    /// The evaluation under way without a thread, a chunk a step, with its generation.
    current: Option<(Box<EvaluationSteps>, u64)>,
    generation: Arc<AtomicU64>,
    out: Outbox,
}

impl Work for Evaluating {
    type Output = ();

    fn step(&mut self, wait: bool) -> Step<()> {
        // The newest job waiting replaces the one under way.
        let mut newest = match (wait && self.current.is_none(), self.jobs.try_recv()) {
            (_, Ok(job)) => Some(job),
            (_, Err(TryRecvError::Disconnected)) => return Step::Done(()),
            (true, Err(TryRecvError::Empty)) => match self.jobs.recv() {
                Ok(job) => Some(job),
                Err(_) => return Step::Done(()),
            },
            (false, Err(TryRecvError::Empty)) => None,
        };
        while let Ok(newer) = self.jobs.try_recv() {
            newest = Some(newer);
        }
        let now = self.generation.load(Ordering::SeqCst);
        if let Some((job, generation)) = newest {
            if wait {
                // On a thread of its own: the whole evaluation at once.
                let result = guarded(|| job.run(true));
                let current = self.generation.load(Ordering::SeqCst) == generation;
                return match !current || report(result, &self.out) {
                    true => Step::Worked,
                    false => Step::Done(()),
                };
            }
            let steps = EvaluationSteps::new(job, true, SLICE_ROWS, SLICE_ROWS);
            self.current = Some((Box::new(steps), generation));
            return Step::Worked;
        }
        let Some((steps, generation)) = &mut self.current else {
            return Step::Idle;
        };
        if *generation != now {
            self.current = None;
            return Step::Worked;
        }
        let result = match guarded(|| steps.step()) {
            Ok(None) => return Step::Worked,
            Ok(Some(metrics)) => Ok(metrics),
            Err(e) => Err(e),
        };
        self.current = None;
        match report(result, &self.out) {
            true => Step::Worked,
            false => Step::Done(()),
        }
    }

    /// On its thread the evaluations run in a pool of one thread at low priority, so that the
    /// CPU backends' parallel kernels stay on it (see [`crate::backend::background_pool`]).
    fn run(self) {
        match crate::backend::background_pool(NAME) {
            Some(pool) => pool.install(move || crate::platform::run_steps(self)),
            None => crate::platform::run_steps(self),
        }
    }
}
