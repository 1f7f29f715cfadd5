//! The explorer driven headlessly with egui_kittest: training controls, the temperature
//! slider, the interpolation handle, exports, and a bad dataset that leaves the model intact.

use std::time::Duration;

use crate::support::{harness, step_until};
use egui::accesskit::Role;
use egui_kittest::kittest::Queryable;
use latent_atlas::app::action::Action;
use latent_atlas::app::state::{Endpoint, Tab};
use latent_atlas::train::{ModelKind, PosteriorShape};
use latent_atlas::worker::RunState;

const WAIT: Duration = Duration::from_secs(120);

#[test]
fn train_pause_and_resume_from_buttons_and_space() {
    let mut h = harness(1280.0, 820.0, "mnist");
    step_until(&mut h, WAIT, |a| a.state.is_running()).unwrap();
    h.get_by_label("Pause").click();
    step_until(&mut h, WAIT, |a| {
        a.state.main.state == Some(RunState::Paused)
    })
    .unwrap();
    let paused_at = h.state().state.main.last_step.as_ref().map(|m| m.step);
    h.get_by_label("Resume").click();
    step_until(&mut h, WAIT, |a| a.state.is_running()).unwrap();
    step_until(&mut h, WAIT, |a| {
        a.state.main.last_step.as_ref().map(|m| m.step) > paused_at
    })
    .unwrap();
    h.key_press(egui::Key::Space);
    step_until(&mut h, WAIT, |a| {
        a.state.main.state == Some(RunState::Paused)
    })
    .unwrap();
    h.state_mut().shutdown();
}

#[test]
fn the_temperature_slider_changes_the_sample_request() {
    let mut h = harness(1280.0, 820.0, "mnist");
    step_until(&mut h, WAIT, |a| a.state.main.snapshot.is_some()).unwrap();
    h.state_mut().state.settings.tab = Tab::Samples;
    h.run_steps(2);
    let before = h.state().state.sample_request().unwrap();
    h.get_by_role_and_label(Role::Slider, "Temperature T")
        .focus();
    h.run_steps(1);
    h.key_press(egui::Key::ArrowLeft);
    h.run_steps(2);
    let after = h.state().state.sample_request().unwrap();
    assert!(
        after.temperature < before.temperature,
        "{before:?} -> {after:?}"
    );
    h.get_by_label("New noise").click();
    h.run_steps(2);
    assert_ne!(
        h.state().state.sample_request().unwrap().noise_seed,
        after.noise_seed
    );
    h.state_mut().shutdown();
}

#[test]
fn pinning_two_samples_and_moving_the_handle_decodes_the_point() {
    let mut h = harness(1280.0, 820.0, "mnist");
    step_until(&mut h, WAIT, |a| a.state.main.snapshot.is_some()).unwrap();
    {
        let s = &mut h.state_mut().state;
        s.settings.tab = Tab::Interpolation;
        s.pin(Endpoint::Sample(0));
        s.pin(Endpoint::Sample(1));
    }
    h.run_steps(2);
    let first = h
        .state()
        .state
        .preview
        .clone()
        .expect("pinning two decodes the handle point");
    h.get_by_role_and_label(Role::Slider, "Handle").focus();
    h.run_steps(1);
    h.key_press(egui::Key::ArrowRight);
    h.run_steps(2);
    let moved = h.state().state.preview.clone().unwrap();
    assert_ne!(first.0, moved.0, "the handle moved along the path");
    assert_eq!(moved.1.len(), 784);
    h.state_mut().shutdown();
}

#[test]
fn every_export_button_writes_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(1280.0, 900.0, "mnist");
    step_until(&mut h, WAIT, |a| {
        a.state.main.snapshot.as_ref().is_some_and(|s| s.step > 0)
    })
    .unwrap();
    {
        let s = &mut h.state_mut().state;
        s.settings.export_dir = dir.path().to_owned();
        s.settings.export_size = 300;
        s.pin(Endpoint::Sample(0));
        s.pin(Endpoint::Sample(5));
    }
    for (label, file) in [
        ("Latent plane PNG", "latent_plane.png"),
        ("Curves PNG", "curves.png"),
        ("Samples PNG", "samples.png"),
        ("Interpolation PNG", "interpolation.png"),
        ("Manifold PNG", "manifold.png"),
        ("Reconstructions PNG", "reconstructions.png"),
        ("Prior coverage PNG", "prior_coverage.png"),
    ] {
        h.get_by_label(label).click();
        h.run_steps(2);
        step_until(&mut h, WAIT, |a| !a.is_exporting()).unwrap();
        assert!(
            dir.path().join(file).exists(),
            "{label} did not write {file}: {:?}",
            h.state().state.errors
        );
    }
    h.get_by_label("Export all").click();
    h.run_steps(2);
    step_until(&mut h, WAIT, |a| !a.is_exporting()).unwrap();
    for file in ["metrics.csv", "latent.csv"] {
        assert!(dir.path().join(file).exists(), "{file}");
    }
    h.get_by_label("Training GIF").click();
    h.run_steps(2);
    step_until(&mut h, WAIT, |a| !a.is_exporting()).unwrap();
    assert!(
        dir.path().join("latent_plane.gif").exists(),
        "{:?}",
        h.state().state.errors
    );
    h.state_mut().shutdown();
}

#[test]
fn a_bad_dataset_path_shows_an_error_and_keeps_the_model() {
    let mut h = harness(1280.0, 820.0, "mnist");
    step_until(&mut h, WAIT, |a| {
        a.state.main.snapshot.as_ref().is_some_and(|s| s.step > 0)
    })
    .unwrap();
    let probes = h.state().state.main.snapshot.as_ref().unwrap().probe.len();
    h.get_by_role_and_label(Role::TextInput, "Path").focus();
    h.run_steps(1);
    h.get_by_role_and_label(Role::TextInput, "Path")
        .type_text("/no/such/dataset");
    h.run_steps(1);
    h.get_by_label("Load").click();
    step_until(&mut h, WAIT, |a| !a.state.errors.is_empty()).unwrap();
    h.run_steps(2);
    let error = h.state().state.errors.last().unwrap().clone();
    assert!(error.contains("/no/such/dataset"), "{error}");
    assert!(
        h.query_by_label_contains("/no/such/dataset").is_some(),
        "the error is on screen"
    );
    let state = &h.state().state;
    assert_eq!(state.main.dataset.as_ref().unwrap().0, "mnist");
    assert_eq!(state.main.snapshot.as_ref().unwrap().probe.len(), probes);
    // Training goes on with the old model.
    let step = state.main.last_step.as_ref().map(|m| m.step);
    let result = step_until(&mut h, Duration::from_secs(20), |a| {
        a.state.main.last_step.as_ref().map(|m| m.step) > step
    });
    let s = &h.state().state;
    assert!(
        result.is_ok(),
        "run {:?}, errors {:?}, notices {:?}, step {step:?}",
        s.main.state,
        s.errors,
        s.notices
    );
    h.state_mut().shutdown();
}

#[test]
fn a_saved_run_loads_back_with_its_curves() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(1280.0, 820.0, "mnist");
    step_until(&mut h, WAIT, |a| {
        a.state
            .main
            .last_step
            .as_ref()
            .is_some_and(|m| m.step >= 30)
    })
    .unwrap();
    h.state_mut()
        .handle(latent_atlas::app::action::Action::Pause);
    step_until(&mut h, WAIT, |a| !a.state.is_running()).unwrap();
    let rows = h.state().state.main.train_rows.len();
    h.state_mut()
        .handle(latent_atlas::app::action::Action::SaveRun(Some(
            dir.path().to_owned(),
        )));
    step_until(&mut h, WAIT, |a| {
        a.state.notices.iter().any(|n| n.starts_with("saved"))
    })
    .unwrap();
    step_until(&mut h, WAIT, |a| !a.is_exporting()).unwrap();
    assert!(dir.path().join("model.bpk").exists() && dir.path().join("metrics.csv").exists());
    h.state_mut()
        .handle(latent_atlas::app::action::Action::Reset);
    step_until(&mut h, WAIT, |a| a.state.main.train_rows.len() < rows).unwrap();
    h.state_mut()
        .handle(latent_atlas::app::action::Action::LoadRun(Some(
            dir.path().to_owned().into(),
        )));
    step_until(&mut h, WAIT, |a| a.state.main.train_rows.len() >= rows).unwrap();
    assert!(h.state().state.main.curves.total.len() >= rows.min(4000));
    let step = h.state().state.main.snapshot.as_ref().map(|s| s.step);

    // The same run as a zip of its folder (as a browser downloads it, or a user zips it),
    // dropped on the window: loaded as the run, not taken for a dataset.
    let mut entries: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (format!("my-run/{name}"), std::fs::read(&p).unwrap())
        })
        .collect();
    entries.sort();
    let zips = tempfile::tempdir().unwrap();
    let zip = zips.path().join("my-run.zip");
    std::fs::write(&zip, latent_atlas::archive::write(&entries).unwrap()).unwrap();
    use latent_atlas::data::files::Source;
    assert!(latent_atlas::train::checkpoint::is_saved_run(
        &Source::Disk(zip.clone())
    ));
    assert!(!latent_atlas::train::checkpoint::is_saved_run(
        &Source::Disk(zips.path().to_owned())
    ));
    h.state_mut().handle(Action::Reset);
    step_until(&mut h, WAIT, |a| a.state.main.train_rows.len() < rows).unwrap();
    h.input_mut().dropped_files = vec![std::sync::Arc::new(Dropped(zip.clone()))];
    h.run_steps(1);
    step_until(&mut h, WAIT, |a| {
        a.state.main.train_rows.len() >= rows
            && a.state.main.snapshot.as_ref().map(|s| s.step) == step
    })
    .unwrap();
    let state = &h.state().state;
    assert!(state.errors.is_empty(), "{:?}", state.errors);
    assert_eq!(state.settings.config.dataset, "mnist", "the dataset stays");
    h.state_mut().shutdown();
}

#[test]
fn each_family_shows_its_own_view_and_a_comparison_runs_beside_it() {
    let mut h = harness(1280.0, 820.0, "mnist");
    step_until(&mut h, WAIT, |a| a.state.main.snapshot.is_some()).unwrap();
    // The AE: points, so the ellipse toggle says why it is off.
    h.state_mut().state.settings.config.model = ModelKind::Ae;
    h.state_mut().handle(Action::Reset);
    step_until(&mut h, WAIT, |a| {
        a.state
            .main
            .snapshot
            .as_ref()
            .is_some_and(|s| s.family == ModelKind::Ae && s.step > 0)
    })
    .unwrap();
    h.run_steps(2);
    assert!(h.query_by_label_contains("Codes only").is_some());
    assert_eq!(
        h.state()
            .state
            .main
            .snapshot
            .as_ref()
            .unwrap()
            .family
            .draws()
            .posterior,
        PosteriorShape::Point
    );
    // The CVAE: the samples tab offers a class picker.
    h.state_mut().state.settings.config.model = ModelKind::Cvae;
    h.state_mut().handle(Action::Reset);
    step_until(&mut h, WAIT, |a| {
        a.state
            .main
            .snapshot
            .as_ref()
            .is_some_and(|s| s.family == ModelKind::Cvae && s.view.class_means.is_some())
    })
    .unwrap();
    h.state_mut().state.settings.tab = Tab::Samples;
    h.run_steps(2);
    assert!(h.query_by_label("Class").is_some());
    // The f-VAE: a pre-flow switch appears.
    h.state_mut().state.settings.config.model = ModelKind::FVae;
    h.state_mut().handle(Action::Reset);
    step_until(&mut h, WAIT, |a| {
        a.state
            .main
            .snapshot
            .as_ref()
            .is_some_and(|s| s.family == ModelKind::FVae)
    })
    .unwrap();
    h.run_steps(2);
    h.get_by_label("Pre-flow space").click();
    h.run_steps(2);
    assert!(h.state().state.settings.pre_flow);
    // A comparison run of the BN-VAE trains beside it and gets its own plane.
    h.state_mut()
        .handle(Action::Compare(Some(ModelKind::BnVae)));
    h.state_mut().handle(Action::Resume);
    step_until(&mut h, WAIT, |a| {
        a.state
            .compare
            .as_ref()
            .and_then(|c| c.snapshot.as_ref())
            .is_some_and(|s| s.step > 0)
    })
    .unwrap();
    h.run_steps(2);
    assert!(h.query_by_label_contains("BN-VAE at step").is_some());
    h.state_mut().handle(Action::Compare(None));
    h.run_steps(2);
    assert!(h.state().state.compare.is_none());
    h.state_mut().shutdown();
}

#[test]
fn the_adversarial_families_show_their_controls_and_views() {
    let mut h = harness(1280.0, 820.0, "mnist");
    step_until(&mut h, WAIT, |a| a.state.main.snapshot.is_some()).unwrap();
    h.state_mut().state.settings.config.model = ModelKind::Gan;
    h.state_mut().handle(Action::Reset);
    step_until(&mut h, WAIT, |a| {
        a.state
            .main
            .snapshot
            .as_ref()
            .is_some_and(|s| s.family == ModelKind::Gan && s.step > 0)
    })
    .unwrap();
    h.run_steps(2);
    assert!(
        h.query_by_label_contains("Prior samples (no encoder)")
            .is_some()
    );
    assert!(
        h.state()
            .state
            .main
            .last_step
            .as_ref()
            .and_then(|m| m.extra("d_loss"))
            .is_some()
    );
    // One generator step per phase: the UI says the regulariser does nothing.
    h.state_mut().state.settings.config.adversarial.g_steps = 1;
    h.run_steps(2);
    assert!(
        h.query_by_label_contains("the regulariser is zero")
            .is_some()
    );
    h.state_mut().state.settings.config.adversarial.g_steps = 2;
    h.run_steps(2);
    assert!(
        h.query_by_label_contains("the regulariser is zero")
            .is_none()
    );
    // ALI offers its two loss forms.
    h.state_mut().state.settings.config.model = ModelKind::Ali;
    h.run_steps(2);
    assert!(h.query_by_label("ALI loss").is_some());
    h.state_mut().shutdown();
}

#[test]
fn the_tabs_panel_keeps_its_height_whatever_the_tab_shows() {
    let mut h = harness(1280.0, 820.0, "mnist");
    step_until(&mut h, WAIT, |a| a.state.main.snapshot.is_some()).unwrap();
    h.state_mut().handle(Action::Pause);
    step_until(&mut h, WAIT, |a| !a.state.is_running()).unwrap();
    // The tab buttons sit at the top of the panel: their height on screen is the panel's.
    let top = |h: &mut egui_kittest::Harness<'_, latent_atlas::app::LatentAtlasApp>| {
        h.get_by_label("Curves").rect().top()
    };
    h.run_steps(3);
    let start = top(&mut h);
    // The panel opens at its default height (270 points of the 820).
    assert!(
        (450.0..650.0).contains(&start),
        "the tabs panel starts at {start} in a window 820 high"
    );
    for tab in Tab::ALL {
        h.state_mut().state.settings.tab = tab;
        h.run_steps(3);
        let first = top(&mut h);
        h.run_steps(30);
        let later = top(&mut h);
        assert!(
            (later - first).abs() < 1.0 && (later - start).abs() < 1.0,
            "{tab:?}: the panel's top moved from {start} to {first} and {later}"
        );
    }
    h.state_mut().shutdown();
}

/// A file dropped on the window, read from disk.
#[derive(Debug)]
struct Dropped(std::path::PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &std::path::Path {
        &self.0
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

#[test]
fn files_dropped_on_the_window_become_the_dataset() {
    let mut h = harness(1280.0, 820.0, "mnist");
    step_until(&mut h, WAIT, |a| {
        a.state.main.snapshot.as_ref().is_some_and(|s| s.step > 0)
    })
    .unwrap();
    // Fashion-MNIST's two IDX files, dropped together: held as an upload, read as a folder.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/data/fashion-mnist");
    let files = ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"];
    h.input_mut().dropped_files = files
        .iter()
        .map(|f| std::sync::Arc::new(Dropped(dir.join(f))) as egui::DroppedFileHandle)
        .collect();
    h.run_steps(1);
    step_until(&mut h, WAIT, |a| {
        a.state
            .main
            .dataset
            .as_ref()
            .is_some_and(|d| d.0.contains("t10k"))
            && a.state.main.snapshot.as_ref().is_some_and(|s| s.step > 0)
    })
    .unwrap();
    let state = &h.state().state;
    assert!(state.errors.is_empty(), "{:?}", state.errors);
    assert_eq!(
        state.settings.config.dataset,
        "upload:t10k-images-idx3-ubyte.gz and 1 more"
    );
    // A missing file dropped alone is refused by its path; the model stays.
    h.input_mut().dropped_files = vec![std::sync::Arc::new(Dropped("/no/such/file.npz".into()))];
    h.run_steps(1);
    step_until(&mut h, WAIT, |a| !a.state.errors.is_empty()).unwrap();
    let error = h.state().state.errors.last().unwrap().clone();
    assert!(error.contains("/no/such/file.npz"), "{error}");
    assert!(
        h.state()
            .state
            .main
            .dataset
            .as_ref()
            .unwrap()
            .0
            .contains("t10k"),
        "the uploaded dataset stays"
    );
    // ... and the settings still name it: a reset after the refusal trains on it again.
    assert_eq!(
        h.state().state.settings.config.dataset,
        "upload:t10k-images-idx3-ubyte.gz and 1 more"
    );
    h.state_mut().request_family("cvae").unwrap();
    step_until(&mut h, WAIT, |a| {
        a.state.main.family() == latent_atlas::train::ModelKind::Cvae
            && a.state.main.snapshot.as_ref().is_some_and(|s| s.step > 0)
    })
    .unwrap();
    let main = &h.state().state.main;
    assert!(
        main.dataset.as_ref().unwrap().0.contains("t10k"),
        "{:?}",
        main.dataset
    );
    // Several files, one of them unreadable: refused by its name, nothing else changes.
    h.input_mut().dropped_files = vec![
        std::sync::Arc::new(Dropped(dir.join(files[0]))),
        std::sync::Arc::new(Dropped(dir.join("missing-labels.gz"))),
    ];
    let errors = h.state().state.errors.len();
    let asked = h.state().state.settings.config.dataset.clone();
    h.run_steps(1);
    step_until(&mut h, WAIT, |a| a.state.errors.len() > errors).unwrap();
    let error = h.state().state.errors.last().unwrap().clone();
    assert!(error.contains("missing-labels.gz: cannot read"), "{error}");
    assert_eq!(h.state().state.settings.config.dataset, asked);
    h.state_mut().shutdown();
}

#[test]
fn a_page_script_switches_the_family_and_reads_the_status() {
    let mut h = harness(1280.0, 820.0, "mnist");
    step_until(&mut h, WAIT, |a| {
        a.state.main.snapshot.as_ref().is_some_and(|s| s.step > 0)
    })
    .unwrap();
    let err = h.state_mut().request_family("no-such").unwrap_err();
    assert!(err.contains("f-vae"), "the error names the families: {err}");
    h.state_mut().request_family("f-VAE").unwrap();
    step_until(&mut h, WAIT, |a| {
        a.state.main.config.model == ModelKind::FVae
            && a.state.main.snapshot.as_ref().is_some_and(|s| s.step > 0)
    })
    .unwrap();
    let status: serde_json::Value = serde_json::from_str(&h.state().status_json()).unwrap();
    assert!(
        status["family"].as_str().unwrap().starts_with("f-VAE"),
        "{status}"
    );
    assert_eq!(status["dataset"], "mnist");
    assert!(status["step"].as_u64().is_some() && status["samples_per_sec"].is_number());
    h.state_mut().shutdown();
}

#[test]
fn f1_and_the_question_mark_list_every_shortcut_and_escape_closes_the_list() {
    use latent_atlas::app::shortcuts::{MOUSE, SHORTCUTS, label};
    let mut h = harness(1280.0, 820.0, "mnist");
    h.run_steps(2);
    assert!(h.query_by_label("Keyboard and mouse").is_none());
    h.key_press(egui::Key::F1);
    h.run_steps(2);
    assert!(h.state().state.shortcuts_open);
    assert!(h.query_by_label("Keyboard and mouse").is_some());
    // Every key of the table is listed, as the platform writes it.
    for binding in SHORTCUTS {
        let keys = label(binding, false);
        assert!(
            h.query_all_by_label_contains(&keys).next().is_some(),
            "{keys} ({}) is not in the list",
            binding.what
        );
    }
    for (gesture, _) in MOUSE {
        assert!(h.query_all_by_label(gesture).next().is_some(), "{gesture}");
    }
    h.key_press(egui::Key::Escape);
    h.run_steps(2);
    assert!(!h.state().state.shortcuts_open);
    assert!(h.query_by_label("Keyboard and mouse").is_none());
    h.key_press(egui::Key::Questionmark);
    h.run_steps(2);
    assert!(h.state().state.shortcuts_open, "? opens the list too");
    h.state_mut().shutdown();
}
