//! The command line end to end: `train` writes every file, `eval` reloads the run, and bad
//! input ends with one line naming the file.

use std::path::Path;
use std::process::Command;

use latent_atlas::data::builtin::Builtin;
use latent_atlas::data::idx::{IMAGES_MAGIC, LABELS_MAGIC};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_latent-atlas"))
}

/// Writes the first `n` MNIST training images as a raw IDX pair (no test split).
pub(crate) fn write_mnist_subset(dir: &Path, n: usize) {
    let data = Builtin::Mnist.load(0).unwrap();
    let mut images = IMAGES_MAGIC.to_be_bytes().to_vec();
    for d in [n as u32, 28, 28] {
        images.extend_from_slice(&d.to_be_bytes());
    }
    images.extend_from_slice(&data.train.pixels[..n * 784]);
    let mut labels = LABELS_MAGIC.to_be_bytes().to_vec();
    labels.extend_from_slice(&(n as u32).to_be_bytes());
    labels.extend_from_slice(&data.train.labels[..n]);
    std::fs::write(dir.join("train-images-idx3-ubyte"), images).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), labels).unwrap();
}

/// Runs `train` with `args` on the dataset `data` into `out`, and checks that it succeeded.
fn train_ok(data: &Path, out: &Path, args: &[&str]) -> std::process::Output {
    let run = bin()
        .arg("train")
        .args(args)
        .arg("--dataset")
        .arg(data)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    run
}

#[test]
fn train_writes_every_file_and_eval_reloads_it() {
    let data_dir = tempfile::tempdir().unwrap();
    write_mnist_subset(data_dir.path(), 3000);
    let out = tempfile::tempdir().unwrap();
    let status = train_ok(
        data_dir.path(),
        out.path(),
        &["--epochs", "1", "--nll-samples", "20", "--nll-images", "50"],
    );
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(stdout.contains("negative ELBO"), "{stdout}");
    for file in [
        "config.json",
        "model.bpk",
        "metrics.csv",
        "latent.csv",
        "latent_plane.png",
        "samples.png",
        "reconstructions.png",
        "manifold.png",
        "interpolation.png",
        "curves.png",
        "prior_coverage.png",
        "scores.csv",
    ] {
        let path = out.path().join(file);
        assert!(
            path.metadata().map(|m| m.len() > 0).unwrap_or(false),
            "{file} missing"
        );
    }
    let metrics = std::fs::read_to_string(out.path().join("metrics.csv")).unwrap();
    assert!(metrics.lines().any(|l| l.starts_with("train,")));
    assert!(metrics.lines().any(|l| l.starts_with("test,")));
    let latent = std::fs::read_to_string(out.path().join("latent.csv")).unwrap();
    // 300 held-out test images (10% of 3000) are all probes: header + 300 rows.
    assert_eq!(latent.lines().count(), 301);
    assert!(latent.starts_with("test_index,label,mu_0,mu_1,sigma_0,sigma_1"));
    let plane = image::open(out.path().join("latent_plane.png")).unwrap();
    assert!(plane.width() >= 800);

    // The same codes for NumPy and TensorBoard's Projector, and the plane as vectors.
    let read = |name: &str| std::fs::read(out.path().join(name)).unwrap();
    let mu = latent_atlas::codec::npy::read(&read("latent_mu.npy")).unwrap();
    assert_eq!(mu.shape, vec![300, 2]);
    let first: Vec<f64> = latent
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .skip(2)
        .take(2)
        .map(|v| v.parse().unwrap())
        .collect();
    assert!((mu.get(0) - first[0]).abs() < 1e-6 && (mu.get(1) - first[1]).abs() < 1e-6);
    let labels = latent_atlas::codec::npy::read(&read("latent_labels.npy")).unwrap();
    assert_eq!(labels.shape, vec![300]);
    let vectors = String::from_utf8(read("projector_vectors.tsv")).unwrap();
    assert_eq!(vectors.lines().count(), 300);
    assert!(vectors.lines().all(|l| l.split('\t').count() == 2));
    let metadata = String::from_utf8(read("projector_metadata.tsv")).unwrap();
    assert_eq!(metadata.lines().count(), 301, "a header and a row per code");
    let svg = String::from_utf8(read("latent_plane.svg")).unwrap();
    assert_eq!(
        svg.matches("<ellipse").count(),
        300,
        "one ellipse per posterior"
    );
    let curves = String::from_utf8(read("curves.svg")).unwrap();
    assert!(curves.contains("id=\"total\"") && curves.contains("</svg>"));

    let eval_of = |run: &Path| {
        let eval = bin().arg("eval").arg("--run").arg(run).output().unwrap();
        assert!(
            eval.status.success(),
            "{}",
            String::from_utf8_lossy(&eval.stderr)
        );
        eval
    };
    let eval = eval_of(out.path());
    assert!(String::from_utf8_lossy(&eval.stdout).contains("negative ELBO"));

    // The description and the weights alone (no optimiser: what `scripts/long-run.sh` keeps
    // at the published epochs) evaluate to the same figures.
    let kept = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(out.path().join("config.json")).unwrap();
    assert!(
        config.contains("\"resume\""),
        "the run keeps its training state"
    );
    let info: serde_json::Value = serde_json::from_str(&config).unwrap();
    let weights = info["weights"].as_str().unwrap_or("model.bpk");
    for file in ["config.json", weights] {
        std::fs::copy(out.path().join(file), kept.path().join(file)).unwrap();
    }
    let again = eval_of(kept.path());
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        String::from_utf8_lossy(&eval.stdout)
    );
}

#[test]
fn a_gan_run_writes_its_views_without_a_coverage_it_cannot_have() {
    let data_dir = tempfile::tempdir().unwrap();
    write_mnist_subset(data_dir.path(), 1000);
    let out = tempfile::tempdir().unwrap();
    let run = train_ok(
        data_dir.path(),
        out.path(),
        &["--model", "gan", "--epochs", "1", "--score-samples", "0"],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    // Coverage is of posteriors: a family without an encoder is not told it lacks one.
    assert!(!stderr.contains("not written"), "{stderr}");
    assert!(!out.path().join("prior_coverage.png").exists());
    for file in ["samples.png", "latent_plane.png", "curves.png", "model.bpk"] {
        assert!(out.path().join(file).exists(), "{file} missing");
    }
}

fn one_line_error(args: &[&str], must_contain: &str) {
    let out = bin().args(args).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    assert!(lines[0].contains(must_contain), "{}", lines[0]);
    assert!(!stderr.contains("panicked"));
}

#[test]
fn bad_datasets_end_with_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    one_line_error(
        &["train", "--dataset", "/no/such/folder", "--out", out],
        "/no/such/folder",
    );

    let idx = dir.path().join("idx");
    std::fs::create_dir(&idx).unwrap();
    std::fs::write(
        idx.join("train-images-idx3-ubyte.gz"),
        b"definitely not gzip",
    )
    .unwrap();
    one_line_error(
        &["train", "--dataset", idx.to_str().unwrap(), "--out", out],
        "train-images-idx3-ubyte.gz: named .gz but is not a gzip file",
    );

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    one_line_error(
        &["train", "--dataset", empty.to_str().unwrap(), "--out", out],
        "no PNG, JPEG or BMP images",
    );

    one_line_error(
        &["eval", "--run", dir.path().to_str().unwrap()],
        "config.json",
    );
}

#[test]
fn a_run_folder_with_absurd_sizes_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().to_str().unwrap();
    let write = |config: serde_json::Value| {
        let info = serde_json::json!({
            "layout": 2, "config": config, "input_dim": 784, "width": 28, "height": 28,
            "step": 1, "epoch": 1, "backend": "CPU (flex)"
        });
        std::fs::write(dir.path().join("config.json"), info.to_string()).unwrap();
    };
    // Sixteen layers of 16,384: each within bounds, hundreds of GiB together.
    write(serde_json::json!({ "hidden": vec![16_384; 16] }));
    one_line_error(&["eval", "--run", run], "config.json: hidden");
    write(serde_json::json!({ "hidden": [100_000_000usize] }));
    one_line_error(&["eval", "--run", run], "config.json: config: hidden sizes");
    write(serde_json::json!({ "latent_dim": 0 }));
    one_line_error(
        &["eval", "--run", run],
        "config.json: config: latent dimension",
    );
    // A shape that does not add up.
    let info = serde_json::json!({
        "layout": 2, "config": {}, "input_dim": 785, "width": 28, "height": 28,
        "step": 1, "epoch": 1, "backend": "CPU (flex)"
    });
    std::fs::write(dir.path().join("config.json"), info.to_string()).unwrap();
    one_line_error(&["eval", "--run", run], "config.json: input_dim");
}

#[test]
fn a_run_that_diverges_ends_with_the_reason_and_a_failure_status() {
    let out = tempfile::tempdir().unwrap();
    let result = bin()
        .args([
            "train",
            "--model",
            "ali",
            "--ali-loss",
            "derived",
            "--epochs",
            "1",
            "--score-samples",
            "0",
            "--nll-samples",
            "0",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    assert!(
        last.starts_with("error: ") && last.contains("diverged"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("diverged").count(),
        1,
        "the reason is given once: {stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

#[test]
fn a_folder_of_colour_images_of_mixed_sizes_trains_in_colour() {
    let data_dir = tempfile::tempdir().unwrap();
    for (class, rgb) in [("red", [230u8, 30, 30]), ("blue", [30, 30, 230])] {
        let sub = data_dir.path().join(class);
        std::fs::create_dir(&sub).unwrap();
        for i in 0..40u32 {
            // A coloured square at a varying place on black, 16x16 PNGs and 20x20 JPEGs.
            let side = if i % 4 == 0 { 20 } else { 16 };
            let img = image::RgbImage::from_fn(side, side, |x, y| {
                let (x0, y0) = (i % 7, (i / 7) % 7);
                if (x0..x0 + 8).contains(&x) && (y0..y0 + 8).contains(&y) {
                    image::Rgb(rgb)
                } else {
                    image::Rgb([0, 0, 0])
                }
            });
            let ext = if i % 4 == 0 { "jpg" } else { "png" };
            img.save(sub.join(format!("{i}.{ext}"))).unwrap();
        }
    }
    let out = tempfile::tempdir().unwrap();
    let run = train_ok(
        data_dir.path(),
        out.path(),
        &[
            "--epochs",
            "3",
            "--batch-size",
            "16",
            "--score-samples",
            "0",
            "--nll-samples",
            "0",
        ],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("of 16x16 in colour"), "{stderr}");
    // No likelihood was chosen: colour data get the Gaussian, so nothing needs pointing out.
    assert!(
        !stderr.contains("not a normalised likelihood of colour"),
        "{stderr}"
    );
    // The inputs and their reconstructions are drawn in colour: strongly red and strongly
    // blue pixels both appear.
    let recon = image::open(out.path().join("reconstructions.png"))
        .unwrap()
        .to_rgb8();
    let reddish = recon.pixels().filter(|p| p[0] > 150 && p[2] < 80).count();
    let bluish = recon.pixels().filter(|p| p[2] > 150 && p[0] < 80).count();
    assert!(
        reddish > 50 && bluish > 50,
        "{reddish} red, {bluish} blue pixels"
    );
    let config = std::fs::read_to_string(out.path().join("config.json")).unwrap();
    assert!(
        config.contains("\"input_dim\": 768"),
        "16 x 16 x 3 values per image"
    );
    assert!(
        config.contains("\"gaussian\""),
        "the colour default: {config}"
    );
    // Bernoulli chosen on colour data is pointed out.
    let out = tempfile::tempdir().unwrap();
    let run = train_ok(
        data_dir.path(),
        out.path(),
        &[
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--score-samples",
            "0",
            "--nll-samples",
            "0",
            "--likelihood",
            "bernoulli",
        ],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("not a normalised likelihood of colour"),
        "the Bernoulli likelihood on colour is pointed out: {stderr}"
    );
}

#[test]
fn a_run_folder_killed_at_random_moments_always_loads_as_its_last_complete_save() {
    use latent_atlas::train::{Trainer, checkpoint};
    let data_dir = tempfile::tempdir().unwrap();
    write_mnist_subset(data_dir.path(), 600);
    let out = tempfile::tempdir().unwrap();
    let data = std::sync::Arc::new(
        latent_atlas::data::DatasetSpec::parse(data_dir.path().to_str().unwrap())
            .load(0)
            .unwrap(),
    );
    // Kill moments spread over startup, training and saving: a fixed pseudo-random sequence.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut loaded = 0;
    let started = std::time::Instant::now();
    for round in 0..14 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let wait = std::time::Duration::from_millis(200 + state % 1500);
        let mut child = bin()
            .args([
                "train",
                "--epochs",
                "1000",
                "--score-samples",
                "0",
                "--nll-samples",
                "0",
            ])
            .args(["--hidden", "64", "--seed", &round.to_string()])
            .arg("--dataset")
            .arg(data_dir.path())
            .arg("--out")
            .arg(out.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(wait);
        // SIGKILL: no destructor, no flush.
        child.kill().unwrap();
        child.wait().unwrap();
        if !out.path().join(checkpoint::CONFIG_FILE).exists() {
            continue;
        }
        let info = checkpoint::read_info(out.path())
            .unwrap_or_else(|e| panic!("round {round}: config.json unreadable: {e}"));
        let trainer =
            Trainer::from_checkpoint(out.path(), data.clone(), burn::tensor::Device::flex())
                .unwrap_or_else(|e| panic!("round {round}: the run does not load: {e}"));
        assert_eq!(trainer.step_count(), info.step);
        // The exports beside it are whole files too.
        for png in ["latent_plane.png", "samples.png", "curves.png"] {
            let path = out.path().join(png);
            if path.exists() {
                image::open(&path).unwrap_or_else(|e| panic!("round {round}: {png}: {e}"));
            }
        }
        let metrics = std::fs::read_to_string(out.path().join("metrics.csv")).unwrap_or_default();
        assert!(
            metrics.is_empty() || metrics.starts_with("kind,"),
            "round {round}"
        );
        loaded += 1;
    }
    assert!(loaded >= 5, "only {loaded} rounds got as far as a save");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

#[test]
fn window_options_beside_a_subcommand_are_refused() {
    let out = bin()
        .args([
            "--backend",
            "gpu",
            "train",
            "--out",
            "/nonexistent/never-written",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot be used with '--backend"),
        "the top-level option is named: {stderr}"
    );
    assert!(!std::path::Path::new("/nonexistent/never-written").exists());
}

/// Set in a copy of this test binary that only writes settings, over and over, until killed.
const SETTINGS_WRITER: &str = "LATENT_ATLAS_TEST_SETTINGS_WRITER";

#[test]
fn remembered_settings_killed_mid_write_always_read_back_whole() {
    use latent_atlas::app::state::{Settings, read_settings, write_settings};
    if let Some(path) = std::env::var_os(SETTINGS_WRITER) {
        let path = std::path::PathBuf::from(path);
        let mut settings = Settings::default();
        for seed in 1.. {
            settings.config.seed = seed;
            // Settings of varying length, so a torn write would show.
            settings.config.dataset = "d".repeat((seed % 4000) as usize);
            write_settings(&path, &settings).unwrap();
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.json");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut last_seed = 0;
    for round in 0..20 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "cli::remembered_settings_killed_mid_write_always_read_back_whole",
                "--exact",
                "--nocapture",
            ])
            .env(SETTINGS_WRITER, &path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30 + state % 250));
        child.kill().unwrap();
        child.wait().unwrap();
        if !path.exists() {
            continue;
        }
        let settings = read_settings(&path)
            .unwrap_or_else(|| panic!("round {round}: the settings file does not parse"));
        assert_eq!(
            settings.config.dataset.len() as u64,
            settings.config.seed % 4000,
            "round {round}: a torn or mixed file"
        );
        last_seed = settings.config.seed;
    }
    assert!(last_seed > 0, "no write ever completed");
}

#[test]
fn a_run_stopped_after_an_epoch_and_resumed_ends_where_an_unbroken_run_ends() {
    let data_dir = tempfile::tempdir().unwrap();
    write_mnist_subset(data_dir.path(), 1200);
    // Binarised batches and a validation schedule, so that every stream and state counts.
    let common = [
        "--binarize",
        "--seed",
        "3",
        "--batch-size",
        "64",
        "--validation",
        "200",
        "--nll-samples",
        "0",
        "--score-samples",
        "0",
    ];
    let with = |epochs: &'static str| [&common[..], &["--epochs", epochs]].concat();
    let whole = tempfile::tempdir().unwrap();
    train_ok(data_dir.path(), whole.path(), &with("2"));
    let broken = tempfile::tempdir().unwrap();
    train_ok(data_dir.path(), broken.path(), &with("1"));
    let resumed = bin()
        .args(["train", "--score-samples", "0", "--epochs", "2", "--resume"])
        .arg(broken.path())
        .output()
        .unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let read = |dir: &Path| latent_atlas::train::checkpoint::read_info(dir).unwrap();
    let (a, b) = (read(whole.path()), read(broken.path()));
    assert_eq!((a.epoch, a.step), (2, b.step));
    assert_eq!(b.epoch, 2);
    // Bit for bit: the same weights (the files differ in their parameters' ids, which each
    // process draws afresh), the same streams and schedule.
    let weights = |dir: &Path| {
        let data = std::sync::Arc::new(
            latent_atlas::data::DatasetSpec::parse(data_dir.path().to_str().unwrap())
                .load(3)
                .unwrap(),
        );
        let trainer =
            latent_atlas::train::Trainer::from_checkpoint(dir, data, burn::tensor::Device::flex())
                .unwrap();
        latent_atlas::train::safetensors::tensors(trainer.model())
    };
    let (wa, wb) = (weights(whole.path()), weights(broken.path()));
    assert!(!wa.is_empty() && wa == wb, "the weights differ");
    let (ra, rb) = (a.resume.clone().unwrap(), b.resume.clone().unwrap());
    assert_eq!((ra.rng, ra.plateau), (rb.rng, rb.plateau));
    // metrics.csv goes on: both epochs' test rows, and the training rows of both runs.
    let rows = |dir: &Path| {
        let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
        let tests: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("test,"))
            .map(str::to_owned)
            .collect();
        (
            text.lines().filter(|l| l.starts_with("train,")).count(),
            tests,
        )
    };
    let (train_a, tests_a) = rows(whole.path());
    let (train_b, tests_b) = rows(broken.path());
    assert_eq!(tests_a.len(), 2);
    assert_eq!(tests_a, tests_b);
    assert_eq!(train_a, train_b);
    // A scored run keeps its earlier epochs' scores when it goes on.
    let scored = tempfile::tempdir().unwrap();
    let args = [
        "--epochs",
        "1",
        "--score-samples",
        "100",
        "--nll-samples",
        "0",
    ];
    train_ok(data_dir.path(), scored.path(), &args);
    let resumed = bin()
        .args([
            "train",
            "--score-samples",
            "100",
            "--epochs",
            "2",
            "--resume",
        ])
        .arg(scored.path())
        .output()
        .unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let scores = std::fs::read_to_string(scored.path().join("scores.csv")).unwrap();
    assert_eq!(
        scores.lines().count(),
        3,
        "a header and both epochs' rows: {scores}"
    );

    // A damaged optimiser file is refused, naming it.
    let slot = b.weights.unwrap();
    let optimizer = latent_atlas::train::checkpoint::optimizer_file(&slot);
    std::fs::write(broken.path().join(optimizer), b"not an optimiser").unwrap();
    let refused = bin()
        .args(["train", "--epochs", "3", "--resume"])
        .arg(broken.path())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains(optimizer) && err.contains("fingerprint"),
        "{err}"
    );
}
