//! Live curves: reconstruction, KL and total per step (smoothed, raw faint), the test negative
//! ELBO per epoch, and the KL of each latent dimension.

use egui::Color32;
use egui_plot::{Bar, BarChart, Legend, Line, Plot, PlotPoints, Points};

use crate::app::state::AppState;

fn y(v: f64, log: bool) -> f64 {
    if log { v.max(1e-6).log10() } else { v }
}

fn line(name: &str, pts: &[[f64; 2]], log: bool, color: Color32, width: f32) -> Line<'static> {
    let pts: Vec<[f64; 2]> = pts.iter().map(|p| [p[0], y(p[1], log)]).collect();
    Line::new(name.to_owned(), PlotPoints::new(pts))
        .color(color)
        .width(width)
}

/// Draws the curves tab.
pub fn curves_ui(ui: &mut egui::Ui, state: &mut AppState) {
    ui.horizontal(|ui| {
        ui.checkbox(&mut state.settings.log_scale, "Log scale");
        if let Some(t) = state.tests.last() {
            ui.label(format!(
                "epoch {}: test negative ELBO {:.2} nats{}, active dims {}/{}",
                t.epoch,
                t.neg_elbo,
                t.nll.map(|v| format!(", NLL {v:.2}")).unwrap_or_default(),
                t.active_dims(),
                t.kl_per_dim.len()
            ));
        }
    });
    let log = state.settings.log_scale;
    let c = &state.curves;
    let series = [
        (
            "reconstruction",
            &c.reconstruction,
            Color32::from_rgb(31, 119, 180),
        ),
        ("KL", &c.kl, Color32::from_rgb(214, 39, 40)),
        ("total", &c.total, Color32::from_rgb(44, 160, 44)),
    ];
    let width = ui.available_width();
    let height = ui.available_height().max(200.0);
    ui.horizontal(|ui| {
        Plot::new("loss_curves")
            .legend(Legend::default())
            .width(width * 0.68)
            .height(height)
            .x_axis_label("step")
            .y_axis_label(if log { "log10 nats" } else { "nats" })
            .show(ui, |pu| {
                for (name, s, color) in series {
                    pu.line(line(
                        &format!("{name} (raw)"),
                        s.points(),
                        log,
                        color.gamma_multiply(0.25),
                        1.0,
                    ));
                    pu.line(line(name, &s.smoothed(0.05), log, color, 2.0));
                }
                let test: Vec<[f64; 2]> = c
                    .test_elbo
                    .points()
                    .iter()
                    .map(|p| [p[0], y(p[1], log)])
                    .collect();
                pu.points(
                    Points::new("test negative ELBO", test)
                        .radius(4.0)
                        .color(Color32::BLACK),
                );
            });
        let per_dim = state
            .last_step
            .as_ref()
            .map(|m| m.kl_per_dim.clone())
            .unwrap_or_default();
        let bars: Vec<Bar> = per_dim
            .iter()
            .enumerate()
            .map(|(i, &k)| {
                Bar::new(i as f64, k as f64).width(0.7).fill(if k > 0.01 {
                    Color32::from_rgb(214, 39, 40)
                } else {
                    Color32::GRAY
                })
            })
            .collect();
        Plot::new("kl_per_dim")
            .height(height)
            .x_axis_label("latent dimension")
            .y_axis_label("KL (nats)")
            .show(ui, |pu| {
                pu.bar_chart(BarChart::new("KL per dimension", bars))
            });
    });
}
