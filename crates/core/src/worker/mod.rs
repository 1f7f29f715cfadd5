//! The training loop, on a thread of its own (or turned between a page's frames). It owns the model; the UI (or the command line) talks to it with plain
//! data: [`Command`]s in, [`Event`]s out over bounded channels, and heavy [`Snapshot`]s through a
//! latest-value [`Slot`] so a slow reader always gets the newest and never a queue of stale ones.
//! After each send the worker calls an injected waker (the GUI passes `request_repaint`).

mod driver;
mod evaluations;
mod outbox;
mod pacing;
mod scorer;
mod slot;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

pub use slot::Slot;

use crate::backend::BackendChoice;
use crate::evaluator::Scores;
use crate::train::{HyperParams, Snapshot, StepMetrics, TestMetrics, TrainConfig};

/// Runs `f`, turning a panic into an error message.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|p| crate::platform::panic_message(p.as_ref()))
}

/// Called by the worker after every event it sends (e.g. to request a repaint).
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// Capacity of the command channel.
pub const COMMAND_CAPACITY: usize = 64;
/// Capacity of the event channel.
pub const EVENT_CAPACITY: usize = 4096;

/// How the worker paces its side work: the window wants training first and the newest of
/// everything; `train` on the command line wants every epoch evaluated, scored and saved.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Evaluate the test split at each epoch's end before training on (every epoch gets its
    /// row, in order). Otherwise the evaluation runs beside training at low priority, and one
    /// still waiting when the next epoch ends is replaced by it.
    pub evaluate_inline: bool,
    /// Otherwise, without a thread of its own: run the evaluation in chunks taking turns with
    /// training steps, so a driver turned in slices (a browser page's) never stalls on it.
    pub slice_evaluations: bool,
    /// Publish snapshots only at epochs' ends and on request, not while training.
    pub epoch_snapshots_only: bool,
    /// Generated samples scored by the evaluator after each epoch (0: no scoring).
    pub score_samples: usize,
    /// Temperature of the scored samples.
    pub score_temperature: f32,
    /// Score every epoch's model, waiting for the evaluator if need be; otherwise only the
    /// newest request is scored.
    pub score_every_epoch: bool,
    /// Save a checkpoint into this folder at every epoch's end.
    pub checkpoint_dir: Option<PathBuf>,
    /// Start from the run saved in this folder (its weights, and where it was saved with them
    /// its optimiser, random streams and schedule) instead of a fresh model; the config's
    /// epochs are the total to reach.
    pub resume: Option<PathBuf>,
    /// Treat the device's reads as asynchronous even where they are not, as WebGPU's are in a
    /// page (launched steps, a CPU copy of the model for everything that reads it): the page's
    /// path, run where a test can watch it.
    pub async_reads: bool,
}

impl Options {
    /// The window's pacing.
    pub fn window() -> Self {
        Self {
            evaluate_inline: false,
            slice_evaluations: !crate::platform::HAS_THREADS,
            epoch_snapshots_only: false,
            // The evaluator scores on a thread of its own, or (in a browser) a step at a time
            // between training steps.
            score_samples: scorer::SCORE_SAMPLES,
            score_temperature: scorer::SCORE_TEMPERATURE,
            score_every_epoch: false,
            checkpoint_dir: None,
            resume: None,
            async_reads: false,
        }
    }

    /// `train`'s pacing: every epoch evaluated, scored and (with a `dir`) checkpointed there.
    pub fn headless(dir: Option<PathBuf>, score_samples: usize, score_temperature: f32) -> Self {
        Self {
            evaluate_inline: true,
            slice_evaluations: false,
            epoch_snapshots_only: true,
            score_samples,
            score_temperature,
            score_every_epoch: true,
            checkpoint_dir: dir,
            resume: None,
            async_reads: false,
        }
    }
}

/// What the consumer asks of the worker.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Start (or continue) training.
    Start,
    /// Pause after the current step.
    Pause,
    /// Continue after a pause.
    Resume,
    /// End the run; the model stays for viewing and saving. `Start` after a stop continues it.
    Stop,
    /// Replace the model (and the dataset, when the config names another) by a fresh one.
    /// If the new dataset cannot be loaded, the old dataset and model stay.
    Reset(Box<TrainConfig>),
    /// Change the settings that may change mid-run.
    SetHyper(HyperParams),
    /// Change the number of epochs to train.
    SetEpochs(usize),
    /// Publish a snapshot now.
    Snapshot,
    /// Save a checkpoint (`config.json` and `model.bpk`) into a folder.
    Save(PathBuf),
    /// The run's checkpoint files (as [`Command::Save`] writes them), sent back as
    /// [`Event::RunFiles`]: where there is no folder to save into, as in a browser.
    SaveFiles,
    /// Replace the model by a saved run's (its dataset is loaded if it differs): a folder or a
    /// `.zip` of one, on disk or uploaded. On failure the current model stays.
    Load(crate::data::files::Source),
    /// Score the current model's samples with the dataset's evaluator (trained the first
    /// time, in the background). Also done after every epoch.
    Score,
    /// Compute probe sample `probe`'s `k` importance draws with the current model (answered
    /// by [`Event::Draws`]).
    Draws {
        /// The probe sample.
        probe: usize,
        /// How many draws.
        k: usize,
    },
    /// Leave the thread.
    Shutdown,
}

/// Where a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    /// A model exists but training has not started.
    Idle,
    /// Training.
    Running,
    /// Paused by the user or by a failure.
    Paused,
    /// Stopped by the user.
    Stopped,
    /// Every configured epoch is done.
    Finished,
}

/// What the worker reports.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A model is ready on a dataset (after start-up or a reset).
    Ready {
        /// The backend's description.
        backend: String,
        /// Why it is not the backend asked for, if it is not (a fallback).
        backend_notice: Option<String>,
        /// The dataset's name.
        dataset: String,
        /// Training samples.
        train_len: usize,
        /// Test samples.
        test_len: usize,
        /// Image width, height and channels (1: grey, 3: colour).
        image: [usize; 3],
        /// Classes of the labels (0: the dataset has none, so nothing is scored).
        classes: usize,
        /// The settings in force.
        config: Box<TrainConfig>,
    },
    /// Something worth telling the user that did not stop anything.
    Notice(String),
    /// A training step's metrics and the recent throughput.
    Progress {
        /// The step's metrics.
        metrics: StepMetrics,
        /// Training samples per second, recently.
        samples_per_sec: f32,
    },
    /// Test metrics after an epoch.
    Tested(TestMetrics),
    /// A new snapshot is in the slot.
    SnapshotReady {
        /// Its step.
        step: u64,
    },
    /// The run's state changed.
    State(RunState),
    /// A checkpoint was written.
    Saved(PathBuf),
    /// The checkpoint's files (name and bytes), answering [`Command::SaveFiles`].
    RunFiles(Vec<(String, Vec<u8>)>),
    /// The evaluator is being trained: the share done, 0 to 1.
    EvaluatorProgress(f32),
    /// The evaluator is ready, with its test accuracy.
    EvaluatorReady(f32),
    /// The evaluator's scores of a snapshot's samples.
    Scored(Scores),
    /// The evaluator could not be trained or loaded: nothing will be scored. Training goes on.
    ScoringFailed(String),
    /// The answer to [`Command::Draws`]: `None` when the family has no importance weights (or
    /// the model could not be reached).
    Draws(Option<crate::train::ImportanceDraws>),
    /// Something failed; the previous model (and dataset) are kept. A failed training step
    /// also pauses training (a `State` event follows).
    Failed(String),
}

/// A handle on the training loop: on its own thread, or (where there are no threads, as in a
/// browser) turned by the consumer with [`Worker::tick`]; either way through one
/// [`Runner`](crate::platform::Runner). Dropping it stops the loop.
pub struct Worker {
    commands: SyncSender<Command>,
    events: Option<Receiver<Event>>,
    snapshots: Arc<Slot<Snapshot>>,
    runner: crate::platform::Runner<()>,
}

/// The training loop's thread.
const NAME: &str = "latent-atlas-trainer";

/// What a driver starts from: the config, the device choice, the pacing, and where commands
/// come from and events go.
type DriverArgs = (
    TrainConfig,
    BackendChoice,
    Options,
    Receiver<Command>,
    outbox::Outbox,
);

/// The training loop as [`Work`](crate::platform::Work): the model is built at the first step
/// (so a page's first frame is not held up), then each step is a turn of the driver.
struct Training {
    /// What the first step builds the driver from.
    pending: Option<Box<DriverArgs>>,
    driver: Option<Box<driver::Driver>>,
}

impl crate::platform::Work for Training {
    type Output = ();

    fn step(&mut self, wait: bool) -> crate::platform::Step<()> {
        use crate::platform::Step;
        if let Some(args) = self.pending.take() {
            let (config, backend, options, commands, out) = *args;
            return match driver::Driver::start(config, backend, options, commands, out) {
                Some(driver) => {
                    self.driver = Some(Box::new(driver));
                    Step::Worked
                }
                None => Step::Done(()),
            };
        }
        let Some(driver) = &mut self.driver else {
            return Step::Done(());
        };
        match driver.turn(wait) {
            driver::Turn::Worked => Step::Worked,
            driver::Turn::Idle => Step::Idle,
            driver::Turn::Waiting => Step::Waiting,
            driver::Turn::Over => Step::Done(()),
        }
    }

    /// On its thread, the loop runs inside the compute pool (see
    /// [`crate::backend::on_compute_pool`]).
    fn run(self) {
        crate::backend::on_compute_pool(move || crate::platform::run_steps(self))
    }
}

impl Worker {
    /// Starts the thread with the window's pacing; it loads the dataset and builds the model,
    /// then waits for [`Command::Start`].
    pub fn spawn(
        config: TrainConfig,
        backend: BackendChoice,
        waker: Waker,
    ) -> std::io::Result<Self> {
        Self::spawn_with(config, backend, Options::window(), waker)
    }

    /// Starts the loop with the given pacing: on a thread named `latent-atlas-trainer`, or,
    /// where there are no threads, as the loop the caller turns ([`Worker::inline`]).
    pub fn spawn_with(
        config: TrainConfig,
        backend: BackendChoice,
        options: Options,
        waker: Waker,
    ) -> std::io::Result<Self> {
        Self::with_runner(
            config,
            backend,
            options,
            waker,
            !crate::platform::HAS_THREADS,
        )
    }

    /// The same loop without a thread, on any platform: nothing happens until the caller turns
    /// it with [`Worker::tick`] (the browser's frame loop does, a slice of each frame).
    pub fn inline(
        config: TrainConfig,
        backend: BackendChoice,
        options: Options,
        waker: Waker,
    ) -> Self {
        Self::with_runner(config, backend, options, waker, true)
            .unwrap_or_else(|_| unreachable!("a loop without a thread starts no thread"))
    }

    fn with_runner(
        config: TrainConfig,
        backend: BackendChoice,
        options: Options,
        waker: Waker,
        turned: bool,
    ) -> std::io::Result<Self> {
        let (commands, command_rx) = std::sync::mpsc::sync_channel(COMMAND_CAPACITY);
        let (event_tx, events) = std::sync::mpsc::sync_channel(EVENT_CAPACITY);
        let snapshots = Arc::new(Slot::default());
        let mut outbox = outbox::Outbox::new(event_tx, snapshots.clone(), waker);
        // A loop turned by its consumer must never wait for room in the queue it drains.
        if turned {
            outbox = outbox.never_waiting();
        }
        let work = Training {
            pending: Some(Box::new((config, backend, options, command_rx, outbox))),
            driver: None,
        };
        Ok(Self {
            commands,
            events: Some(events),
            snapshots,
            runner: match turned {
                true => crate::platform::Runner::turned(NAME, work),
                false => crate::platform::Runner::start(NAME, work)?,
            },
        })
    }

    /// Turns a loop without a thread for about `budget`: commands, then training steps, until
    /// the budget is spent or nothing is left to do (a step is never cut short, so one slow
    /// step can overrun it). The first tick builds the model. Returns whether there is more to
    /// do at once (training, or side work under way), so the caller knows to come back soon. A
    /// worker on its own thread ignores it.
    pub fn tick(&mut self, budget: std::time::Duration) -> bool {
        self.runner.turn(budget)
    }

    /// Sends a command; `false` if the worker is gone or its queue is full.
    pub fn send(&self, command: Command) -> bool {
        match self.commands.try_send(command) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }

    /// The events received so far, without waiting.
    pub fn drain(&self) -> Vec<Event> {
        self.events
            .as_ref()
            .map_or_else(Vec::new, |rx| rx.try_iter().collect())
    }

    /// Waits up to `timeout` for the next event (a thread's worker only: an inline one would
    /// wait for itself, so it gets no more than [`Worker::try_recv`]).
    pub fn recv_timeout(&self, timeout: std::time::Duration) -> Option<Event> {
        if !self.runner.on_thread() {
            return self.try_recv();
        }
        self.events.as_ref()?.recv_timeout(timeout).ok()
    }

    /// The next event, if one is waiting.
    pub fn try_recv(&self) -> Option<Event> {
        self.events.as_ref()?.try_recv().ok()
    }

    /// The newest snapshot, if one arrived since the last call.
    pub fn take_snapshot(&self) -> Option<Snapshot> {
        self.snapshots.take()
    }

    /// Whether the loop is still going.
    pub fn is_alive(&self) -> bool {
        !self.runner.is_finished()
    }

    /// Stops the thread and waits for it: one training step, and at most
    /// [`SHUTDOWN_DEADLINE`] (a device that stopped answering is left behind, with a warning).
    pub fn shutdown(&mut self) {
        // Dropping the receiver first unblocks a worker waiting on a full event queue.
        self.events = None;
        let _ = self.commands.try_send(Command::Shutdown);
        if let Some(Err(e)) = self.runner.join_within(SHUTDOWN_DEADLINE) {
            log::warn!("{e}");
        }
    }
}

/// How long [`Worker::shutdown`] waits for the training thread: longer than any one step or
/// inline evaluation chunk takes.
pub const SHUTDOWN_DEADLINE: web_time::Duration = web_time::Duration::from_secs(30);

impl Drop for Worker {
    fn drop(&mut self) {
        self.shutdown();
    }
}
