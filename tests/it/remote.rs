//! Training through `latent-atlas serve` on loopback (builds with the `remote` feature): the
//! same run as on the local CPU, a wrong token refused before anything trains, and a server
//! that dies mid-run ends the step with an error instead of a hang.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use burn::tensor::Device;
use latent_atlas::data::builtin::Builtin;
use latent_atlas::remote::connect_with;
use latent_atlas::train::{TrainConfig, Trainer};

const TOKEN: &str = "loopback-test-token";

/// A `serve` process on a free loopback port, killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start() -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_latent-atlas"))
            .args(["serve", "--device", "cpu", "--port", &port.to_string()])
            .env("LATENT_ATLAS_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve starts");
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "serve never listened"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Server {
            child,
            url: format!("ws://127.0.0.1:{port}"),
        }
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

    let refused = connect_with(&server.url, Some("not-the-token"))
        .err()
        .expect("a wrong token is refused");
    assert!(
        refused.to_string().contains("refused the token"),
        "{refused}"
    );

    let remote = connect_with(&server.url, Some(TOKEN)).expect("the right token connects");
    let steps = 200;
    let mut local = Trainer::new(config(), data.clone(), Device::flex()).unwrap();
    let mut far = Trainer::new(config(), data, remote.device).unwrap();
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
