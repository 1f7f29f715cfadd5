//! Live curves: reconstruction, KL and total per step (smoothed, raw faint), the BN-VAE's KL
//! floor, the test negative ELBO per epoch, the KL of each latent dimension (with the BN-VAE's
//! floor per dimension), and the prior's hole share and the evaluator's class entropy over
//! training.

use egui::Color32;
use egui_plot::{Bar, BarChart, Legend, Line, LineStyle, Plot, PlotPoints, Points};

use crate::state::AppState;
use latent_atlas_core::train::ModelKind;
use latent_atlas_view::run::history::Series;

fn y(v: f64, log: bool) -> f64 {
    if log { v.max(1e-6).log10() } else { v }
}

fn line(name: &str, pts: &[[f64; 2]], log: bool, color: Color32, width: f32) -> Line<'static> {
    let pts: Vec<[f64; 2]> = pts.iter().map(|p| [p[0], y(p[1], log)]).collect();
    Line::new(name.to_owned(), PlotPoints::new(pts))
        .color(color)
        .width(width)
}

/// A per-step series drawn twice: raw and faint, then smoothed.
fn raw_and_smoothed(
    pu: &mut egui_plot::PlotUi<'_>,
    name: &str,
    series: &Series,
    log: bool,
    color: Color32,
) {
    let faint = color.gamma_multiply(0.25);
    pu.line(line(
        &format!("{name} (raw)"),
        series.points(),
        log,
        faint,
        1.0,
    ));
    pu.line(line(name, &series.smoothed(0.05), log, color, 2.0));
}

/// The adversarial families' curves: discriminator and generator losses (and the GAN's
/// regulariser or the reconstruction) on the left, the discriminator's accuracy on real and
/// generated inputs in the middle.
fn adversarial_curves_ui(ui: &mut egui::Ui, state: &AppState, width: f32, height: f32) {
    let c = &state.main.curves;
    let family = state.main.snapshot.as_ref().map(|s| s.family);
    let log = state.settings.log_scale;
    let colors = [
        ("d_loss", "D loss", Color32::from_rgb(214, 39, 40)),
        (
            "g_loss",
            "G loss (adversarial)",
            Color32::from_rgb(44, 160, 44),
        ),
        (
            "regulariser",
            "regulariser |G - G_old|^2",
            Color32::from_rgb(148, 103, 189),
        ),
    ];
    Plot::new("adversarial_losses")
        .legend(Legend::default())
        .width(width * 0.5)
        .height(height)
        .x_axis_label("step")
        .show(ui, |pu| {
            for (key, name, color) in colors {
                if let Some(s) = c.extra(key) {
                    raw_and_smoothed(pu, name, s, log, color);
                }
            }
            if family != Some(ModelKind::Gan) {
                let color = Color32::from_rgb(31, 119, 180);
                pu.line(line(
                    "reconstruction |x - G(E(x))|^2",
                    &c.reconstruction.smoothed(0.05),
                    log,
                    color,
                    2.0,
                ));
            }
        });
    Plot::new("discriminator_accuracy")
        .legend(Legend::default())
        .width(width * 0.22)
        .height(height)
        .include_y(0.0)
        .include_y(1.0)
        .x_axis_label("step")
        .y_axis_label("D accuracy")
        .show(ui, |pu| {
            for (key, name, color) in [
                (
                    "d_real_accuracy",
                    "on real",
                    Color32::from_rgb(31, 119, 180),
                ),
                (
                    "d_fake_accuracy",
                    "on generated",
                    Color32::from_rgb(255, 127, 14),
                ),
            ] {
                if let Some(s) = c.extra(key) {
                    pu.line(line(name, &s.smoothed(0.05), false, color, 2.0));
                }
            }
        });
}

/// Draws the curves tab.
pub fn curves_ui(ui: &mut egui::Ui, state: &mut AppState) {
    ui.horizontal(|ui| {
        ui.checkbox(&mut state.settings.log_scale, "Log scale");
        if let Some(t) = state.main.tests.last() {
            let main = match t.neg_elbo {
                Some(e) => format!("test negative ELBO {e:.2} nats"),
                None if t.reconstruction.is_finite() => {
                    format!("test reconstruction {:.2} nats (no ELBO)", t.reconstruction)
                }
                None => "no encoder, so no reconstruction or ELBO".to_owned(),
            };
            let mut active = if t.kl_per_dim.is_empty() {
                String::new()
            } else {
                format!(
                    ", active dims {}/{} by KL",
                    t.active_dims(),
                    t.kl_per_dim.len()
                )
            };
            if let Some(units) = t.active_units() {
                active.push_str(&format!(
                    ", {units}/{} by posterior-mean activity",
                    t.mean_activity.len()
                ));
            }
            ui.label(format!(
                "epoch {}: {main}{}{active}",
                t.epoch,
                t.nll.map(|v| format!(", NLL {v:.2}")).unwrap_or_default(),
            ));
        }
        if let Some(floor) = state
            .main
            .last_step
            .as_ref()
            .and_then(|m| m.extra("kl_floor"))
        {
            ui.label(format!("KL floor {floor:.3} nats"));
        }
        if let Some((s1, s2)) = state.main.snapshot.as_ref().and_then(|s| s.view.sigmas) {
            // sigma2 is trained (and so worth showing) only under the trained Gaussian.
            ui.label(match state.settings.config.likelihood {
                latent_atlas_core::model::Likelihood::GaussianTrained => {
                    format!("sigma1 {s1:.3}, sigma2 {s2:.3}")
                }
                _ => format!("sigma1 {s1:.3}"),
            });
        }
    });
    let log = state.settings.log_scale;
    let c = &state.main.curves;
    // Trained on the importance-weighted bound, the total is that bound, and the one-draw
    // ELBO is drawn beside it.
    let elbo_beside = c.extra(latent_atlas_core::train::NEG_ELBO);
    let total = match elbo_beside {
        Some(_) => "negative IW bound",
        None => "total",
    };
    let series = [
        (
            "reconstruction",
            &c.reconstruction,
            Color32::from_rgb(31, 119, 180),
        ),
        ("KL", &c.kl, Color32::from_rgb(214, 39, 40)),
        (total, &c.total, Color32::from_rgb(44, 160, 44)),
    ];
    let width = ui.available_width();
    let height = ui.available_height().max(60.0);
    let adversarial = state
        .main
        .snapshot
        .as_ref()
        .is_some_and(|s| s.family.draws().adversarial);
    ui.horizontal(|ui| {
        if adversarial {
            adversarial_curves_ui(ui, state, width, height);
            coverage_plot(ui, state, height);
            return;
        }
        Plot::new("loss_curves")
            .legend(Legend::default())
            .width(width * 0.5)
            .height(height)
            .x_axis_label("step")
            .y_axis_label(if log { "log10 nats" } else { "nats" })
            .show(ui, |pu| {
                for (name, s, color) in series {
                    raw_and_smoothed(pu, name, s, log, color);
                }
                if let Some(s) = elbo_beside {
                    let color = Color32::from_rgb(188, 189, 34);
                    raw_and_smoothed(pu, "negative ELBO (1 draw)", s, log, color);
                }
                let test: Vec<[f64; 2]> = c
                    .test_elbo
                    .points()
                    .iter()
                    .map(|p| [p[0], y(p[1], log)])
                    .collect();
                // A gold diamond per epoch: black dots on the dark theme read as gaps in
                // the training curves.
                pu.points(
                    Points::new("test negative ELBO", test)
                        .shape(egui_plot::MarkerShape::Diamond)
                        .filled(true)
                        .radius(5.0)
                        .color(Color32::from_rgb(255, 200, 40)),
                );
                if !c.kl_floor.is_empty() {
                    pu.line(
                        line(
                            "KL floor",
                            c.kl_floor.points(),
                            log,
                            Color32::from_rgb(148, 103, 189),
                            2.0,
                        )
                        .style(LineStyle::dashed_loose()),
                    );
                }
            });
        let per_dim = state
            .main
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
        let floors: Vec<Bar> = state
            .main
            .snapshot
            .as_ref()
            .and_then(|s| s.view.gamma_mu.clone())
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, g)| {
                Bar::new(i as f64, 0.5 * (g * g) as f64)
                    .width(0.35)
                    .fill(Color32::from_rgb(148, 103, 189))
            })
            .collect();
        ui.vertical(|ui| {
            let mut plot_height = height;
            if per_dim.is_empty() {
                let top = ui.cursor().top();
                ui.label(match state.main.snapshot.as_ref().map(|s| s.family) {
                    Some(f) if !f.draws().kl => format!("The {} has no KL term.", f.label()),
                    Some(f) if f.draws().pre_flow => {
                        format!("The {}'s KL does not split by dimension.", f.label())
                    }
                    Some(_) | None => "No KL yet.".to_owned(),
                });
                // The label takes from the plot's height, so the panel never grows to fit.
                plot_height -= ui.cursor().top() - top;
            }
            Plot::new("kl_per_dim")
                .width(width * 0.22)
                .height(plot_height.max(50.0))
                .legend(Legend::default())
                .x_axis_label("latent dimension")
                .y_axis_label("KL (nats)")
                .show(ui, |pu| {
                    pu.bar_chart(BarChart::new("KL per dimension", bars));
                    if !floors.is_empty() {
                        pu.bar_chart(BarChart::new("floor gamma_mu^2 / 2", floors));
                    }
                });
        });
        coverage_plot(ui, state, height);
    });
}

/// The prior's hole share per snapshot, the evaluator's class entropy per score and, for a
/// dataset with known factors, each factor's linear read-out score.
fn coverage_plot(ui: &mut egui::Ui, state: &AppState, height: f32) {
    let c = &state.main.curves;
    let max_entropy = state
        .main
        .scores
        .last()
        .map_or(1.0, |s| s.max_entropy.max(1e-6));
    let entropy: Vec<[f64; 2]> = c
        .entropy
        .points()
        .iter()
        .map(|p| [p[0], p[1] / max_entropy as f64])
        .collect();
    Plot::new("coverage_curves")
        .height(height)
        .legend(Legend::default())
        .include_y(0.0)
        .include_y(1.0)
        .x_axis_label("step")
        .y_axis_label("share")
        .show(ui, |pu| {
            pu.line(line(
                "prior hole share",
                c.hole_share.points(),
                false,
                Color32::from_rgb(255, 127, 14),
                2.0,
            ));
            pu.points(
                Points::new("class entropy / ln K", entropy)
                    .radius(4.0)
                    .color(Color32::from_rgb(23, 190, 207)),
            );
            for (k, (name, series)) in readout_series(&state.main.scores).into_iter().enumerate() {
                let [r, g, b, _] = latent_atlas_view::scene::class_color((k + 2) as u8);
                pu.line(line(
                    &format!("read-out: {name}"),
                    &series,
                    false,
                    Color32::from_rgb(r, g, b),
                    1.5,
                ));
            }
        });
}

/// Each factor's read-out score per scored step, by factor, in the order first seen.
pub fn readout_series(
    scores: &[latent_atlas_core::evaluator::Scores],
) -> Vec<(String, Vec<[f64; 2]>)> {
    let mut out: Vec<(String, Vec<[f64; 2]>)> = Vec::new();
    for s in scores {
        for (name, v) in &s.factor_readout {
            let at = match out.iter().position(|(n, _)| n == name) {
                Some(i) => i,
                None => {
                    out.push((name.clone(), Vec::new()));
                    out.len() - 1
                }
            };
            out[at].1.push([s.step as f64, *v as f64]);
        }
    }
    out
}
