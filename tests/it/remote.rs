//! Training through `latent-atlas serve` on loopback (builds with the `remote` feature): the
//! same run as on the local CPU, a wrong token refused before anything trains, a server that
//! dies mid-run ends the step with an error instead of a hang, and the worker pauses then, and
//! continues from the last epoch's weights once the server is back and the user resumes.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use burn::tensor::Device;
use latent_atlas::data::builtin::Builtin;
use latent_atlas::remote::connect_with;
use latent_atlas::train::{TrainConfig, Trainer};

const TOKEN: &str = "loopback-test-token";

/// A `serve` process on loopback, killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    /// A server on a port the system picks, read back from what `serve` prints: a port picked
    /// here and handed over would be free only until another test's socket took it.
    fn start() -> Server {
        Server::start_on(0)
    }

    /// A server on `port` (0: any free one), once it says where it listens.
    fn start_on(port: u16) -> Server {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_latent-atlas"))
            .args(["serve", "--device", "cpu", "--port", &port.to_string()])
            .env("LATENT_ATLAS_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("serve starts");
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped");
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.split(" at ").nth(1).filter(|u| u.starts_with("ws://")) {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("serve's output");
                panic!(
                    "serve never said where it listens: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        };
        let authority = url.trim_start_matches("ws://");
        let start = Instant::now();
        while TcpStream::connect(authority).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "serve never listened at {url}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Server { child, url }
    }

    /// The port it listens on.
    fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config() -> TrainConfig {
    TrainConfig {
        probe_size: 100,
        nll_samples: 0,
        ..TrainConfig::default()
    }
}

#[test]
fn training_through_a_loopback_server_matches_the_local_cpu() {
    let data = std::sync::Arc::new(Builtin::Mnist.load(0).unwrap());
    let server = Server::start();

    let refused =
        connect_with(&server.url, Some("not-the-token")).expect_err("a wrong token is refused");
    assert!(
        refused.to_string().contains("refused the token"),
        "{refused}"
    );

    let remote = connect_with(&server.url, Some(TOKEN)).expect("the right token connects");
    let steps = 200;
    let mut local = Trainer::new(config(), data.clone(), Device::flex()).unwrap();
    let mut far = Trainer::new(config(), data, remote.device).unwrap();
    // The server keeps the images and cuts each batch from them.
    far.keep_images_on_device(true);
    for _ in 0..steps {
        local.step().unwrap();
        far.step().unwrap();
    }
    let (a, b) = (local.evaluate(false), far.evaluate(false));
    let (a, b) = (a.neg_elbo.unwrap(), b.neg_elbo.unwrap());
    // The same seed draws the same weights and batches; the local CPU runs fused kernels and
    // the server burn's composed ones, so the sums differ in rounding only.
    assert!(
        (a - b).abs() < 0.01 * a.abs(),
        "test negative ELBO local {a} vs through the server {b}"
    );
}

#[test]
fn a_server_that_dies_mid_run_ends_the_step_with_an_error() {
    let data = std::sync::Arc::new(Builtin::Mnist.load(0).unwrap());
    let mut server = Server::start();
    let remote = connect_with(&server.url, Some(TOKEN)).unwrap();
    let mut trainer = Trainer::new(config(), data, remote.device).unwrap();
    for _ in 0..5 {
        trainer.step().unwrap();
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            (0..5).map(|_| trainer.step()).find(|r| r.is_err())
        }));
        let _ = tx.send(match outcome {
            Ok(Some(Err(e))) => Some(e.to_string()),
            Ok(_) => None,
            Err(_) => Some("panicked".into()),
        });
    });
    let failed = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("a step after the server died hangs");
    assert!(failed.is_some(), "steps went on after the server died");
}

/// Waits for the first event `want` picks, failing after `secs` seconds or on another failure
/// than those `want` takes.
fn wait_for<T>(
    worker: &latent_atlas::worker::Worker,
    secs: u64,
    what: &str,
    mut want: impl FnMut(&latent_atlas::worker::Event) -> Option<T>,
) -> T {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        if let Some(event) = worker.recv_timeout(Duration::from_millis(100)) {
            if let Some(t) = want(&event) {
                return t;
            }
            if let latent_atlas::worker::Event::Failed(e) = &event {
                panic!("waiting for {what}: {e}");
            }
        }
    }
    panic!("no {what} within {secs} s");
}

#[test]
fn the_worker_pauses_when_the_server_dies_and_resume_continues_from_the_last_epoch() {
    use latent_atlas::backend::BackendChoice;
    use latent_atlas::worker::{Command, Event, Options, RunState, Worker};
    // 1,280 MNIST images as a .npy file: 1,152 to train on (9 steps an epoch), 128 to test.
    let data = Builtin::Mnist.load(0).unwrap();
    let n = 1280;
    let pixels: Vec<f32> = (0..n)
        .flat_map(|i| data.train.image(i).to_vec())
        .map(|p| f32::from(p) / 255.0)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mnist1280.npy");
    std::fs::write(
        &file,
        latent_atlas::codec::npy::write_f32(&[n, 28, 28], &pixels),
    )
    .unwrap();
    let config = TrainConfig {
        dataset: file.display().to_string(),
        epochs: 100_000,
        ..config()
    };

    let mut server = Server::start();
    let port = server.port();
    // The worker connects with the program's token (the environment stays untouched: other
    // tests run beside this one).
    latent_atlas::remote::set_token(Some(TOKEN.to_owned()));
    let options = Options::headless(None, 0, 1.0);
    let mut worker = Worker::spawn_with(
        config,
        BackendChoice::Remote(server.url.clone()),
        options,
        std::sync::Arc::new(|| {}),
    )
    .unwrap();
    wait_for(&worker, 120, "the model", |e| {
        matches!(e, Event::Ready { .. }).then_some(())
    });
    worker.send(Command::Start);
    // Into the third epoch: the ends of the first two were kept.
    let mut last_step = wait_for(&worker, 300, "the third epoch", |e| match e {
        Event::Progress { metrics, .. } if metrics.step > 22 => Some(metrics.step),
        _ => None,
    });

    server.child.kill().unwrap();
    server.child.wait().unwrap();
    // The step, an epoch's evaluation or its snapshot may be the first to fail; the run pauses
    // with the lost connection named.
    let start = Instant::now();
    let message = loop {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no lost connection reported"
        );
        match worker.recv_timeout(Duration::from_millis(100)) {
            Some(Event::Progress { metrics, .. }) => last_step = metrics.step,
            Some(Event::Failed(m)) if m.contains("connection") => break m,
            _ => {}
        }
    };
    assert!(message.contains("Resume connects again"), "{message}");
    wait_for(&worker, 30, "the pause", |e| {
        matches!(e, Event::State(RunState::Paused)).then_some(())
    });

    // Resuming while the server is down says so and stays paused.
    worker.send(Command::Resume);
    let refused = wait_for(&worker, 60, "the refusal", |e| match e {
        Event::Failed(m) => Some(m.clone()),
        Event::State(RunState::Running) => panic!("running without a server"),
        _ => None,
    });
    assert!(refused.contains("cannot reach"), "{refused}");

    let _server = Server::start_on(port);
    worker.send(Command::Resume);
    let notice = wait_for(&worker, 120, "the reconnection", |e| match e {
        Event::Notice(n) if n.contains("connected again") => Some(n.clone()),
        _ => None,
    });
    let from: u64 = notice
        .split("continuing from step ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{notice}"));
    // The last epoch's end that was kept: a whole number of epochs, not after the failure.
    assert!(
        from.is_multiple_of(9) && from >= 18 && from <= last_step,
        "{notice}; last step {last_step}"
    );
    let next = wait_for(&worker, 120, "a step after the reconnection", |e| match e {
        Event::Progress { metrics, .. } => Some(metrics.clone()),
        _ => None,
    });
    assert_eq!(next.step, from + 1);
    assert!(next.total.is_finite());
    worker.shutdown();
}
