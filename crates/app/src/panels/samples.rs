//! Samples from the prior at temperature T, refreshed with each snapshot and when T changes;
//! for the CVAE, from one class's Gaussian or a row per class. Below them, the evaluator's
//! scores of the generator.

use crate::action::Action;
use crate::images::{CachedTexture, grid};
use crate::state::AppState;
use latent_atlas_view::run::EvaluatorStatus;
use latent_atlas_view::scene::samples::{SampleRequest, sample_columns, sample_points};

/// Draws the temperature controls, the sample grid and the scores.
pub fn samples_ui(
    ui: &mut egui::Ui,
    state: &mut AppState,
    texture: &mut CachedTexture<SampleRequest>,
) -> Option<Action> {
    let mut action = None;
    ui.horizontal(|ui| {
        let mut t = state.settings.temperature;
        let slider = egui::Slider::new(&mut t, 0.0..=1.5)
            .step_by(0.05)
            .text("Temperature T");
        if ui
            .add(slider)
            .on_hover_text("z = mode + T * eps, eps ~ N(0, I). Keys [ and ] change it too.")
            .changed()
        {
            state.set_temperature(t);
        }
        if ui.button("New noise").clicked() {
            state.new_noise();
        }
        let classes = state
            .main
            .snapshot
            .as_ref()
            .map_or(0, |s| s.view.classes(s.latent_dim));
        if classes > 0 {
            let names = state
                .main
                .snapshot
                .as_ref()
                .map(|s| s.probe.class_names.clone())
                .unwrap_or_default();
            let name = |c: usize| names.get(c).cloned().unwrap_or_else(|| c.to_string());
            egui::ComboBox::from_label("Class")
                .selected_text(match state.settings.sample_class {
                    None => "every class (a column each)".to_owned(),
                    Some(c) => name(c),
                })
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut state.settings.sample_class, None, "every class");
                    for c in 0..classes {
                        ui.selectable_value(&mut state.settings.sample_class, Some(c), name(c));
                    }
                });
        }
        if ui
            .button("Score samples")
            .on_hover_text(
                "Classify 1,000 samples at T = 1 with the dataset's evaluator: class entropy \
                 (mode coverage), Frechet distance to real images, class accuracy (CVAE). \
                 Also done after every epoch.",
            )
            .clicked()
        {
            action = Some(Action::Score);
        }
    });
    scores_line(ui, state);
    let (Some(request), Some(s)) = (state.sample_request(), state.main.snapshot.as_ref()) else {
        ui.label("Waiting for the first snapshot…");
        return action;
    };
    let tex = texture.get(ui.ctx(), request, || {
        let z = sample_points(s, &request);
        grid(
            &s.decoder.decode_many(&z),
            s.decoder.width,
            s.decoder.height,
            sample_columns(s, &request),
        )
    });
    let size = tex.size_vec2();
    let scale = (ui.available_height() / size.y)
        .min(ui.available_width() / size.x)
        .clamp(0.5, 4.0);
    ui.image((tex.id(), size * scale));
    action
}

/// One line on the evaluator and its newest scores.
fn scores_line(ui: &mut egui::Ui, state: &AppState) {
    let text = match (state.main.evaluator, state.main.scores.last()) {
        (EvaluatorStatus::Training(p), _) => format!(
            "Training the evaluator classifier for this dataset (once; cached after): {:.0}%",
            100.0 * p
        ),
        (_, Some(s)) => {
            let acc = match state.main.evaluator {
                EvaluatorStatus::Ready(a) => format!(" (evaluator {:.1}% accurate)", 100.0 * a),
                _ => String::new(),
            };
            format!(
                "Step {}: class entropy {:.2} of {:.2} nats, Frechet distance {:.1}{}{acc}",
                s.step,
                s.entropy,
                s.max_entropy,
                s.frechet,
                s.class_accuracy
                    .map(|a| format!(", class accuracy {:.1}%", 100.0 * a))
                    .unwrap_or_default(),
            )
        }
        (EvaluatorStatus::Ready(a), None) => {
            format!("Evaluator ready ({:.1}% accurate); scoring…", 100.0 * a)
        }
        (EvaluatorStatus::Idle, None) => {
            "Not scored yet: scores come after each epoch, or press Score samples.".to_owned()
        }
    };
    ui.label(text);
}
