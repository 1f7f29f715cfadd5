//! The status bar: run state, step and epoch progress, throughput, backend, the newest error.

use crate::state::AppState;
use latent_atlas_core::worker::RunState;
use latent_atlas_view::run::EvaluatorStatus;

/// Draws the status bar; returns whether the user dismissed the error.
pub fn status_ui(ui: &mut egui::Ui, state: &AppState) -> bool {
    let mut dismiss = false;
    ui.horizontal(|ui| {
        let run = match state.main.state {
            None => "starting…",
            Some(RunState::Idle) => "ready",
            Some(RunState::Running) => "training",
            Some(RunState::Paused) => "paused",
            Some(RunState::Stopped) => "stopped",
            Some(RunState::Finished) => "finished",
        };
        ui.strong(run);
        ui.separator();
        if let Some(m) = &state.main.last_step {
            ui.label(format!("step {}", m.step));
            ui.add(
                egui::ProgressBar::new(m.epoch_progress)
                    .desired_width(120.0)
                    .text(format!(
                        "epoch {} {:.0}%",
                        m.epoch,
                        m.epoch_progress * 100.0
                    )),
            );
            ui.label(format!("{:.0} samples/s", state.main.samples_per_sec));
            ui.separator();
        }
        if let Some((name, train, test)) = &state.main.dataset {
            ui.label(format!("{name}: {train} train / {test} test"));
            ui.separator();
        }
        ui.label(&state.main.backend);
        if let EvaluatorStatus::Training(p) = state.main.evaluator {
            ui.separator();
            ui.add(
                egui::ProgressBar::new(p)
                    .desired_width(140.0)
                    .text(format!("evaluator {:.0}%", 100.0 * p)),
            )
            .on_hover_text("Training the dataset's classifier once; it is cached for next time");
        }
        if let Some((what, share)) = &state.exporting {
            ui.separator();
            ui.add(
                egui::ProgressBar::new(*share)
                    .desired_width(160.0)
                    .text(format!("{what}… {:.0}%", 100.0 * share)),
            );
        }
        // The newest message takes what is left of the bar, cut short with an ellipsis where
        // it is longer; hovering it shows it whole (egui's tooltip for cut text). Dismiss comes first, so it never runs off.
        if let Some(err) = state.last_error() {
            ui.separator();
            dismiss = ui.small_button("Dismiss").clicked();
            let text = format!("Error: {err}");
            ui.add(
                egui::Label::new(
                    egui::RichText::new(&text).color(egui::Color32::from_rgb(220, 60, 60)),
                )
                .truncate(),
            );
        } else if let Some(n) = state.notices.last() {
            ui.separator();
            ui.add(egui::Label::new(n).truncate());
        }
    });
    dismiss
}
