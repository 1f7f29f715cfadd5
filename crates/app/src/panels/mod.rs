//! One file per panel. Each draws from the state and returns the actions the user asked for.

pub mod controls;
pub mod curves;
pub mod interp;
pub mod plane;
pub mod recon;
pub mod samples;
pub mod status;

use egui::Color32;

/// The colour of class `label` with the given alpha.
pub fn class_color32(label: u8, alpha: u8) -> Color32 {
    let [r, g, b, _] = latent_atlas_view::export::canvas::class_color(label);
    Color32::from_rgba_unmultiplied(r, g, b, alpha)
}
