//! Samples from the prior at temperature T, refreshed with each snapshot and when T changes.

use crate::app::images::{CachedTexture, grid};
use crate::app::state::{AppState, SampleRequest};
use crate::export::views::prior_points;
use crate::rng::Rng;

/// Draws the temperature controls and the sample grid.
pub fn samples_ui(
    ui: &mut egui::Ui,
    state: &mut AppState,
    texture: &mut CachedTexture<SampleRequest>,
) {
    ui.horizontal(|ui| {
        let mut t = state.settings.temperature;
        let slider = egui::Slider::new(&mut t, 0.0..=1.5)
            .step_by(0.05)
            .text("Temperature T");
        if ui
            .add(slider)
            .on_hover_text("z = T * eps, eps ~ N(0, I). Keys [ and ] change it too.")
            .changed()
        {
            state.set_temperature(t);
        }
        if ui.button("New noise").clicked() {
            state.new_noise();
        }
    });
    let (Some(request), Some(s)) = (state.sample_request(), state.snapshot.as_ref()) else {
        ui.label("Waiting for the first snapshot…");
        return;
    };
    let tex = texture.get(ui.ctx(), request, || {
        let z = prior_points(
            64,
            s.latent_dim,
            request.temperature,
            &mut Rng::new(request.noise_seed),
        );
        grid(
            &s.decoder.decode_many(&z),
            s.decoder.width,
            s.decoder.height,
            8,
        )
    });
    let size = tex.size_vec2();
    let scale = (ui.available_height() / size.y).clamp(1.0, 4.0);
    ui.image((tex.id(), size * scale));
}
