//! The training loop's driver: commands between steps, events after them. A thread turns it
//! in a loop, or a page's frames a slice at a time (see [`super::Worker`]).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use web_time::{Duration, Instant};

use super::evaluations::Evaluations;
use super::outbox::Outbox;
use super::pacing::{Readback, SnapshotPacer, Throughput};
use super::scorer::{ScoreJob, Scorer};
use super::{Command, Event, Options, RunState, guarded};
use crate::backend::{Backend, BackendChoice};
use crate::data::Dataset;
use crate::platform::PendingRead;
use crate::train::trainer::{Launched, PendingCopy};
use crate::train::{TrainConfig, Trainer};

/// Steps between snapshots while training.
pub const SNAPSHOT_EVERY: u64 = 25;
/// How long an idle worker waits for a command before looking again.
const IDLE_WAIT: Duration = Duration::from_millis(200);
/// How long an asynchronous read may take before the device counts as lost: a page's first
/// steps on a new device compile every kernel, in software on a software adapter.
pub const READ_DEADLINE: Duration = Duration::from_secs(120);

/// The longest turn of side work while a read is under way (asynchronous reads only): the
/// page's thread is free while the device computes, and side work fills that time in turns
/// short enough to keep the page drawing.
const SIDE_TURN_WHILE_WAITING: Duration = Duration::from_millis(40);

/// Steps launched on a device whose reads are asynchronous, with their read under way.
struct InFlight {
    launched: Launched,
    read: PendingRead,
    started: Instant,
    /// The epochs done before the launch.
    epoch_before: usize,
}

/// What waits for the CPU copy of the model (where reads are asynchronous, everything that
/// reads the model reads the copy, made fresh first).
enum Deferred {
    /// The end of an epoch: the schedule, the evaluation, the snapshot, the save, the score.
    EpochEnd,
    /// A snapshot while training.
    Snapshot,
    /// A command that reads the model.
    Command(Command),
}

struct Session {
    trainer: Trainer,
    /// The evaluator's thread for the current dataset, started at the first score request.
    scorer: Option<Scorer>,
    backend: Backend,
    state: RunState,
    throughput: Throughput,
    /// End-of-epoch test evaluations, run beside training at low priority.
    background: Evaluations,
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
    /// Steps whose read is under way (asynchronous reads only).
    in_flight: Option<InFlight>,
    /// A copy of the model on its way to the CPU (asynchronous reads only).
    copy: Option<PendingCopy>,
    /// What runs once that copy is here.
    deferred: Vec<Deferred>,
    /// Reads no longer wanted (another model, a device that took too long), kept until they
    /// complete: dropping a read under way frees its staging buffer while the browser still
    /// maps it, and the next submission that reuses the buffer is refused.
    abandoned: Vec<PendingRead>,
}

/// Loads the dataset and builds the trainer, or says why not.
fn build(
    config: &TrainConfig,
    backend: &Backend,
    data: Option<Arc<Dataset>>,
) -> Result<Trainer, String> {
    build_from(config, backend, data, None)
}

/// [`build`], continuing the run saved in `resume` when there is one (its epochs set to the
/// config's).
fn build_from(
    config: &TrainConfig,
    backend: &Backend,
    data: Option<Arc<Dataset>>,
    resume: Option<&std::path::Path>,
) -> Result<Trainer, String> {
    let data = match data {
        Some(d) => d,
        None => Arc::new(
            config
                .dataset_spec()
                .and_then(|spec| spec.load_sized(config.seed, config.image_size))
                .map_err(|e| e.to_string())?,
        ),
    };
    let device = backend.device.clone();
    let mut trainer = match resume {
        Some(dir) => {
            let mut trainer = guarded(|| Trainer::from_checkpoint(dir, data, device))?
                .map_err(|e| format!("{e:#}"))?;
            trainer.set_epochs(config.epochs);
            trainer.set_upload(config.upload.clone());
            trainer
        }
        None => {
            let config = config.clone();
            guarded(move || Trainer::new(config, data, device))?.map_err(|e| e.to_string())?
        }
    };
    trainer.keep_images_on_device(backend.images_on_device);
    trainer.set_async_reads(backend.reads_async);
    Ok(trainer)
}

/// What one turn of the loop did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    /// Handled a command or trained.
    Worked,
    /// Nothing to do: no command waiting and not training.
    Idle,
    /// Waiting on the device (a read under way): hand control back and come again soon.
    Waiting,
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
            Ok(b) => Backend {
                reads_async: b.reads_async || options.async_reads,
                ..b
            },
            Err(e) => {
                out.send(Event::Failed(e.to_string()));
                return None;
            }
        };
        if let Some(notice) = &backend.notice {
            out.send(Event::Notice(notice.clone()));
        }
        let trainer = match build_from(&config, &backend, None, options.resume.as_deref()) {
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
            background: Evaluations::new(options.evaluate_inline, options.slice_evaluations, &out),
            pacer: Default::default(),
            options,
            readback,
            choice,
            recovery: None,
            kept: false,
            lost: false,
            in_flight: None,
            copy: None,
            deferred: Vec::new(),
            abandoned: Vec::new(),
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
        self.session.abandoned.retain_mut(|read| !read.poll());
        let pending = self.session.in_flight.is_some() || self.session.copy.is_some();
        let command = if running || !wait || pending {
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
        // training, goes on alone while idle, and fills the wait for a device's read.
        let session = &self.session;
        let side_work = session.background.wants_turn()
            || session.scorer.as_ref().is_some_and(Scorer::wants_turn);
        let side_turn = side_work && (!running || !session.background.side_last);
        let alive = match command {
            Some(Command::Shutdown) => return Turn::Over,
            Some(c) => self.session.handle(c, &self.out),
            None if pending => match self.session.poll_reads(&self.out) {
                // The device computes: side work takes the page's idle time meanwhile.
                Turn::Waiting if side_work => self.session.side_step(&self.out),
                turn => return turn,
            },
            None if side_turn => self.session.side_step(&self.out),
            None if running => {
                self.session.background.side_last = false;
                self.session.train_one(&self.out)
            }
            None => return Turn::Idle,
        };
        match alive {
            true => Turn::Worked,
            false => Turn::Over,
        }
    }
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
            backend_notice: self.backend.notice.clone(),
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
        }) && self.snapshot_when_fresh(out)
            && self.set_state(RunState::Idle, out)
            && self.load_kept_evaluator(out)
    }

    /// What the scorer does with each model it is handed.
    fn score_job(&self) -> ScoreJob {
        let o = &self.options;
        ScoreJob {
            seed: self.trainer.config().seed,
            samples: o.score_samples,
            temperature: o.score_temperature,
            every: o.score_every_epoch,
        }
    }

    /// Where the scorer has no thread (a page), an evaluator kept in the page's storage for
    /// this dataset is loaded at once, so that it is ready before the first epoch ends (on a
    /// slow device, minutes away). One not kept is trained when the first score is asked, as
    /// before: its training would take time from the first epoch's.
    fn load_kept_evaluator(&mut self, out: &Outbox) -> bool {
        let data = self.trainer.data().clone();
        let started = self
            .scorer
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s.data(), &data));
        if !self.options.slice_evaluations
            || self.options.score_samples == 0
            || started
            || !data.is_labelled()
            || !crate::evaluator::is_kept_in_page(&data)
        {
            return true;
        }
        // Its first turn finds the evaluator and says it is ready.
        self.scorer = Some(Scorer::start(data, self.score_job(), true, out));
        true
    }

    /// Hands the current model to the scorer (started for this dataset if needed). Unless the
    /// user asked (`asked`), a dataset without labels is passed over silently.
    fn request_score(&mut self, asked: bool, out: &Outbox) -> bool {
        if self.options.score_samples == 0 {
            return true;
        }
        let job = self.score_job();
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
            _ => self.scorer.insert(Scorer::start(data, job, slice, out)),
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
        let reads_model = matches!(
            command,
            Command::Snapshot
                | Command::Score
                | Command::Draws { .. }
                | Command::Save(_)
                | Command::SaveFiles
        );
        if reads_model && !self.trainer.copy_is_fresh() {
            return self.defer(Deferred::Command(command), out);
        }
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
                let (trainer, backend) = (&self.trainer, &self.backend.description);
                match guarded(|| trainer.run_files(backend)) {
                    Ok(Ok(files)) => out.send(Event::RunFiles(files)),
                    Ok(Err(e)) => out.send(Event::Failed(format!("{e:#}"))),
                    Err(panic) if self.is_remote() => self.connection_lost(panic, out),
                    Err(panic) => out.send(Event::Failed(format!("saving failed: {panic}"))),
                }
            }
            Command::Load(source) => {
                let files = crate::train::checkpoint::RunFiles::of(&source);
                let result = files.and_then(|files| {
                    let info = files.info()?;
                    let now = self.trainer.config();
                    let same = info.config.dataset == now.dataset
                        && info.config.image_size == now.image_size;
                    let data = match same {
                        true => self.trainer.data().clone(),
                        // A run trained on an upload names it; only the one held now is there.
                        false => Arc::new(
                            info.config
                                .dataset_spec()?
                                .load_sized(info.config.seed, info.config.image_size)?,
                        ),
                    };
                    let upload = now.upload.clone().filter(|_| same);
                    let mut trainer = Trainer::from_run(&files, data, self.backend.device.clone())?;
                    trainer.set_upload(upload);
                    Ok(trainer)
                });
                match result {
                    Ok(mut t) => {
                        t.keep_images_on_device(self.backend.images_on_device);
                        t.set_async_reads(self.backend.reads_async);
                        self.trainer = t;
                        self.forget_reads();
                        self.forget_kept();
                        self.background.replaced();
                        self.announce(out)
                    }
                    Err(e) => out.send(Event::Failed(format!("{e:#}"))),
                }
            }
            Command::Reset(config) => {
                let now = self.trainer.config();
                let same_data = config.dataset == now.dataset
                    && config.seed == now.seed
                    && (config.upload == now.upload || config.upload.is_none());
                let data = same_data.then(|| self.trainer.data().clone());
                match build(&config, &self.backend, data) {
                    Ok(t) => {
                        self.trainer = t;
                        self.forget_reads();
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
        let (trainer, backend) = (&self.trainer, &self.backend.description);
        match guarded(|| trainer.save(&dir, backend)) {
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
        trainer.set_async_reads(backend.reads_async);
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
        self.forget_reads();
        self.lost = false;
        Ok(notice)
    }

    /// Side work done without a thread, for as long as the last training call took (at least
    /// one step; where reads are asynchronous at most [`SIDE_TURN_WHILE_WAITING`], also while
    /// the device computes): the evaluation under way, else the scorer's work. A panic in the
    /// scorer's ends scoring, with why; training goes on.
    fn side_step(&mut self, out: &Outbox) -> bool {
        let budget = match self.trainer.reads_async() {
            // A training call there only launches steps; the wait for their values, the
            // device's time, is not the page's.
            true => self.background.last_training.min(SIDE_TURN_WHILE_WAITING),
            false => self.background.last_training,
        };
        self.background.side_last = true;
        if self.background.wants_turn() {
            self.background.turn(budget);
            return true;
        }
        let Some(scorer) = &mut self.scorer else {
            return true;
        };
        match guarded(|| scorer.turn(budget)) {
            Ok(()) => true,
            Err(e) => {
                self.scorer = None;
                out.send(Event::ScoringFailed(format!("evaluator: {e}")))
            }
        }
    }

    /// Writes the checkpoint into `dir` and says so, or why not.
    fn save(&mut self, dir: std::path::PathBuf, out: &Outbox) -> bool {
        let (trainer, backend) = (&self.trainer, &self.backend.description);
        match guarded(|| trainer.save(&dir, backend)) {
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
        if self.trainer.reads_async() {
            return self.launch(out);
        }
        let trainer = &mut self.trainer;
        let epoch_before = trainer.epochs_done();
        let k = self.readback.steps;
        let started = Instant::now();
        let result = guarded(|| trainer.steps(k));
        self.after_steps(result, started, epoch_before, out)
    }

    /// Where reads are asynchronous: queues the next steps on the device and starts reading
    /// their values ([`Self::poll_reads`] settles them).
    fn launch(&mut self, out: &Outbox) -> bool {
        let trainer = &mut self.trainer;
        let epoch_before = trainer.epochs_done();
        let k = self.readback.steps;
        let started = Instant::now();
        match guarded(|| trainer.launch(k).map(|l| (l.read(), l))) {
            Ok(Ok((read, launched))) => {
                log::info!(
                    "{} steps launched in {:.0} ms",
                    launched.len(),
                    started.elapsed().as_secs_f64() * 1e3
                );
                self.in_flight = Some(InFlight {
                    launched,
                    read,
                    started,
                    epoch_before,
                });
                true
            }
            result => {
                let result = result.map(|r| r.map(|_| Vec::new()));
                self.after_steps(result, started, epoch_before, out)
            }
        }
    }

    /// Looks at the reads under way (asynchronous reads only): settles the steps whose values
    /// are here, or installs the copy of the model and runs what waited for it. A read that
    /// takes longer than [`READ_DEADLINE`] counts as a lost device: the model goes back to its
    /// last good copy, and training pauses with why.
    fn poll_reads(&mut self, out: &Outbox) -> Turn {
        let alive = |a: bool| if a { Turn::Worked } else { Turn::Over };
        if let Some(f) = &mut self.in_flight {
            if !f.read.poll() {
                if f.read.waited() < READ_DEADLINE {
                    return Turn::Waiting;
                }
                self.abandon_reads();
                return alive(self.device_silent("a training step", out));
            }
            let Some(InFlight {
                launched,
                mut read,
                started,
                epoch_before,
            }) = self.in_flight.take()
            else {
                return Turn::Worked;
            };
            log::info!(
                "{} steps launched and read back in {:.0} ms",
                launched.len(),
                started.elapsed().as_secs_f64() * 1e3
            );
            let trainer = &mut self.trainer;
            let result = match read.take() {
                Some(Ok(values)) => guarded(|| trainer.settle(launched, &values)),
                Some(Err(e)) => Err(format!("reading the step's values failed: {e}")),
                None => Err("the step's values were read twice".into()),
            };
            return alive(self.after_steps(result, started, epoch_before, out));
        }
        if let Some(copy) = &mut self.copy {
            if !copy.poll() {
                if copy.waited() < READ_DEADLINE {
                    return Turn::Waiting;
                }
                self.abandon_reads();
                return alive(self.device_silent("a copy of the model", out));
            }
            let Some(copy) = self.copy.take() else {
                return Turn::Worked;
            };
            log::info!(
                "a copy of the model read back in {:.0} ms",
                copy.waited().as_secs_f64() * 1e3
            );
            let trainer = &mut self.trainer;
            return match guarded(|| trainer.install_copy(copy)) {
                Ok(Ok(())) => alive(self.run_deferred(out)),
                Ok(Err(e)) | Err(e) => {
                    self.deferred.clear();
                    alive(
                        out.send(Event::Failed(format!("copying the model failed: {e}")))
                            && self.set_state(RunState::Paused, out),
                    )
                }
            };
        }
        Turn::Idle
    }

    /// A read did not come back within [`READ_DEADLINE`]: the model goes back to its last
    /// good copy, what waited is dropped, and training pauses with why.
    fn device_silent(&mut self, what: &str, out: &Outbox) -> bool {
        self.deferred.clear();
        let step = self.trainer.recover();
        out.send(Event::Failed(format!(
            "{} did not answer {what} within {} s: the model was rolled back to step {step}; \
             Resume tries again, and the CPU backend is in the Backend menu",
            self.backend.description,
            READ_DEADLINE.as_secs()
        ))) && self.set_state(RunState::Paused, out)
    }

    /// Runs what waited for the copy of the model, in order; what a step of it asks to wait
    /// for a fresh copy again (the schedule put other weights back) waits with the rest.
    fn run_deferred(&mut self, out: &Outbox) -> bool {
        let mut waiting = std::mem::take(&mut self.deferred).into_iter();
        while let Some(next) = waiting.next() {
            let alive = match next {
                Deferred::EpochEnd => self.epoch_end(out),
                Deferred::Snapshot => self.publish_snapshot(out),
                Deferred::Command(c) => self.handle(c, out),
            };
            if !alive {
                return false;
            }
            if self.copy.is_some() {
                self.deferred.extend(waiting);
                return true;
            }
        }
        true
    }

    /// Puts `what` off until the copy of the model is fresh, starting the copy if none is on
    /// its way.
    fn defer(&mut self, what: Deferred, out: &Outbox) -> bool {
        self.deferred.push(what);
        if self.copy.is_some() {
            return true;
        }
        let trainer = &self.trainer;
        match guarded(|| trainer.start_copy()) {
            Ok(copy) => {
                self.copy = Some(copy);
                true
            }
            Err(e) => {
                self.deferred.clear();
                out.send(Event::Failed(format!("copying the model failed: {e}")))
            }
        }
    }

    /// A snapshot now, or once the copy of the model is fresh.
    fn snapshot_when_fresh(&mut self, out: &Outbox) -> bool {
        match self.trainer.copy_is_fresh() {
            true => self.publish_snapshot(out),
            false => self.defer(Deferred::Snapshot, out),
        }
    }

    /// Another trainer: reads under way were the old one's.
    fn forget_reads(&mut self) {
        self.abandon_reads();
        self.deferred.clear();
    }

    /// Drops the reads under way from the session, keeping them (see
    /// [`Session::abandoned`]) until they complete.
    fn abandon_reads(&mut self) {
        let reads = self.in_flight.take().map(|f| f.read);
        let copy = self.copy.take().map(PendingCopy::into_read);
        self.abandoned.extend(reads.into_iter().chain(copy));
        self.abandoned.retain_mut(|read| !read.poll());
    }

    /// What follows a training call: progress events, and at an epoch's end the evaluation,
    /// the snapshot, the save and the score; a failed call pauses training with why.
    fn after_steps(
        &mut self,
        result: Result<Result<Vec<crate::train::StepMetrics>, crate::train::TrainError>, String>,
        started: Instant,
        epoch_before: usize,
        out: &Outbox,
    ) -> bool {
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
            return match self.trainer.copy_is_fresh() {
                true => self.epoch_end(out),
                false => self.defer(Deferred::EpochEnd, out),
            };
        } else if !self.options.epoch_snapshots_only && snapshot_step && self.pacer.get().due() {
            return self.snapshot_when_fresh(out);
        }
        true
    }

    /// An epoch's end: the schedule (where reads are asynchronous), the schedule's notice, the
    /// test evaluation beside training, a snapshot, the checkpoint, the remote run's recovery
    /// copy and the score; the run's end when it was the last epoch.
    fn epoch_end(&mut self, out: &Outbox) -> bool {
        if self.trainer.follow_due_schedule() {
            // The schedule put other weights back: everything below reads a fresh copy.
            return self.defer(Deferred::EpochEnd, out);
        }
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
        true
    }
}
