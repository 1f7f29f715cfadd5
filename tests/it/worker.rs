//! The training thread: start, pause, resume, stop, a failed reset that keeps the old model,
//! failures reported as events, and a prompt shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use latent_atlas::backend::BackendChoice;
use latent_atlas::model::Likelihood;
use latent_atlas::train::TrainConfig;
use latent_atlas::worker::{Command, Event, Options, RunState, Worker};

fn config() -> TrainConfig {
    TrainConfig {
        probe_size: 300,
        nll_samples: 0,
        ..TrainConfig::default()
    }
}

/// Waits for the first event matching `pred`, failing after `secs`.
fn wait_for(worker: &Worker, secs: u64, mut pred: impl FnMut(&Event) -> bool) -> Event {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Some(e) = worker.recv_timeout(Duration::from_millis(50))
            && pred(&e)
        {
            return e;
        }
    }
    panic!("no matching event within {secs} s");
}

#[test]
fn start_pause_resume_stop_and_shutdown() {
    let wakes = Arc::new(AtomicUsize::new(0));
    let counter = wakes.clone();
    let mut worker = Worker::spawn(
        config(),
        BackendChoice::Cpu,
        Arc::new(move || {
            counter.fetch_add(1, Ordering::Relaxed);
        }),
    )
    .unwrap();
    wait_for(&worker, 60, |e| matches!(e, Event::Ready { .. }));
    wait_for(&worker, 10, |e| {
        matches!(e, Event::SnapshotReady { step: 0 })
    });
    assert!(
        worker.take_snapshot().is_some(),
        "a snapshot follows readiness"
    );
    assert!(worker.send(Command::Start));
    wait_for(&worker, 30, |e| matches!(e, Event::Progress { .. }));
    assert!(worker.send(Command::Pause));
    wait_for(&worker, 10, |e| *e == Event::State(RunState::Paused));
    // Once paused, no step follows.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        worker
            .drain()
            .iter()
            .all(|e| !matches!(e, Event::Progress { .. }))
    );
    assert!(worker.send(Command::Resume));
    let Event::Progress { metrics, .. } =
        wait_for(&worker, 10, |e| matches!(e, Event::Progress { .. }))
    else {
        unreachable!()
    };
    assert!(metrics.total.is_finite());
    // Snapshots keep coming while training (every 25 steps).
    wait_for(
        &worker,
        30,
        |e| matches!(e, Event::SnapshotReady { step } if *step > 0),
    );
    let snap = worker.take_snapshot().unwrap();
    assert_eq!(snap.mu.len(), 300 * 2);
    assert!(worker.send(Command::Stop));
    wait_for(&worker, 10, |e| *e == Event::State(RunState::Stopped));
    assert!(
        wakes.load(Ordering::Relaxed) > 3,
        "the waker is called after sends"
    );
    let t = Instant::now();
    worker.shutdown();
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "shutdown took {:?}",
        t.elapsed()
    );
    assert!(!worker.is_alive());
}

#[test]
fn shutdown_mid_training_is_prompt() {
    let worker = Worker::spawn(config(), BackendChoice::Cpu, Arc::new(|| {})).unwrap();
    wait_for(&worker, 60, |e| matches!(e, Event::Ready { .. }));
    worker.send(Command::Start);
    wait_for(&worker, 30, |e| matches!(e, Event::Progress { .. }));
    let t = Instant::now();
    drop(worker);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "drop took {:?}",
        t.elapsed()
    );
}

#[test]
fn a_bad_dataset_on_reset_keeps_the_old_model() {
    let worker = Worker::spawn(config(), BackendChoice::Cpu, Arc::new(|| {})).unwrap();
    wait_for(&worker, 60, |e| matches!(e, Event::SnapshotReady { .. }));
    let before = worker.take_snapshot().unwrap();
    let bad = TrainConfig {
        dataset: "/nonexistent/latent-atlas-data".into(),
        ..config()
    };
    worker.send(Command::Reset(Box::new(bad)));
    let Event::Failed(message) = wait_for(&worker, 10, |e| matches!(e, Event::Failed(_))) else {
        unreachable!()
    };
    assert!(
        message.contains("/nonexistent/latent-atlas-data"),
        "{message}"
    );
    worker.send(Command::Snapshot);
    wait_for(&worker, 10, |e| matches!(e, Event::SnapshotReady { .. }));
    let after = worker.take_snapshot().unwrap();
    assert_eq!(after.mu, before.mu, "the previous model stays");
    assert_eq!(after.probe.len(), before.probe.len());
}

#[test]
fn a_diverging_run_pauses_with_a_message_and_the_worker_lives_on() {
    let bad = TrainConfig {
        likelihood: Likelihood::Gaussian { sigma: 1e-30 },
        ..config()
    };
    let worker = Worker::spawn(bad, BackendChoice::Cpu, Arc::new(|| {})).unwrap();
    wait_for(&worker, 60, |e| matches!(e, Event::Ready { .. }));
    worker.send(Command::Start);
    let Event::Failed(message) = wait_for(&worker, 10, |e| matches!(e, Event::Failed(_))) else {
        unreachable!()
    };
    assert!(message.contains("rolled back"), "{message}");
    wait_for(&worker, 10, |e| *e == Event::State(RunState::Paused));
    worker.send(Command::Reset(Box::new(config())));
    wait_for(&worker, 30, |e| matches!(e, Event::Ready { .. }));
    worker.send(Command::Start);
    wait_for(&worker, 30, |e| matches!(e, Event::Progress { .. }));
}

#[test]
fn a_score_request_trains_the_evaluator_once_and_reports_scores() {
    // The evaluator is trained the first time on this machine and read from the cache after.
    let mut c = config();
    c.model = latent_atlas::train::ModelKind::Cvae;
    let worker = Worker::spawn(c, BackendChoice::Cpu, Arc::new(|| {})).unwrap();
    wait_for(&worker, 60, |e| matches!(e, Event::Ready { .. }));
    assert!(worker.send(Command::Score));
    let ready = wait_for(&worker, 600, |e| matches!(e, Event::EvaluatorReady(_)));
    let Event::EvaluatorReady(accuracy) = ready else {
        unreachable!()
    };
    assert!(accuracy > 0.95, "evaluator accuracy {accuracy}");
    let scored = wait_for(&worker, 120, |e| matches!(e, Event::Scored(_)));
    let Event::Scored(s) = scored else {
        unreachable!()
    };
    assert_eq!(s.histogram.len(), 10);
    assert!((s.histogram.iter().sum::<f32>() - 1.0).abs() < 1e-3);
    assert!(s.frechet.is_finite() && s.frechet > 0.0);
    assert!(s.class_accuracy.is_some(), "the CVAE gets a class accuracy");
}

#[test]
fn headless_pacing_evaluates_saves_and_scores_every_epoch_in_order() {
    let data = tempfile::tempdir().unwrap();
    crate::cli::write_mnist_subset(data.path(), 1000);
    let out = tempfile::tempdir().unwrap();
    let c = TrainConfig {
        dataset: data.path().display().to_string(),
        epochs: 3,
        ..config()
    };
    let options = Options::headless(Some(out.path().to_path_buf()), 200, 1.0);
    let worker = Worker::spawn_with(c, BackendChoice::Cpu, options, Arc::new(|| {})).unwrap();
    wait_for(&worker, 60, |e| matches!(e, Event::Ready { .. }));
    assert!(worker.send(Command::Start));
    let (mut order, mut scored, mut snapshots, mut finished) = (Vec::new(), 0, 0, false);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(finished && scored == 3) && Instant::now() < deadline {
        match worker.recv_timeout(Duration::from_millis(50)) {
            Some(Event::Tested(t)) => order.push(format!("tested {}", t.epoch)),
            Some(Event::Saved(_)) => order.push("saved".to_owned()),
            Some(Event::Scored(_)) => scored += 1,
            Some(Event::SnapshotReady { step }) if step > 0 => snapshots += 1,
            Some(Event::State(RunState::Finished)) => finished = true,
            Some(Event::Failed(e)) => panic!("{e}"),
            _ => {}
        }
    }
    // Every epoch evaluated before its checkpoint, none skipped, every one scored, and no
    // snapshots between epochs.
    assert_eq!(
        order,
        [
            "tested 1", "saved", "tested 2", "saved", "tested 3", "saved"
        ],
    );
    assert_eq!(scored, 3);
    assert_eq!(snapshots, 3, "one per epoch's end");
    assert!(out.path().join("model.bpk").exists());
}

/// Turns an inline worker in slices of `slice` until `pred` holds for an event, failing
/// after `secs`.
fn tick_until(
    worker: &mut Worker,
    slice: Duration,
    secs: u64,
    mut pred: impl FnMut(&Event) -> bool,
) -> Event {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        worker.tick(slice);
        while let Some(e) = worker.try_recv() {
            if pred(&e) {
                return e;
            }
        }
    }
    panic!("no matching event within {secs} s");
}

#[test]
fn an_inline_worker_trains_only_when_turned_and_within_its_slices() {
    // The browser's driver: no thread; the caller's frame loop turns it.
    let mut worker = Worker::inline(
        config(),
        BackendChoice::Cpu,
        Options::window(),
        Arc::new(|| {}),
    );
    assert!(worker.is_alive());
    // Nothing happens until it is turned: the model is built on the first tick.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        worker.try_recv().is_none(),
        "no event before the first tick"
    );
    let slice = Duration::from_millis(20);
    tick_until(&mut worker, slice, 60, |e| matches!(e, Event::Ready { .. }));
    assert!(worker.send(Command::Start));
    // Between ticks it does not train.
    tick_until(&mut worker, slice, 30, |e| {
        matches!(e, Event::Progress { .. })
    });
    worker.drain();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        worker.drain().is_empty(),
        "nothing arrives while the caller is not turning it"
    );
    // A tick keeps to its slice: it stops after the step that crosses it (a step of the
    // reference model is far shorter than a second here).
    let started = Instant::now();
    assert!(worker.tick(slice), "training goes on");
    assert!(started.elapsed() < Duration::from_secs(1));
    let steps = worker
        .drain()
        .into_iter()
        .filter(|e| matches!(e, Event::Progress { .. }))
        .count();
    assert!(steps >= 1, "a tick trains");
    // It pauses and stops through the same commands.
    assert!(worker.send(Command::Pause));
    tick_until(&mut worker, slice, 10, |e| {
        *e == Event::State(RunState::Paused)
    });
    assert!(
        !worker.tick(slice),
        "a paused worker asks for no more ticks"
    );
    worker.shutdown();
    assert!(!worker.is_alive());
}

#[test]
fn importance_draws_are_answered_between_steps() {
    let worker = Worker::spawn(config(), BackendChoice::Cpu, Arc::new(|| {})).unwrap();
    wait_for(&worker, 60, |e| matches!(e, Event::Ready { .. }));
    assert!(worker.send(Command::Start));
    assert!(worker.send(Command::Draws { probe: 3, k: 10 }));
    let Event::Draws(Some(d)) = wait_for(&worker, 30, |e| matches!(e, Event::Draws(_))) else {
        panic!("a VAE's draws");
    };
    assert_eq!((d.probe, d.k(), d.z.len()), (3, 10, 20));
    // A sample that is not in the probe set: an empty answer, and training goes on.
    assert!(worker.send(Command::Draws {
        probe: 1 << 30,
        k: 10
    }));
    assert_eq!(
        wait_for(&worker, 30, |e| matches!(e, Event::Draws(_))),
        Event::Draws(None)
    );
    wait_for(&worker, 30, |e| matches!(e, Event::Progress { .. }));
}

#[test]
fn a_run_saves_as_files_where_there_is_no_folder() {
    let worker = Worker::spawn(config(), BackendChoice::Cpu, Arc::new(|| {})).unwrap();
    wait_for(&worker, 60, |e| matches!(e, Event::Ready { .. }));
    assert!(worker.send(Command::SaveFiles));
    let Event::RunFiles(files) = wait_for(&worker, 30, |e| matches!(e, Event::RunFiles(_))) else {
        unreachable!()
    };
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "model.bpk",
            "optimizer.bpk",
            "model.safetensors",
            "config.json"
        ]
    );
    // They load back as a run: a zip of them, in memory, passed as a value.
    use latent_atlas::data::files::{Source, Upload};
    let upload = Upload::new(vec![(
        "run.zip".into(),
        latent_atlas::archive::write(&files).unwrap(),
    )]);
    let source = Source::Upload(Arc::new(upload));
    assert!(latent_atlas::train::checkpoint::is_saved_run(&source));
    let run = latent_atlas::train::checkpoint::RunFiles::of(&source).unwrap();
    assert_eq!(run.info().unwrap().config.model, config().model);
    // The worker loads it from the value.
    assert!(worker.send(Command::Load(source)));
    wait_for(&worker, 60, |e| matches!(e, Event::Ready { .. }));
}

#[test]
fn a_sliced_evaluation_and_scorer_take_turns_with_training() {
    // The browser's pacing: no thread for the end-of-epoch test evaluation or the evaluator,
    // so they run a chunk at a time between training steps, and training goes on meanwhile.
    let config = TrainConfig {
        nll_samples: 20,
        nll_images: 100,
        ..config()
    };
    let options = Options {
        slice_evaluations: true,
        ..Options::window()
    };
    let mut worker = Worker::inline(config, BackendChoice::Cpu, options, Arc::new(|| {}));
    let slice = Duration::from_millis(20);
    tick_until(&mut worker, slice, 60, |e| matches!(e, Event::Ready { .. }));
    assert!(worker.send(Command::Start));
    tick_until(
        &mut worker,
        slice,
        120,
        |e| matches!(e, Event::Progress { metrics, .. } if metrics.epoch >= 1),
    );
    // Steps of the second epoch arrive before the first epoch's test metrics.
    let mut steps_while_testing = 0;
    let tested = tick_until(&mut worker, slice, 120, |e| {
        steps_while_testing += matches!(e, Event::Progress { .. }) as usize;
        matches!(e, Event::Tested(_))
    });
    let Event::Tested(t) = tested else {
        unreachable!()
    };
    assert_eq!(t.epoch, 1);
    assert!(
        steps_while_testing >= 10,
        "training went on during the evaluation: {steps_while_testing} steps"
    );
    assert!(t.nll.is_some_and(f32::is_finite) && t.neg_elbo.is_some_and(f32::is_finite));
    assert_eq!(t.mean_activity.len(), 2, "the posteriors' pass ran too");
    // The epoch's end also asked for a score: the evaluator trains a batch at a time beside
    // the model (progress reported), then scores the snapshot, and training still goes on.
    let (mut progress, mut accuracy, mut steps) = (0, None, 0);
    let scored = tick_until(&mut worker, slice, 300, |e| {
        match e {
            Event::EvaluatorProgress(_) => progress += 1,
            Event::EvaluatorReady(a) => accuracy = Some(*a),
            Event::Progress { .. } => steps += 1,
            _ => {}
        }
        matches!(e, Event::Scored(_))
    });
    let Event::Scored(scores) = scored else {
        unreachable!()
    };
    assert!(
        progress > 0 && steps > 10,
        "{progress} progress reports, {steps} steps"
    );
    assert!(
        accuracy.is_some_and(|a| a > 0.9),
        "evaluator accuracy {accuracy:?}"
    );
    assert!(
        scores.entropy.is_finite() && scores.frechet.is_finite(),
        "{scores:?}"
    );
    worker.shutdown();
}

#[test]
fn the_pages_asynchronous_path_trains_tests_snapshots_and_saves_from_a_cpu_copy() {
    // WebGPU's pacing in a page, on the CPU: steps launched and settled apart, every read of
    // the model (snapshots, the epoch's evaluation, saves, importance draws) from a CPU copy
    // made fresh first, and the driver turned in slices.
    let config = TrainConfig {
        nll_samples: 20,
        nll_images: 100,
        ..config()
    };
    let options = Options {
        slice_evaluations: true,
        score_samples: 0,
        async_reads: true,
        ..Options::window()
    };
    let mut worker = Worker::inline(config, BackendChoice::Cpu, options, Arc::new(|| {}));
    let slice = Duration::from_millis(20);
    tick_until(&mut worker, slice, 60, |e| matches!(e, Event::Ready { .. }));
    tick_until(&mut worker, slice, 30, |e| {
        matches!(e, Event::SnapshotReady { step: 0 })
    });
    assert!(worker.send(Command::Start));
    // Steps arrive in order, numbered from 1, with falling losses over the first epoch.
    let (mut steps, mut first, mut last) = (Vec::new(), None, None);
    tick_until(&mut worker, slice, 180, |e| {
        if let Event::Progress { metrics, .. } = e {
            steps.push(metrics.step);
            first.get_or_insert(metrics.total);
            last = Some(metrics.total);
            return metrics.epoch >= 2;
        }
        false
    });
    assert_eq!(steps[0], 1);
    assert!(
        steps.windows(2).all(|w| w[1] == w[0] + 1),
        "steps out of order"
    );
    let (first, last) = (first.unwrap(), last.unwrap());
    assert!(last < first * 0.9, "loss {first} -> {last}");
    // The first epoch's test metrics and a snapshot from the copy of its model.
    let tested = tick_until(&mut worker, slice, 120, |e| matches!(e, Event::Tested(_)));
    let Event::Tested(t) = tested else {
        unreachable!()
    };
    assert!(
        t.epoch >= 1 && t.neg_elbo.is_some_and(f32::is_finite),
        "{t:?}"
    );
    tick_until(
        &mut worker,
        slice,
        30,
        |e| matches!(e, Event::SnapshotReady { step } if *step > 0),
    );
    let snapshot = worker.take_snapshot().expect("a snapshot");
    assert!(snapshot.mu.iter().all(|v| v.is_finite()) && snapshot.step > 0);
    // A save while training: the weights of the copy, made fresh for it.
    assert!(worker.send(Command::SaveFiles));
    let saved = tick_until(&mut worker, slice, 60, |e| matches!(e, Event::RunFiles(_)));
    let Event::RunFiles(files) = saved else {
        unreachable!()
    };
    assert!(files.iter().any(|(n, b)| n == "model.bpk" && !b.is_empty()));
    // Importance draws, from the copy.
    assert!(worker.send(Command::Draws { probe: 0, k: 8 }));
    let drawn = tick_until(&mut worker, slice, 60, |e| matches!(e, Event::Draws(_)));
    assert!(matches!(drawn, Event::Draws(Some(_))), "{drawn:?}");
    worker.shutdown();
}
