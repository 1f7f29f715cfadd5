//! Inputs beside their reconstructions, refreshed with each snapshot.

use crate::images::{CachedTexture, grid};
use crate::state::AppState;

/// Pairs shown.
const PAIRS: usize = 24;

/// Draws the reconstruction grid.
pub fn recon_ui(ui: &mut egui::Ui, state: &AppState, texture: &mut CachedTexture<u64>) {
    let Some(s) = state.shown_snapshot() else {
        ui.label("Waiting for the first snapshot…");
        return;
    };
    ui.label("Test inputs (left of each pair) and their reconstructions from the posterior mean (right).");
    let tex = texture.get(ui.ctx(), s.key(), || {
        let n = PAIRS.min(s.probe.len());
        let mu: Vec<f32> = (0..n).flat_map(|i| s.mu_of(i).to_vec()).collect();
        let mut images = Vec::with_capacity(2 * n);
        for (i, rec) in s.decoder.decode_many(&mu).into_iter().enumerate() {
            images.push(s.probe.image(i).iter().map(|&p| p as f32 / 255.0).collect());
            images.push(rec);
        }
        grid(&images, s.probe.width, s.probe.height, 12)
    });
    let size = tex.size_vec2();
    // Fits the panel both ways, so the panel keeps the height the user gave it.
    let scale = (ui.available_width() / size.x)
        .min(ui.available_height() / size.y)
        .clamp(0.5, 4.0);
    ui.image((tex.id(), size * scale));
}
