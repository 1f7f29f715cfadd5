//! The control panel: dataset, model, hyper-parameters, backend, run buttons, save/load, export.

use std::path::PathBuf;

use crate::action::{Action, View};
use crate::state::AppState;
use latent_atlas_core::backend::BackendChoice;
use latent_atlas_core::data::builtin::Builtin;
use latent_atlas_core::model::adversarial::AliLoss;
use latent_atlas_core::model::{Arch, Likelihood};
use latent_atlas_core::train::ModelKind;
use latent_atlas_core::worker::RunState;

/// Training images a long run started from the window holds out for validation.
const LONG_RUN_VALIDATION: usize = 10_000;

/// Text fields being edited, kept between frames.
#[derive(Default)]
pub struct ControlsDraft {
    /// The dataset path being typed.
    pub dataset_path: String,
    /// The hidden sizes being typed.
    pub hidden: Option<String>,
    /// The export folder being typed.
    pub export_dir: Option<String>,
    /// The remote server's address being typed.
    pub remote_url: Option<String>,
}

/// A label followed by an input that screen readers (and tests) know by that label.
fn labelled(
    ui: &mut egui::Ui,
    label: &str,
    add: impl FnOnce(&mut egui::Ui) -> egui::Response,
) -> egui::Response {
    ui.horizontal(|ui| {
        let l = ui.label(label);
        add(ui).labelled_by(l.id)
    })
    .inner
}

/// The device choice and the remote server's address.
fn backend_ui(
    ui: &mut egui::Ui,
    backend: &mut BackendChoice,
    errors: &mut Vec<String>,
    draft: &mut ControlsDraft,
    actions: &mut Vec<Action>,
) {
    egui::ComboBox::from_label("Backend")
        .selected_text(backend.to_string())
        .show_ui(ui, |ui| {
            for b in crate::PAGE_BACKENDS {
                let label = b.to_string();
                ui.selectable_value(backend, b, label);
            }
        })
        .response
        .on_hover_text(match latent_atlas_core::platform::IS_WEB {
            true => "cpu: this page's CPU; gpu: the browser's GPU (WebGPU); auto: the GPU when the browser offers one (applies on Reset)",
            false => "cpu: burn's flex; gpu: a GPU through wgpu; auto: a hardware GPU when there is one (applies on Reset)",
        });
    // A page reaches no server.
    if latent_atlas_core::platform::IS_WEB {
        return;
    }
    let url = draft.remote_url.get_or_insert_with(|| match &*backend {
        BackendChoice::Remote(url) => url.clone(),
        _ => String::new(),
    });
    ui.horizontal(|ui| {
        let l = ui.label("Server");
        ui.add(
            egui::TextEdit::singleline(url)
                .hint_text("ws://HOST:PORT")
                .desired_width(110.0),
        )
        .labelled_by(l.id)
        .on_hover_text(
            "Train on a `latent-atlas serve` server (builds with the remote feature); the \
             token comes from LATENT_ATLAS_TOKEN or the file named by LATENT_ATLAS_TOKEN_FILE",
        );
        if ui.button("Use").clicked() {
            match format!("remote:{}", url.trim()).parse::<BackendChoice>() {
                Ok(b) => {
                    *backend = b;
                    actions.push(Action::Reset);
                }
                Err(e) => errors.push(e),
            }
        }
    });
}

/// Draws the controls; returns the actions asked for.
pub fn controls_ui(
    ui: &mut egui::Ui,
    state: &mut AppState,
    draft: &mut ControlsDraft,
) -> Vec<Action> {
    let mut actions = Vec::new();
    egui::ScrollArea::vertical().show(ui, |ui| {
        run_section(ui, state, &mut actions);
        ui.separator();
        data_section(ui, state, draft, &mut actions);
        ui.separator();
        model_section(ui, state, draft, &mut actions);
        ui.separator();
        optimisation_section(ui, state, &mut actions);
        ui.separator();
        run_files_section(ui, &mut actions);
        ui.separator();
        export_section(ui, state, draft, &mut actions);
    });
    actions
}

/// The run: train, pause, resume, reset.
fn run_section(ui: &mut egui::Ui, state: &AppState, actions: &mut Vec<Action>) {
    ui.heading("Run");
    ui.horizontal(|ui| {
        match state.main.state {
            Some(RunState::Running) => {
                if ui.button("Pause").on_hover_text("Space").clicked() {
                    actions.push(Action::Pause);
                }
            }
            Some(RunState::Paused) | Some(RunState::Stopped) => {
                if ui.button("Resume").on_hover_text("Space").clicked() {
                    actions.push(Action::Resume);
                }
            }
            _ => {
                if ui
                    .add_enabled(state.main.state.is_some(), egui::Button::new("Train"))
                    .on_hover_text("Space")
                    .clicked()
                {
                    actions.push(Action::Start);
                }
            }
        }
        if ui
            .button("Reset")
            .on_hover_text("Start over with these settings (Ctrl+R)")
            .clicked()
        {
            actions.push(Action::Reset);
        }
    });
}

/// The dataset and how it is split.
fn data_section(
    ui: &mut egui::Ui,
    state: &mut AppState,
    draft: &mut ControlsDraft,
    actions: &mut Vec<Action>,
) {
    ui.heading("Data");
    let config = &mut state.settings.config;
    egui::ComboBox::from_label("Dataset")
        .selected_text(config.dataset.clone())
        .show_ui(ui, |ui| {
            for b in Builtin::ALL {
                if ui
                    .selectable_label(config.dataset == b.name(), b.name())
                    .clicked()
                {
                    config.dataset = b.name().to_owned();
                    // Built-in images have one size.
                    config.image_size = 0;
                    // Each built-in set starts with its default likelihood.
                    if config.likelihood != latent_atlas_core::model::Likelihood::GaussianTrained {
                        config.likelihood =
                            latent_atlas_core::train::TrainConfig::default_likelihood(
                                b == Builtin::Shapes,
                            );
                    }
                    actions.push(Action::Reset);
                }
            }
        });
    // A page has no paths: the user's data comes by upload or by a drop on the page.
    if latent_atlas_core::platform::IS_WEB {
        let upload = ui.button("Upload a dataset…").on_hover_text(
            "A .npz, a .zip of images or IDX files, or the files themselves; \
             or drop them on the page",
        );
        if upload.clicked() {
            actions.push(Action::OpenDatasetDialog);
        }
    }
    if !latent_atlas_core::platform::IS_WEB {
        ui.horizontal(|ui| {
            let l = ui.label("Path");
            let field = ui
                .add(
                    egui::TextEdit::singleline(&mut draft.dataset_path)
                        .hint_text("folder, .npz or .zip")
                        .desired_width(110.0),
                )
                .labelled_by(l.id);
            let field = field.on_hover_text(
                "A folder of IDX files (train-images-idx3-ubyte[.gz], …) or of images, a .npz or \
                 .npy file, or a .zip of any of these; or drop files on the window",
            );
            let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if (ui.button("Load").clicked() || enter) && !draft.dataset_path.trim().is_empty() {
                config.dataset = draft.dataset_path.trim().to_owned();
                actions.push(Action::Reset);
            }
            if ui.button("Open…").clicked() {
                actions.push(Action::OpenDatasetDialog);
            }
        });
    }
    if !Builtin::ALL.iter().any(|b| b.name() == config.dataset) {
        let size_label = |s: usize| match s {
            0 => "from the data".to_owned(),
            s => format!("{s} px"),
        };
        let before = config.image_size;
        egui::ComboBox::from_label("Image size")
            .selected_text(size_label(config.image_size))
            .show_ui(ui, |ui| {
                for s in [0, 32, 64] {
                    ui.selectable_value(&mut config.image_size, s, size_label(s));
                }
            })
            .response
            .on_hover_text(
                "An image folder's images scaled so that their larger side is this size \
                 (from the data: the most common size, capped at 64)",
            );
        if config.image_size != before {
            actions.push(Action::Reset);
        }
    }
    ui.checkbox(&mut config.binarize, "Dynamic binarisation");
    if !config.model.draws().adversarial {
        let mut long = config.schedule.is_on();
        let toggle = ui
            .checkbox(&mut long, "Long run: validate, decay, stop")
            .on_hover_text(format!(
                "Hold out the last {LONG_RUN_VALIDATION} training images; after each epoch their \
                 negative ELBO halves the learning rate when it has not improved for {} \
                 epochs, and after {} such decays stops training with the best weights \
                 (applies from the next reset)",
                config.schedule.patience, config.schedule.max_decays
            ));
        if toggle.changed() {
            config.schedule.validation = if long { LONG_RUN_VALIDATION } else { 0 };
        }
    }
}

/// The family, the networks and their sizes, and a second family to compare.
fn model_section(
    ui: &mut egui::Ui,
    state: &mut AppState,
    draft: &mut ControlsDraft,
    actions: &mut Vec<Action>,
) {
    let config = &mut state.settings.config;
    ui.heading("Model");
    let before = config.model;
    egui::ComboBox::from_label("Family")
        .selected_text(config.model.label())
        .show_ui(ui, |ui| {
            for kind in ModelKind::ALL {
                ui.selectable_value(&mut config.model, kind, kind.label())
                    .on_hover_text(family_help(kind));
            }
        });
    if config.model != before {
        config.set_model(config.model);
        actions.push(Action::Reset);
    }
    let before = config.arch;
    egui::ComboBox::from_label("Networks")
        .selected_text(config.arch.label())
        .show_ui(ui, |ui| {
            for arch in Arch::ALL {
                ui.selectable_value(&mut config.arch, arch, arch.label())
                    .on_hover_text(arch.describe());
            }
        })
        .response
        .on_hover_text(config.arch.describe());
    if config.arch != before {
        actions.push(Action::Reset);
    }
    if config.arch == Arch::Conv
        && ui
            .checkbox(&mut config.colour_offset, "Colour offset")
            .on_hover_text(
                "Colour images: one logit per channel for the whole image, from the decoder's last hidden layer, added to every pixel. Without it the convolutional decoder does not learn hue on shapes.",
            )
            .changed()
    {
        actions.push(Action::Reset);
    }
    egui::ComboBox::from_label("Likelihood")
        .selected_text(likelihood_label(config.likelihood))
        .show_ui(ui, |ui| {
            let mut options = vec![
                Likelihood::Bernoulli,
                Likelihood::Gaussian { sigma: 0.1 },
                Likelihood::Logistic {
                    scale: latent_atlas_core::model::vae::DEFAULT_LOGISTIC_SCALE,
                },
            ];
            if config.model.draws().trained_sigma {
                options.push(Likelihood::GaussianTrained);
            }
            for l in options {
                ui.selectable_value(&mut config.likelihood, l, likelihood_label(l));
            }
        });
    match config.model {
        ModelKind::BnVae => {
            labelled(ui, "tau", |ui| {
                ui.add(
                    egui::DragValue::new(&mut config.tau)
                        .range(0.01..=0.99)
                        .speed(0.01),
                )
            })
            .on_hover_text("gamma_mu^2 >= tau: the KL floor is at least d tau / 2");
        }
        ModelKind::FVae => {
            labelled(ui, "Coupling layers", |ui| {
                ui.add(egui::DragValue::new(&mut config.flow_layers).range(1..=16))
            });
        }
        ModelKind::Ae
        | ModelKind::Vae
        | ModelKind::Cvae
        | ModelKind::Gan
        | ModelKind::Aae
        | ModelKind::Ali => {}
    }
    if config.model.draws().adversarial {
        adversarial_ui(ui, config);
    }
    labelled(ui, "Latent dim", |ui| {
        ui.add(egui::DragValue::new(&mut config.latent_dim).range(1..=64))
    });
    let hidden = draft.hidden.get_or_insert_with(|| {
        config
            .hidden
            .iter()
            .map(|h| h.to_string())
            .collect::<Vec<_>>()
            .join(",")
    });
    let r = labelled(ui, "Hidden sizes", |ui| {
        ui.add(egui::TextEdit::singleline(hidden).desired_width(90.0))
    });
    if r.changed()
        && let Ok(v) = hidden
            .split(',')
            .map(|s| s.trim().parse::<usize>())
            .collect::<Result<Vec<_>, _>>()
        && !v.is_empty()
    {
        config.hidden = v;
    }
    labelled(ui, "Seed", |ui| {
        ui.add(egui::DragValue::new(&mut config.seed))
    });
    labelled(ui, "Epochs", |ui| {
        ui.add(egui::DragValue::new(&mut config.epochs).range(1..=10_000))
    });
    labelled(ui, "Probe samples", |ui| {
        ui.add(
            egui::DragValue::new(&mut config.probe_size)
                .range(100..=latent_atlas_core::train::MAX_PROBE)
                .speed(20),
        )
        .on_hover_text("Test samples whose posteriors the plane draws (takes effect on Reset)")
    });
    backend_ui(
        ui,
        &mut state.settings.backend,
        &mut state.errors,
        draft,
        actions,
    );
    ui.label(egui::RichText::new("Changes above apply on Reset.").weak());
    let current = state.compare.as_ref().map(|c| c.family());
    egui::ComboBox::from_label("Compare with")
        .selected_text(current.map_or("nothing", |k| k.label()))
        .show_ui(ui, |ui| {
            if ui.selectable_label(current.is_none(), "nothing").clicked() && current.is_some() {
                actions.push(Action::Compare(None));
            }
            for kind in ModelKind::ALL {
                if ui
                    .selectable_label(current == Some(kind), kind.label())
                    .clicked()
                {
                    actions.push(Action::Compare(Some(kind)));
                }
            }
        })
        .response
        .on_hover_text(
            "Train a second model of another family on the same data and settings, and \
             show its latent plane beside this one with the same view",
        );
}

/// The optimiser's settings, applied at once.
fn optimisation_section(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    let config = &mut state.settings.config;
    ui.heading("Optimisation");
    let h = &mut config.hyper;
    let mut changed = false;
    changed |= labelled(ui, "Learning rate", |ui| {
        ui.add(
            egui::DragValue::new(&mut h.lr)
                .range(1e-6..=1.0)
                .speed(1e-5)
                .max_decimals(6),
        )
    })
    .changed();
    changed |= labelled(ui, "Batch size", |ui| {
        ui.add(egui::DragValue::new(&mut h.batch_size).range(1..=4096))
    })
    .changed();
    changed |= labelled(ui, "Beta (KL weight)", |ui| {
        ui.add(
            egui::DragValue::new(&mut h.beta)
                .range(0.0..=100.0)
                .speed(0.01),
        )
    })
    .changed();
    changed |= labelled(ui, "KL warm-up steps", |ui| {
        ui.add(egui::DragValue::new(&mut h.kl_warmup_steps).range(0..=1_000_000))
    })
    .changed();
    // The importance-weighted objective, for the families with a Gaussian posterior.
    if config.model.has_importance_weights() {
        let h = &mut config.hyper;
        changed |= labelled(ui, "IW draws K", |ui| {
            ui.add(
                egui::DragValue::new(&mut h.iw_samples)
                    .range(1..=latent_atlas_core::train::config::MAX_IW_SAMPLES),
            )
            .on_hover_text(
                "Train on the importance-weighted bound log mean_k p(x|z_k) p(z_k) / \
                 q(z_k|x) over K posterior draws per image (Burda et al. 2016); 1 is the \
                 ELBO. The curves then show the bound beside the one-draw ELBO.",
            )
        })
        .changed();
    }
    if changed {
        actions.push(Action::ApplyHyper);
    }
}

/// Save run and Load run: in a page a run saves as a zip download and loads from one (or
/// from a drop).
fn run_files_section(ui: &mut egui::Ui, actions: &mut Vec<Action>) {
    ui.heading("Run files");
    ui.horizontal(|ui| {
        let (save, load) = match latent_atlas_core::platform::IS_WEB {
            true => (
                "Downloads the run as a zip: weights, config, metrics and every view (Ctrl+S)",
                "Loads a run from the zip Save run downloaded (or drop the zip on the page; Ctrl+O)",
            ),
            false => (
                "Writes the run into a folder: weights, config, metrics and every view (Ctrl+S)",
                "Loads a saved run's folder (or drop the folder, or a .zip of it, on the window; Ctrl+O)",
            ),
        };
        if ui.button("Save run…").on_hover_text(save).clicked() {
            actions.push(Action::SaveRun(None));
        }
        if ui.button("Load run…").on_hover_text(load).clicked() {
            actions.push(Action::LoadRun(None));
        }
    });
}

/// The export folder, the image width and one button per view.
fn export_section(
    ui: &mut egui::Ui,
    state: &mut AppState,
    draft: &mut ControlsDraft,
    actions: &mut Vec<Action>,
) {
    ui.heading("Export");
    let dir = draft
        .export_dir
        .get_or_insert_with(|| state.settings.export_dir.display().to_string());
    if latent_atlas_core::platform::IS_WEB {
        ui.label("Each export downloads: one file, or a zip of several.");
    } else {
        ui.horizontal(|ui| {
            let l = ui.label("Folder");
            if ui
                .add(egui::TextEdit::singleline(dir).desired_width(110.0))
                .labelled_by(l.id)
                .changed()
            {
                state.settings.export_dir = PathBuf::from(dir.as_str());
            }
            if ui.button("Choose…").clicked() {
                actions.push(Action::ChooseExportDir);
            }
        });
    }
    labelled(ui, "Image width (px)", |ui| {
        ui.add(egui::DragValue::new(&mut state.settings.export_size).range(200..=8000))
    });
    ui.horizontal_wrapped(|ui| {
        for view in View::ALL {
            if ui
                .button(format!("{} PNG", view.title()))
                .on_hover_text(format!("Write {}", view.file_name()))
                .clicked()
            {
                actions.push(Action::Export(view));
            }
        }
    });
    ui.horizontal(|ui| {
        if ui
            .button("Export all")
            .on_hover_text("Every view, metrics.csv and latent.csv (Ctrl+E)")
            .clicked()
        {
            actions.push(Action::ExportAll);
        }
        if ui
            .button("Training GIF")
            .on_hover_text("The latent plane over training")
            .clicked()
        {
            actions.push(Action::ExportGif);
        }
    });
}
/// The adversarial families' settings (applied on Reset).
fn adversarial_ui(ui: &mut egui::Ui, config: &mut latent_atlas_core::train::TrainConfig) {
    let a = &mut config.adversarial;
    let lambda_help = match config.model {
        ModelKind::Gan => "Weight of the old-generator regulariser on the per-pixel MSE (0: off)",
        ModelKind::Aae => "Weight of the squared reconstruction error",
        ModelKind::Ali
        | ModelKind::Ae
        | ModelKind::Vae
        | ModelKind::Cvae
        | ModelKind::BnVae
        | ModelKind::FVae => "Unused by this family",
    };
    labelled(ui, "lambda", |ui| {
        ui.add(
            egui::DragValue::new(&mut a.lambda)
                .range(0.0..=100.0)
                .speed(0.05),
        )
    })
    .on_hover_text(lambda_help);
    labelled(ui, "D steps", |ui| {
        ui.add(egui::DragValue::new(&mut a.d_steps).range(1..=20))
    });
    labelled(ui, "G steps", |ui| {
        ui.add(egui::DragValue::new(&mut a.g_steps).range(1..=20))
    });
    if config.model == ModelKind::Gan && a.g_steps == 1 && a.lambda > 0.0 {
        ui.colored_label(
            egui::Color32::from_rgb(230, 140, 0),
            "With 1 G step per phase, G = G_old at that step: the regulariser is zero and has no gradient. Use 2 or more.",
        );
    }
    labelled(ui, "Adversarial lr", |ui| {
        ui.add(
            egui::DragValue::new(&mut a.lr)
                .range(1e-6..=1e-1)
                .speed(1e-5)
                .max_decimals(6),
        )
    })
    .on_hover_text("Adam with beta1 = 0.5, for discriminator and generator alike");
    if config.model == ModelKind::Ali {
        egui::ComboBox::from_label("ALI loss")
            .selected_text(a.ali_loss.label())
            .show_ui(ui, |ui| {
                for form in [AliLoss::Minimax, AliLoss::NonSaturating, AliLoss::Derived] {
                    ui.selectable_value(&mut a.ali_loss, form, form.label())
                        .on_hover_text(form.formula());
                }
            })
            .response
            .on_hover_text(a.ali_loss.formula());
        ui.checkbox(&mut a.ali_gaussian_encoder, "Gaussian encoder")
            .on_hover_text(
                "q(z|x) = N(mu(x), sigma(x)^2) instead of a deterministic E(x): the encoder pairs \
                 are posterior draws (applies on Reset)",
            );
    }
    if config.model == ModelKind::Gan {
        ui.checkbox(&mut a.generator_batch_norm, "Batch norm in G")
            .on_hover_text(
                "Batch normalisation before each of the generator's hidden ReLUs, as in DCGAN \
                 (applies on Reset)",
            );
    }
    ui.checkbox(&mut a.spectral_norm, "Spectral norm in D")
        .on_hover_text(
            "Each of the discriminator's dense layers divided by its largest singular value, so \
             it cannot grow sure enough to starve the generator of gradient (applies on Reset)",
        );
}

/// What a family is, in one sentence, for tooltips.
pub fn family_help(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::Ae => {
            "Deterministic encoder: a point per image, reconstruction only. Its codes leave holes in the prior."
        }
        ModelKind::Vae => {
            "Gaussian posterior N(mu, sigma^2) per image and a N(0, I) prior: ellipses that should tile the unit disc."
        }
        ModelKind::Cvae => {
            "A learned mean per class: the KL pulls each posterior to its class mean; sample a class with z ~ N(mu_y, T^2 I)."
        }
        ModelKind::BnVae => {
            "Batch-normalised mu and sigma heads with fixed scales: the KL has a floor and cannot collapse."
        }
        ModelKind::FVae => {
            "A flow F after the Gaussian: posteriors are warped shapes, and the prior is reached through F."
        }
        ModelKind::Gan => {
            "A generator from the prior against a discriminator, with the old-generator regulariser lambda |G(z) - G_old(z)|^2."
        }
        ModelKind::Aae => {
            "A deterministic encoder whose codes a discriminator tells from prior samples, plus reconstruction."
        }
        ModelKind::Ali => {
            "Encoder and generator against a joint discriminator D(x, z); the derived or the minimax loss."
        }
    }
}

/// A likelihood's name in the controls.
pub fn likelihood_label(l: Likelihood) -> String {
    match l {
        Likelihood::Bernoulli => "Bernoulli (BCE)".into(),
        Likelihood::Gaussian { sigma } => format!("Gaussian, sigma {sigma}"),
        Likelihood::GaussianTrained => "Gaussian, trained sigma2".into(),
        Likelihood::Logistic { scale } => format!("Discretised logistic, scale {scale}"),
    }
}
