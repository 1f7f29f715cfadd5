//! The worker thread's loop: commands between steps, events after them.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use web_time::{Duration, Instant};

use super::outbox::Outbox;
use super::scorer::{ScoreJob, Scorer};
use super::{Command, Event, Options, RunState};
use crate::backend::{Backend, BackendChoice};
use crate::data::{Dataset, DatasetSpec};
use crate::train::{TestMetrics, TrainConfig, Trainer};

/// Steps between snapshots while training.
pub const SNAPSHOT_EVERY: u64 = 25;
/// How long an idle worker waits for a command before looking again.
const IDLE_WAIT: Duration = Duration::from_millis(200);

/// A panic's message, for the user.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs `f`, turning a panic into an error message.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).map_err(|p| panic_message(p.as_ref()))
}

struct Session {
    trainer: Trainer,
    /// The evaluator's thread for the current dataset, started at the first score request.
    scorer: Option<Scorer>,
    backend: Backend,
    state: RunState,
    throughput: Throughput,
    /// End-of-epoch test evaluations, run beside training at low priority.
    background: Background,
    /// When the last snapshot was taken and what it cost.
    pacer: std::cell::Cell<SnapshotPacer>,
    options: Options,
    /// What the device was chosen from, to connect again.
    choice: BackendChoice,
    /// A remote run's last weights on this machine (saved at each epoch's end when there is no
    /// checkpoint folder), to continue from after the connection is lost.
    recovery: Option<tempfile::TempDir>,
    /// Whether this trainer's weights were kept at an epoch's end (in the checkpoint folder or
    /// the recovery folder): cleared whenever the trainer is replaced, so that another run's
    /// weights are never taken for this one's.
    kept: bool,
    /// A remote step failed: the next Start or Resume connects again first.
    lost: bool,
    /// How many steps share one readback.
    readback: Readback,
}

/// Spaces snapshots so that taking them costs at most a thirtieth of training time: at least
/// [`SNAPSHOT_EVERY`] steps apart, and at least 29 times the last one's duration.
#[derive(Clone, Copy, Debug)]
struct SnapshotPacer {
    last: Instant,
    cost: Duration,
}

impl Default for SnapshotPacer {
    fn default() -> Self {
        Self {
            last: Instant::now(),
            cost: Duration::ZERO,
        }
    }
}

impl SnapshotPacer {
    fn due(&self) -> bool {
        self.last.elapsed() >= self.cost * 29
    }
}

/// One thread at low priority (nice 10) for work that may lag behind training: the end-of-epoch
/// test evaluation. Only the newest evaluation waits: one still queued when the next epoch ends
/// is replaced by it (the curve then skips an epoch rather than fall behind). A result for a
/// model that has since been replaced (reset, load) is dropped.
struct Background {
    pool: Option<rayon::ThreadPool>,
    /// Without a pool and where training comes first (a browser page): the evaluation under
    /// way, a chunk at a time between training steps ([`Session::evaluation_step`]).
    sliced: Option<Box<crate::train::EvaluationSteps>>,
    /// Whether evaluations without a pool are sliced (else they run whole, at once).
    slice: bool,
    /// Whether the last turn was side work (it alternates with training calls).
    evaluated_last: bool,
    /// How long the last training call took: a side turn takes as long, so that side work
    /// gets half of the time while it has any.
    last_training: Duration,
    /// Bumped whenever the trainer is replaced.
    generation: Arc<std::sync::atomic::AtomicU64>,
    /// The evaluation waiting for the thread, with its generation.
    pending: Arc<std::sync::Mutex<Option<(crate::train::Evaluation, u64)>>>,
}

impl Background {
    /// Evaluations on a low-priority thread, or on the caller's: whole (`inline`), or in
    /// chunks (`slice`, or when no thread can be had).
    fn new(inline: bool, slice: bool) -> Self {
        let pool = match inline || slice {
            true => None,
            false => crate::backend::background_pool("latent-atlas-evaluation"),
        };
        Self {
            slice: !inline && pool.is_none(),
            sliced: None,
            evaluated_last: false,
            last_training: Duration::ZERO,
            pool,
            generation: Arc::default(),
            pending: Arc::default(),
        }
    }

    fn replaced(&mut self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.sliced = None;
    }

    /// Evaluates `job` and reports it as [`Event::Tested`]; inline when there is no pool
    /// (sliced: begun, and carried on between training steps; a newer job replaces it).
    fn evaluate(&mut self, job: crate::train::Evaluation, out: &Outbox) -> bool {
        let Some(pool) = &self.pool else {
            if self.slice {
                self.sliced = Some(Box::new(crate::train::EvaluationSteps::new(
                    job, true, SLICE_ROWS, SLICE_ROWS,
                )));
                return true;
            }
            return report_evaluation(guarded(|| job.run(true)), out);
        };
        let generation = self.generation.clone();
        let started = generation.load(std::sync::atomic::Ordering::SeqCst);
        let replaced = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace((job, started))
            .is_some();
        if replaced {
            // A task is already queued; it will take this newer job.
            return true;
        }
        let (pending, out) = (self.pending.clone(), out.clone());
        pool.spawn(move || {
            let Some((job, started)) = pending.lock().unwrap_or_else(|p| p.into_inner()).take()
            else {
                return;
            };
            let result = guarded(|| job.run(true));
            if generation.load(std::sync::atomic::Ordering::SeqCst) == started {
                report_evaluation(result, &out);
            }
        });
        true
    }
}

/// Test images (or, in the importance sampling, images times samples) per chunk of a sliced
/// evaluation: a few milliseconds of a browser's time each.
const SLICE_ROWS: usize = 100;

/// Sends an evaluation's result, or why it failed.
fn report_evaluation(result: Result<TestMetrics, String>, out: &Outbox) -> bool {
    match result {
        Ok(test) => out.send(Event::Tested(test)),
        Err(e) => out.send(Event::Failed(format!("evaluation failed: {e}"))),
    }
}

/// Loads the dataset and builds the trainer, or says why not.
fn build(
    config: &TrainConfig,
    backend: &Backend,
    data: Option<Arc<Dataset>>,
) -> Result<Trainer, String> {
    let data = match data {
        Some(d) => d,
        None => Arc::new(
            DatasetSpec::parse(&config.dataset)
                .load_sized(config.seed, config.image_size)
                .map_err(|e| e.to_string())?,
        ),
    };
    let device = backend.device.clone();
    let config = config.clone();
    let mut trainer =
        guarded(move || Trainer::new(config, data, device))?.map_err(|e| e.to_string())?;
    trainer.keep_images_on_device(backend.images_on_device);
    Ok(trainer)
}

/// What one turn of the loop did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    /// Handled a command or trained.
    Worked,
    /// Nothing to do: no command waiting and not training.
    Idle,
    /// The loop is over (shut down, or the consumer is gone).
    Over,
}

/// The training loop between its turns: the session and where its commands come from. A
/// thread turns it in a loop ([`run`]); where there are no threads (a browser), the frame loop
/// turns it for a slice of each frame.
pub struct Driver {
    session: Session,
    commands: Receiver<Command>,
    out: Outbox,
}

impl Driver {
    /// Selects the device, loads the dataset and builds the model, then announces it; `None`,
    /// after an event saying why, when that fails or nobody listens.
    pub fn start(
        config: TrainConfig,
        choice: BackendChoice,
        options: Options,
        commands: Receiver<Command>,
        out: Outbox,
    ) -> Option<Self> {
        let backend = match choice.select() {
            Ok(b) => b,
            Err(e) => {
                out.send(Event::Failed(e.to_string()));
                return None;
            }
        };
        if let Some(notice) = &backend.notice {
            out.send(Event::Notice(notice.clone()));
        }
        let trainer = match build(&config, &backend, None) {
            Ok(t) => t,
            Err(e) => {
                out.send(Event::Failed(e));
                return None;
            }
        };
        let readback = Readback::for_backend(&backend);
        let mut session = Session {
            trainer,
            scorer: None,
            backend,
            state: RunState::Idle,
            throughput: Throughput::default(),
            background: Background::new(options.evaluate_inline, options.slice_evaluations),
            pacer: Default::default(),
            options,
            readback,
            choice,
            recovery: None,
            kept: false,
            lost: false,
        };
        session.announce(&out).then_some(Self {
            session,
            commands,
            out,
        })
    }

    /// One turn: the next command if one waits, else (while training) one training call. An
    /// idle driver waits a moment for a command when `wait` is set (a thread's loop), and
    /// otherwise returns at once.
    pub fn turn(&mut self, wait: bool) -> Turn {
        let running = self.session.state == RunState::Running;
        let command = if running || !wait {
            match self.commands.try_recv() {
                Ok(c) => Some(c),
                Err(std::sync::mpsc::TryRecvError::Empty) => None,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return Turn::Over,
            }
        } else {
            match self.commands.recv_timeout(IDLE_WAIT) {
                Ok(c) => Some(c),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return Turn::Over,
            }
        };
        // Side work without a thread (a sliced evaluation, an inline scorer's) takes turns with
        // training, and goes on alone while idle.
        let session = &self.session;
        let side_work = session.background.sliced.is_some()
            || session.scorer.as_ref().is_some_and(Scorer::has_work);
        let side_turn = side_work && (!running || !session.background.evaluated_last);
        let alive = match command {
            Some(Command::Shutdown) => return Turn::Over,
            Some(c) => self.session.handle(c, &self.out),
            None if side_turn => self.session.side_step(&self.out),
            None if running => {
                self.session.background.evaluated_last = false;
                self.session.train_one(&self.out)
            }
            None => return Turn::Idle,
        };
        match alive {
            true => Turn::Worked,
            false => Turn::Over,
        }
    }

    /// Whether it is training.
    pub fn is_running(&self) -> bool {
        self.session.state == RunState::Running
    }
}

/// The thread's body.
pub fn run(
    config: TrainConfig,
    choice: BackendChoice,
    options: Options,
    commands: Receiver<Command>,
    out: Outbox,
) {
    let Some(mut driver) = Driver::start(config, choice, options, commands, out) else {
        return;
    };
    while driver.turn(true) != Turn::Over {}
}

impl Session {
    fn announce(&mut self, out: &Outbox) -> bool {
        let data = self.trainer.data();
        for w in &data.warnings {
            out.send(Event::Notice(w.clone()));
        }
        if data.train.is_colour()
            && self.trainer.config().likelihood == crate::model::Likelihood::Bernoulli
        {
            out.send(Event::Notice(format!(
                "{} is in colour: the Bernoulli likelihood takes its values in [0, 1] as targets, \
                 which is not a normalised likelihood of colour; the discretised logistic \
                 likelihood (or the Gaussian) is one",
                data.name
            )));
        }
        out.send(Event::Ready {
            backend: self.backend.description.clone(),
            dataset: data.name.clone(),
            train_len: data.train.len(),
            test_len: data.test.len(),
            image: [
                data.train.width,
                data.train.height,
                data.train.channels.max(1),
            ],
            classes: match data.is_labelled() {
                true => data.class_names.len(),
                false => 0,
            },
            config: Box::new(self.trainer.config().clone()),
        }) && self.publish_snapshot(out)
            && self.set_state(RunState::Idle, out)
    }

    /// Hands the current model to the scorer (started for this dataset if needed). Unless the
    /// user asked (`asked`), a dataset without labels is passed over silently.
    fn request_score(&mut self, asked: bool, out: &Outbox) -> bool {
        let o = &self.options;
        if o.score_samples == 0 {
            return true;
        }
        let job = ScoreJob {
            seed: self.trainer.config().seed,
            samples: o.score_samples,
            temperature: o.score_temperature,
            every: o.score_every_epoch,
        };
        let data = self.trainer.data().clone();
        if !data.is_labelled() && !asked {
            return true;
        }
        if !data.is_labelled() {
            return out.send(Event::Notice(format!(
                "{} has no labels, so the evaluator cannot score samples",
                data.name
            )));
        }
        let slice = self.options.slice_evaluations;
        let scorer = match &mut self.scorer {
            Some(s) if Arc::ptr_eq(s.data(), &data) => s,
            _ if slice => self.scorer.insert(Scorer::inline(data, job, out)),
            _ => self.scorer.insert(Scorer::spawn(data, job, out.clone())),
        };
        match guarded(|| self.trainer.snapshot(false)) {
            Ok(s) => {
                scorer.submit(s);
                true
            }
            Err(e) => out.send(Event::Failed(format!("snapshot failed: {e}"))),
        }
    }

    fn set_state(&mut self, state: RunState, out: &Outbox) -> bool {
        self.state = state;
        self.throughput = Throughput::default();
        out.send(Event::State(state))
    }

    fn publish_snapshot(&self, out: &Outbox) -> bool {
        let start = Instant::now();
        let snapshot = guarded(|| self.trainer.snapshot(true));
        self.pacer.set(SnapshotPacer {
            last: Instant::now(),
            cost: start.elapsed(),
        });
        match snapshot {
            Ok(s) => out.snapshot(s),
            Err(e) => out.send(Event::Failed(format!("snapshot failed: {e}"))),
        }
    }

    fn handle(&mut self, command: Command, out: &Outbox) -> bool {
        if self.lost {
            match &command {
                // The model lives in the lost session.
                Command::Save(_) | Command::SaveFiles => {
                    return out.send(Event::Failed(format!(
                        "cannot save: the connection to {} is lost; Resume connects again and \
                         continues from the last epoch's weights",
                        self.backend.description
                    )));
                }
                // A new model needs a live session: connect first.
                Command::Load(_) | Command::Reset(_) => match self.choice.select() {
                    Ok(backend) => {
                        self.readback = Readback::for_backend(&backend);
                        self.backend = backend;
                        self.lost = false;
                    }
                    Err(e) => return out.send(Event::Failed(e.to_string())),
                },
                _ => {}
            }
        }
        match command {
            Command::Start | Command::Resume => {
                if self.lost {
                    match self.reconnect() {
                        Ok(notice) => {
                            if !out.send(Event::Notice(notice)) {
                                return false;
                            }
                        }
                        Err(e) => return out.send(Event::Failed(e)),
                    }
                }
                if self.trainer.is_finished() {
                    out.send(Event::Notice(
                        "every epoch is done; raise the epoch count to train on".into(),
                    ))
                } else {
                    self.set_state(RunState::Running, out)
                }
            }
            Command::Pause if self.state == RunState::Running => {
                self.set_state(RunState::Paused, out)
            }
            Command::Pause => true,
            Command::Stop => self.set_state(RunState::Stopped, out),
            Command::SetHyper(h) => match self.trainer.set_hyper(h) {
                Ok(()) => true,
                Err(e) => out.send(Event::Failed(e.to_string())),
            },
            Command::SetEpochs(n) => {
                self.trainer.set_epochs(n);
                true
            }
            Command::Snapshot => self.publish_snapshot(out),
            Command::Score => self.request_score(true, out),
            Command::Draws { probe, k } => {
                // The model of a lost remote session cannot be reached: no draws.
                let draws = match self.lost {
                    true => None,
                    false => guarded(|| self.trainer.importance_draws(probe, k))
                        .ok()
                        .flatten(),
                };
                out.send(Event::Draws(draws))
            }
            Command::Save(dir) => self.save(dir, out),
            Command::SaveFiles => {
                let info = self.trainer.run_info(&self.backend.description);
                let model = self.trainer.model();
                let slot = crate::train::checkpoint::MODEL_FILE;
                match guarded(|| crate::train::checkpoint::run_files(model, &info, slot)) {
                    Ok(Ok(files)) => out.send(Event::RunFiles(files)),
                    Ok(Err(e)) => out.send(Event::Failed(format!("{e:#}"))),
                    Err(panic) if self.is_remote() => self.connection_lost(panic, out),
                    Err(panic) => out.send(Event::Failed(format!("saving failed: {panic}"))),
                }
            }
            Command::Load(dir) => {
                let result = crate::train::checkpoint::read_info(&dir).and_then(|info| {
                    let now = self.trainer.config();
                    let same = info.config.dataset == now.dataset
                        && info.config.image_size == now.image_size;
                    let data = match same {
                        true => self.trainer.data().clone(),
                        false => Arc::new(
                            DatasetSpec::parse(&info.config.dataset)
                                .load_sized(info.config.seed, info.config.image_size)?,
                        ),
                    };
                    Trainer::from_checkpoint(&dir, data, self.backend.device.clone())
                });
                match result {
                    Ok(mut t) => {
                        t.keep_images_on_device(self.backend.images_on_device);
                        self.trainer = t;
                        self.forget_kept();
                        self.background.replaced();
                        self.announce(out)
                    }
                    Err(e) => out.send(Event::Failed(format!("{e:#}"))),
                }
            }
            Command::Reset(config) => {
                let same_data = config.dataset == self.trainer.config().dataset
                    && config.seed == self.trainer.config().seed;
                let data = same_data.then(|| self.trainer.data().clone());
                match build(&config, &self.backend, data) {
                    Ok(t) => {
                        self.trainer = t;
                        self.forget_kept();
                        self.background.replaced();
                        self.announce(out)
                    }
                    // The old model and dataset stay, in whatever state they were.
                    Err(e) => out.send(Event::Failed(e)),
                }
            }
            Command::Shutdown => false,
        }
    }

    fn is_remote(&self) -> bool {
        matches!(self.choice, BackendChoice::Remote(_))
    }

    /// After a remote step failed: marks the connection lost (the next Start or Resume
    /// connects again) and says how to go on.
    fn connection_lost(&mut self, message: String, out: &Outbox) -> bool {
        self.lost = true;
        // burn's message says which read failed, not why; the log keeps it.
        log::warn!("{}: {message}", self.backend.description);
        let from = match self.recovery_dir() {
            Some(_) => "the last epoch's weights",
            None => "the start",
        };
        out.send(Event::Failed(format!(
            "the connection to {} is lost (step {}): Resume connects again and continues from \
             {from}",
            self.backend.description,
            self.trainer.step_count() + 1
        ))) && self.set_state(RunState::Paused, out)
    }

    /// A new trainer: the weights kept so far are another run's.
    fn forget_kept(&mut self) {
        self.kept = false;
        self.recovery = None;
    }

    /// Where this run's last weights were saved, if anywhere yet.
    fn recovery_dir(&self) -> Option<std::path::PathBuf> {
        if !self.kept {
            return None;
        }
        let dir = match (&self.options.checkpoint_dir, &self.recovery) {
            (Some(dir), _) => dir.clone(),
            (None, Some(tmp)) => tmp.path().to_owned(),
            (None, None) => return None,
        };
        dir.join(crate::train::checkpoint::CONFIG_FILE)
            .exists()
            .then_some(dir)
    }

    /// Keeps a remote run's weights on this machine at an epoch's end, unless the checkpoint
    /// folder has them already.
    fn keep_recovery(&mut self, out: &Outbox) -> bool {
        if !self.is_remote() || self.options.checkpoint_dir.is_some() {
            return true;
        }
        if self.recovery.is_none() {
            match tempfile::Builder::new()
                .prefix("latent-atlas-recovery-")
                .tempdir()
            {
                Ok(dir) => self.recovery = Some(dir),
                Err(e) => {
                    return out.send(Event::Notice(format!(
                        "cannot keep the remote run's weights on this machine ({e}): a lost \
                         connection would start over"
                    )));
                }
            }
        }
        let Some(dir) = self.recovery.as_ref().map(|d| d.path().to_owned()) else {
            return true;
        };
        let info = self.trainer.run_info(&self.backend.description);
        match guarded(|| crate::train::checkpoint::save(&dir, self.trainer.model(), &info)) {
            Ok(Ok(())) => {
                self.kept = true;
                true
            }
            Ok(Err(e)) => out.send(Event::Notice(format!(
                "cannot keep the remote run's weights on this machine: {e:#}"
            ))),
            Err(panic) => self.connection_lost(panic, out),
        }
    }

    /// Connects to the server again and rebuilds the trainer there from the last weights kept
    /// on this machine (or from the start); returns what to tell the user.
    fn reconnect(&mut self) -> Result<String, String> {
        let backend = self.choice.select().map_err(|e| e.to_string())?;
        let data = self.trainer.data().clone();
        let device = backend.device.clone();
        let mut trainer = match self.recovery_dir() {
            Some(dir) => guarded(|| Trainer::from_checkpoint(&dir, data, device))?
                .map_err(|e| format!("{e:#}"))?,
            None => {
                let config = self.trainer.config().clone();
                guarded(|| Trainer::new(config, data, device))?.map_err(|e| e.to_string())?
            }
        };
        // Kept weights stay valid: the new trainer starts from them.
        trainer.keep_images_on_device(backend.images_on_device);
        let notice = format!(
            "connected again to {}; continuing from step {} (epoch {})",
            backend.description,
            trainer.step_count(),
            trainer.epochs_done()
        );
        // The old trainer's tensors lived in the lost session; letting them go may fail too.
        let old = std::mem::replace(&mut self.trainer, trainer);
        let _ = guarded(move || drop(old));
        self.readback = Readback::for_backend(&backend);
        self.backend = backend;
        self.background.replaced();
        self.lost = false;
        Ok(notice)
    }

    /// Writes the checkpoint into `dir` and says so, or why not.
    /// Side work done without a thread, for as long as the last training call took (at least
    /// one step): chunks of a sliced evaluation, then steps of an inline scorer.
    fn side_step(&mut self, out: &Outbox) -> bool {
        self.background.evaluated_last = true;
        let until = Instant::now() + self.background.last_training;
        loop {
            if !self.side_work_step(out) {
                return false;
            }
            let more = self.background.sliced.is_some()
                || self.scorer.as_ref().is_some_and(Scorer::has_work);
            if !more || Instant::now() >= until {
                return true;
            }
        }
    }

    /// One chunk of a sliced evaluation, else one step of an inline scorer.
    fn side_work_step(&mut self, out: &Outbox) -> bool {
        let Some(steps) = &mut self.background.sliced else {
            return match &mut self.scorer {
                Some(scorer) => match guarded(|| scorer.step(out)) {
                    Ok(alive) => alive,
                    Err(e) => {
                        self.scorer = None;
                        out.send(Event::ScoringFailed(format!("evaluator: {e}")))
                    }
                },
                None => true,
            };
        };
        let result = match guarded(|| steps.step()) {
            Ok(None) => return true,
            Ok(Some(metrics)) => Ok(metrics),
            Err(e) => Err(e),
        };
        self.background.sliced = None;
        report_evaluation(result, out)
    }

    fn save(&mut self, dir: std::path::PathBuf, out: &Outbox) -> bool {
        let info = self.trainer.run_info(&self.backend.description);
        let model = self.trainer.model();
        match guarded(|| crate::train::checkpoint::save(&dir, model, &info)) {
            Ok(Ok(())) => {
                if self.options.checkpoint_dir.as_ref() == Some(&dir) {
                    self.kept = true;
                }
                out.send(Event::Saved(dir))
            }
            Ok(Err(e)) => out.send(Event::Failed(format!("{e:#}"))),
            Err(panic) if self.is_remote() => self.connection_lost(panic, out),
            Err(panic) => out.send(Event::Failed(format!("saving failed: {panic}"))),
        }
    }

    fn train_one(&mut self, out: &Outbox) -> bool {
        let trainer = &mut self.trainer;
        let epoch_before = trainer.epochs_done();
        let k = self.readback.steps;
        let started = Instant::now();
        let result = guarded(|| trainer.steps(k));
        self.background.last_training = started.elapsed();
        let metrics = match result {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                return out.send(Event::Failed(e.to_string()))
                    && self.set_state(RunState::Paused, out);
            }
            Err(panic) if self.is_remote() => {
                return self.connection_lost(format!("training stopped: {panic}"), out);
            }
            Err(panic) => {
                let step = self.trainer.recover();
                let message =
                    format!("training panicked: {panic}; the model was rolled back to step {step}");
                return out.send(Event::Failed(message)) && self.set_state(RunState::Paused, out);
            }
        };
        self.readback.observe(started.elapsed(), metrics.len());
        let batch = self.trainer.config().hyper.batch_size;
        let samples_per_sec = self.throughput.record(batch * metrics.len());
        let mut snapshot_step = false;
        for m in metrics {
            snapshot_step |= m.step.is_multiple_of(SNAPSHOT_EVERY);
            if !out.send(Event::Progress {
                metrics: m,
                samples_per_sec,
            }) {
                return false;
            }
        }
        if self.trainer.epochs_done() > epoch_before {
            if let Some(notice) = self.trainer.take_notice()
                && !out.send(Event::Notice(notice))
            {
                return false;
            }
            // The test evaluation runs beside training; its result follows when ready.
            let job = match guarded(|| self.trainer.evaluation()) {
                Ok(job) => job,
                Err(e) => return out.send(Event::Failed(format!("evaluation failed: {e}"))),
            };
            if !self.background.evaluate(job, out) {
                return false;
            }
            if !self.publish_snapshot(out) {
                return false;
            }
            if let Some(dir) = self.options.checkpoint_dir.clone()
                && !self.save(dir, out)
            {
                return false;
            }
            if !self.keep_recovery(out) {
                return false;
            }
            if self.lost {
                return true;
            }
            if !self.request_score(false, out) {
                return false;
            }
            if self.trainer.is_finished() {
                return self.set_state(RunState::Finished, out);
            }
        } else if !self.options.epoch_snapshots_only && snapshot_step && self.pacer.get().due() {
            return self.publish_snapshot(out);
        }
        true
    }
}

/// How many steps share one readback. On the local CPU, one each (a readback costs nothing
/// there, and a bad loss is then caught before it reaches the weights). On a far device (a
/// remote server, a GPU) each readback is a round trip, so steps are batched until one round
/// trip is under 5% of their time: `k >= 19 rtt / c` for a step computing in `c`.
#[derive(Clone, Copy, Debug)]
struct Readback {
    /// The round trip of a one-value readback (`None`: steps read back one by one).
    round_trip: Option<Duration>,
    /// Steps per readback now.
    steps: usize,
}

/// The most steps one readback may cover.
const MAX_STEPS_PER_READBACK: usize = 64;

impl Readback {
    /// One step per readback.
    fn each_step() -> Self {
        Self {
            round_trip: None,
            steps: 1,
        }
    }

    /// Per step on the local CPU; on a far device (one that keeps the images), measured, or per
    /// step when even the measurement fails.
    fn for_backend(backend: &Backend) -> Self {
        match backend.images_on_device {
            true => guarded(|| Self::measured(&backend.device)).unwrap_or(Self::each_step()),
            false => Self::each_step(),
        }
    }

    /// For a far `device`: its round trip measured (the fastest of five one-value reads).
    fn measured(device: &burn::tensor::Device) -> Self {
        let round_trip = (0..5)
            .map(|_| {
                let t = Instant::now();
                let _ = crate::data::batch::to_vec(burn::tensor::Tensor::<1>::zeros([1], device));
                t.elapsed()
            })
            .min();
        Self {
            round_trip,
            steps: 1,
        }
    }

    /// Chooses the next batch of steps from the last: `elapsed` for `done` steps.
    fn observe(&mut self, elapsed: Duration, done: usize) {
        let Some(rtt) = self.round_trip else { return };
        if done == 0 {
            return;
        }
        let per_step = elapsed.as_secs_f64() / done as f64;
        let compute = (per_step - rtt.as_secs_f64() / done as f64).max(1e-6);
        let k = (19.0 * rtt.as_secs_f64() / compute).ceil();
        self.steps = (k as usize).clamp(1, MAX_STEPS_PER_READBACK);
    }
}

/// Samples per second over the last few seconds.
#[derive(Default)]
struct Throughput {
    window: std::collections::VecDeque<(Instant, usize)>,
}

impl Throughput {
    fn record(&mut self, samples: usize) -> f32 {
        let now = Instant::now();
        self.window.push_back((now, samples));
        while self.window.len() > 2 && now.duration_since(self.window[0].0) > Duration::from_secs(3)
        {
            self.window.pop_front();
        }
        let span = now.duration_since(self.window[0].0).as_secs_f32();
        let count: usize = self.window.iter().skip(1).map(|w| w.1).sum();
        if span > 0.0 { count as f32 / span } else { 0.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_per_readback_keep_the_round_trip_under_five_percent() {
        let mut r = Readback {
            round_trip: Some(Duration::from_millis(2)),
            steps: 1,
        };
        // One step of 10 ms computing plus the 2 ms round trip.
        r.observe(Duration::from_millis(12), 1);
        assert_eq!(r.steps, 4, "19 x 2 / 10 = 3.8");
        // Four steps: 40 ms computing, one 2 ms trip, 4.8% of the time.
        let rtt = 2.0;
        let total = 4.0 * 10.0 + rtt;
        assert!(rtt / total < 0.05);
        r.observe(Duration::from_millis(42), 4);
        assert_eq!(r.steps, 4, "the same steps again");
        // A slow link with fast steps is capped.
        r.round_trip = Some(Duration::from_millis(100));
        r.observe(Duration::from_millis(101), 1);
        assert_eq!(r.steps, MAX_STEPS_PER_READBACK);
        let mut local = Readback::each_step();
        local.observe(Duration::from_millis(12), 1);
        assert_eq!(local.steps, 1, "the local CPU reads every step");
    }

    #[test]
    fn snapshots_wait_for_29_times_their_cost() {
        let cost = Duration::from_millis(10);
        let recent = SnapshotPacer {
            last: Instant::now() - Duration::from_millis(100),
            cost,
        };
        assert!(!recent.due(), "after 10 times the cost");
        let old = SnapshotPacer {
            last: Instant::now() - Duration::from_millis(300),
            cost,
        };
        assert!(old.due(), "after 30 times the cost");
        assert!(
            SnapshotPacer::default().due(),
            "the first snapshot has no cost to wait for"
        );
    }
}
