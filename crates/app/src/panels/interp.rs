//! Interpolation: the pinned ends, the handle along the path, the large preview of the point
//! under the handle (or under a shift-drag in the plane), and the strip or four-corner grid.

use crate::images::{CachedTexture, grid};
use crate::state::{AppState, Endpoint};
use latent_atlas_core::explore::geometry::PathKind;

/// What the strip texture was built from.
pub type StripKey = (u64, Vec<Endpoint>, PathKind, usize, bool);

/// Draws the interpolation tab.
pub fn interp_ui(
    ui: &mut egui::Ui,
    state: &mut AppState,
    strip: &mut CachedTexture<StripKey>,
    preview: &mut CachedTexture<Vec<u32>>,
) {
    ui.horizontal(|ui| {
        egui::ComboBox::from_label("Path")
            .selected_text(match state.settings.path {
                PathKind::Linear => "linear",
                PathKind::Spherical => "spherical",
            })
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut state.settings.path, PathKind::Linear, "linear");
                ui.selectable_value(&mut state.settings.path, PathKind::Spherical, "spherical");
            });
        ui.add(egui::Slider::new(&mut state.settings.strip_steps, 2..=20).text("Steps"));
        if ui
            .checkbox(&mut state.settings.four_corners, "Four corners")
            .changed()
        {
            state.clear_pins();
        }
        if ui.button("Clear pins").clicked() {
            state.clear_pins();
        }
    });
    let needed = if state.settings.four_corners { 4 } else { 2 };
    if state.pins.len() < needed {
        ui.label(format!(
            "Click {} points or samples in the latent plane to pin them ({} pinned). Shift-drag in the plane decodes the point under the mouse.",
            needed,
            state.pins.len()
        ));
    } else {
        let mut t = state.handle_t;
        if ui
            .add(egui::Slider::new(&mut t, 0.0..=1.0).text("Handle"))
            .changed()
        {
            state.set_handle(t);
        }
    }
    let Some(s) = state.main.snapshot.clone() else {
        return;
    };
    ui.horizontal_top(|ui| {
        if let Some((z, image)) = &state.preview {
            let key: Vec<u32> = image.iter().map(|v| v.to_bits()).collect();
            let tex = preview.get(ui.ctx(), key, || {
                grid(
                    std::slice::from_ref(image),
                    s.decoder.width,
                    s.decoder.height,
                    1,
                )
            });
            ui.vertical(|ui| {
                ui.image((tex.id(), egui::vec2(168.0, 168.0)));
                let coords: Vec<String> = z.iter().take(4).map(|v| format!("{v:.2}")).collect();
                ui.label(format!("z = ({})", coords.join(", ")));
            });
        }
        if let Some((points, n)) = state.interpolation_points() {
            let key = (
                s.key(),
                state.pins.clone(),
                state.settings.path,
                n,
                state.settings.four_corners,
            );
            let cols = if state.settings.four_corners {
                n
            } else {
                points.len() / s.latent_dim.max(1)
            };
            let tex = strip.get(ui.ctx(), key, || {
                grid(
                    &s.decoder.decode_many(&points),
                    s.decoder.width,
                    s.decoder.height,
                    cols,
                )
            });
            let size = tex.size_vec2();
            let scale = (ui.available_width() / size.x)
                .min(ui.available_height() / size.y)
                .clamp(1.0, 4.0);
            ui.image((tex.id(), size * scale));
        }
    });
}
