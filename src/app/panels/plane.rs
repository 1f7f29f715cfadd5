//! The latent plane: every probe posterior as a translucent ellipse (or a point), the unit
//! circle and the temperature circle, decoded tiles underneath, pinned ends with a draggable
//! handle between them. Hover shows a sample, click pins it, shift-drag decodes under the mouse.

use egui::{Color32, Pos2, Shape, Stroke, Vec2};
use egui_plot::{Plot, PlotImage, PlotPoint, PlotTransform};

use super::class_color32;
use crate::app::images::{CachedTexture, grid};
use crate::app::state::{AppState, Endpoint, Settings};
use crate::explore::coverage::HOLE_RATIO;
use crate::explore::projection::{PlaneAxes, Projection};
use crate::train::{PosteriorShape, Snapshot};

/// Half-width of the decoded tile grid under the plane.
const TILE_EXTENT: f32 = 3.0;
/// Tiles per side.
const TILES: usize = 15;

/// Plots that share zoom and pan (the comparison's two planes).
const PLANE_LINK: &str = "latent_plane_link";

/// Whether the f-VAE's pre-flow space is shown instead of the prior's space.
fn pre_flow_shown(snapshot: &Snapshot, settings: &Settings) -> bool {
    settings.pre_flow && snapshot.view.pre_flow.is_some()
}

/// Draws what a snapshot's family shows in the plane: the prior's holes, every posterior
/// (ellipse, point or warped outline), and the CVAE's class means.
fn draw_snapshot(
    painter: &egui::Painter,
    transform: &PlotTransform,
    snapshot: &Snapshot,
    axes: &PlaneAxes,
    settings: &Settings,
) {
    let scale = transform.dpos_dvalue_x() as f32;
    let pre_flow = pre_flow_shown(snapshot, settings);
    let d = snapshot.latent_dim;
    if settings.show_holes
        && !pre_flow
        && let Some(c) = &snapshot.coverage
        && (d == 2 || settings.projection == Projection::Dims(c.axes.0, c.axes.1))
    {
        let half = c.cell() / 2.0;
        let peak = 1.0 / std::f32::consts::TAU;
        for r in 0..c.n {
            for col in 0..c.n {
                let k = r * c.n + col;
                if c.q[k] >= HOLE_RATIO * c.p[k] {
                    continue;
                }
                let (x, y) = (c.centre(col), c.centre(r));
                let rect = egui::Rect::from_two_pos(
                    to_screen(transform, [x - half, y - half]),
                    to_screen(transform, [x + half, y + half]),
                );
                let alpha = ((c.p[k] / peak).sqrt() * 110.0) as u8;
                painter.rect_filled(
                    rect,
                    0.0,
                    Color32::from_rgba_unmultiplied(255, 170, 60, alpha),
                );
            }
        }
    }
    if snapshot.family.draws().adversarial && !pre_flow {
        // The prior's density, for codes to be judged against: its 1, 2 and 3 sigma contours.
        let origin = to_screen(transform, [0.0, 0.0]);
        for (r, alpha) in [(1.0, 60u8), (2.0, 40), (3.0, 25)] {
            painter.add(Shape::circle_filled(
                origin,
                r * scale,
                Color32::from_rgba_unmultiplied(90, 140, 220, alpha / 3),
            ));
            painter.add(Shape::circle_stroke(
                origin,
                r * scale,
                Stroke::new(1.0, Color32::from_rgba_unmultiplied(90, 140, 220, alpha)),
            ));
        }
    }
    let shape = snapshot.family.draws().posterior;
    let alpha = if settings.show_ellipses && shape != PosteriorShape::Point {
        55
    } else {
        160
    };
    // Every disc and ellipse goes into one mesh: 10,000 posteriors stay one shape for egui to
    // pass through, instead of 10,000 shapes to tessellate each frame. The mesh is kept while
    // the snapshot, the view and the settings that shape it stay the same.
    let key = DiscKey {
        snapshot: snapshot.key(),
        frame: *transform.frame(),
        bounds: [
            transform.bounds().min()[0],
            transform.bounds().min()[1],
            transform.bounds().max()[0],
            transform.bounds().max()[1],
        ],
        view: format!(
            "{:?}/{}/{}/{:?}",
            settings.projection, settings.show_ellipses, pre_flow, axes
        ),
    };
    let cache_id = painter.clip_rect().min.x.to_bits() as u64 ^ (snapshot.run << 32);
    let cache_id = egui::Id::unique(("latent-plane-discs", cache_id));
    let cached: Option<DiscCache> = painter.ctx().data(|d| d.get_temp(cache_id));
    let reuse = cached.as_ref().is_some_and(|c| c.key == key);
    let mut discs = Discs::new(snapshot.probe.len(), painter.clip_rect(), reuse);
    for i in 0..snapshot.probe.len() {
        let color = class_color32(snapshot.probe.labels[i], alpha);
        if pre_flow && let Some(pre) = &snapshot.view.pre_flow {
            // Circles of radius sigma1 around E(x).
            let c = to_screen(transform, axes.project(&pre[i * d..(i + 1) * d]));
            let r = if settings.show_ellipses {
                (snapshot.sigma_of(i)[0] * scale).max(1.0)
            } else {
                2.0
            };
            discs.add(c, Vec2::splat(r), color);
            continue;
        }
        let c = to_screen(transform, axes.project(snapshot.mu_of(i)));
        match (shape, settings.show_ellipses) {
            (PosteriorShape::PriorSamples, _) => {
                discs.add(c, Vec2::splat(2.0), Color32::from_gray(150));
            }
            (PosteriorShape::Point, _) | (_, false) => {
                discs.add(c, Vec2::splat(2.0), color);
            }
            (PosteriorShape::Warped, true) => match snapshot.view.outline(i) {
                Some(outline) if d == 2 || settings.projection == Projection::Dims(0, 1) => {
                    let points: Vec<Pos2> =
                        outline.iter().map(|p| to_screen(transform, *p)).collect();
                    painter.add(Shape::closed_line(
                        points,
                        Stroke::new(1.0, class_color32(snapshot.probe.labels[i], 90)),
                    ));
                }
                _ => {
                    discs.add(c, Vec2::splat(2.0), color);
                }
            },
            (PosteriorShape::Ellipse, true) => {
                let r = axes.project_sigma(snapshot.sigma_of(i));
                discs.add(
                    c,
                    Vec2::new((r[0] * scale).max(1.0), (r[1] * scale).max(1.0)),
                    color,
                );
            }
        }
    }
    let mesh = match cached {
        Some(c) if reuse => c.mesh,
        _ => {
            let mesh = std::sync::Arc::new(discs.mesh);
            painter.ctx().data_mut(|d| {
                d.insert_temp(
                    cache_id,
                    DiscCache {
                        key,
                        mesh: mesh.clone(),
                    },
                )
            });
            mesh
        }
    };
    painter.add(Shape::Mesh(mesh));
    if let Some(prior) = &snapshot.view.prior_points {
        for z in prior.chunks_exact(d.max(1)) {
            let c = to_screen(transform, axes.project(z));
            painter.add(Shape::circle_stroke(
                c,
                2.0,
                Stroke::new(1.0, Color32::from_gray(150)),
            ));
        }
    }
    if let Some(means) = &snapshot.view.class_means
        && !pre_flow
    {
        for (label, m) in means.chunks_exact(d.max(1)).enumerate() {
            let c = to_screen(transform, axes.project(m));
            painter.circle(
                c,
                7.0,
                class_color32(label as u8, 255),
                Stroke::new(2.0, Color32::BLACK),
            );
        }
    }
}

/// The comparison run's plane, read-only, with the same view settings and linked zoom.
pub fn compare_ui(ui: &mut egui::Ui, state: &AppState) {
    let Some(compare) = &state.compare else {
        return;
    };
    let title = match (&compare.snapshot, &compare.last_step) {
        (Some(s), Some(m)) => format!(
            "{} at step {}: reconstruction {:.1}, KL {:.2}{}{}",
            compare.family.label(),
            s.step,
            m.reconstruction,
            m.kl,
            m.extra("kl_floor")
                .map(|f| format!(" (floor {f:.2})"))
                .unwrap_or_default(),
            s.coverage
                .as_ref()
                .map(|c| format!(", holes {:.0}%", 100.0 * c.hole_share))
                .unwrap_or_default()
        ),
        _ => format!("{}: building the model…", compare.family.label()),
    };
    ui.vertical(|ui| {
        ui.label(egui::RichText::new(title).strong());
        if let Some(e) = &compare.error {
            ui.colored_label(Color32::from_rgb(200, 40, 40), e);
        }
        let Some(snapshot) = &compare.snapshot else {
            return;
        };
        let axes = PlaneAxes::new(state.settings.projection, &snapshot.mu, snapshot.latent_dim);
        let response = Plot::new("compare_plane")
            .data_aspect(1.0)
            .link_axis(egui::Id::unique(PLANE_LINK), true)
            .default_x_bounds(-3.5, 3.5)
            .default_y_bounds(-3.5, 3.5)
            .show_x(false)
            .show_y(false)
            .show(ui, |_| {});
        let transform = response.transform;
        let painter = ui.painter_at(*transform.frame());
        draw_snapshot(&painter, &transform, snapshot, &axes, &state.settings);
        let scale = transform.dpos_dvalue_x() as f32;
        painter.add(Shape::circle_stroke(
            to_screen(&transform, [0.0, 0.0]),
            scale,
            Stroke::new(1.5, Color32::from_gray(30)),
        ));
    });
}

/// Interaction state of the plane that is not worth persisting.
pub struct PlaneView {
    /// Reset zoom and pan on the next frame.
    pub reset: bool,
    /// The transform of the last frame (to hit-test the handle before the plot runs).
    last_transform: Option<PlotTransform>,
    /// Whether the handle is being dragged.
    dragging_handle: bool,
    hover_texture: CachedTexture<(u64, usize)>,
    tiles: CachedTexture<(u64, Projection)>,
}

impl Default for PlaneView {
    fn default() -> Self {
        Self {
            reset: false,
            last_transform: None,
            dragging_handle: false,
            hover_texture: CachedTexture::new("hovered sample"),
            tiles: CachedTexture::new("manifold tiles"),
        }
    }
}

/// Filled axis-aligned ellipses gathered into one triangle mesh: a fan each, with more
/// segments for larger ones; ellipses wholly outside the visible rectangle are left out.
struct Discs {
    mesh: egui::Mesh,
    /// A cached mesh will be drawn: adding is skipped.
    reuse: bool,
    visible: egui::Rect,
    /// Unit-circle points for 8, 16 and 32 segments.
    circles: [Vec<Vec2>; 3],
}

impl Discs {
    /// Room for `n` discs; with `reuse`, a cached mesh will be drawn and nothing is added.
    fn new(n: usize, visible: egui::Rect, reuse: bool) -> Self {
        let mut mesh = egui::Mesh::default();
        if !reuse {
            mesh.reserve_vertices(n * 9);
            mesh.reserve_triangles(n * 8);
        }
        let circle = |segments: usize| {
            (0..segments)
                .map(|k| Vec2::angled(std::f32::consts::TAU * k as f32 / segments as f32))
                .collect()
        };
        Self {
            mesh,
            reuse,
            visible,
            circles: [circle(8), circle(12), circle(24)],
        }
    }

    fn add(&mut self, centre: Pos2, radii: Vec2, color: Color32) {
        if self.reuse {
            return;
        }
        if !self
            .visible
            .intersects(egui::Rect::from_center_size(centre, radii * 2.0))
        {
            return;
        }
        let r = radii.x.max(radii.y);
        let circle = &self.circles[if r < 4.0 {
            0
        } else if r < 20.0 {
            1
        } else {
            2
        }];
        let m = &mut self.mesh;
        let first = m.vertices.len() as u32;
        let segments = circle.len() as u32;
        m.colored_vertex(centre, color);
        for p in circle {
            m.colored_vertex(centre + Vec2::new(radii.x * p.x, radii.y * p.y), color);
        }
        for k in 0..segments {
            m.add_triangle(first, first + 1 + k, first + 1 + (k + 1) % segments);
        }
    }
}

/// What a plane's disc mesh was built from.
#[derive(Clone, Debug, PartialEq)]
struct DiscKey {
    snapshot: u64,
    frame: egui::Rect,
    bounds: [f64; 4],
    view: String,
}

/// A plane's disc mesh and what it was built from, kept in egui's temporary storage.
#[derive(Clone)]
struct DiscCache {
    key: DiscKey,
    mesh: std::sync::Arc<egui::Mesh>,
}

fn to_screen(t: &PlotTransform, p: [f32; 2]) -> Pos2 {
    t.position_from_point(&PlotPoint::new(p[0] as f64, p[1] as f64))
}

/// Draws the plane toolbar and the plane.
pub fn plane_ui(ui: &mut egui::Ui, state: &mut AppState, view: &mut PlaneView) {
    toolbar_ui(ui, state, view);
    let Some(axes) = state.plane_axes() else {
        ui.centered_and_justified(|ui| ui.label("Loading the dataset and building the model…"));
        return;
    };
    let snapshot = state
        .shown_snapshot()
        .cloned()
        .expect("axes imply a snapshot");
    let shift = ui.input(|i| i.modifiers.shift);
    let handle = state.handle_point().map(|z| axes.project(&z));
    let pointer = ui.input(|i| i.pointer.interact_pos());
    let near_handle = match (handle, &view.last_transform, pointer) {
        (Some(h), Some(t), Some(p)) => to_screen(t, h).distance(p) < 10.0,
        _ => false,
    };
    let pre_flow = pre_flow_shown(&snapshot, &state.settings);
    let mut plot = Plot::new("latent_plane")
        .data_aspect(1.0)
        .link_axis(egui::Id::unique(PLANE_LINK), true)
        .allow_drag(!shift && !near_handle && !view.dragging_handle)
        .allow_double_click_reset(true)
        .default_x_bounds(-3.5, 3.5)
        .default_y_bounds(-3.5, 3.5)
        .show_x(false)
        .show_y(false);
    if view.reset {
        plot = plot.reset();
        view.reset = false;
    }
    let tiles = state.settings.show_manifold.then(|| {
        let key = (snapshot.key(), state.settings.projection);
        let tex = view.tiles.get(ui.ctx(), key, || {
            let step = 2.0 * TILE_EXTENT / TILES as f32;
            let mut z = Vec::new();
            for row in 0..TILES {
                for col in 0..TILES {
                    let p = [
                        -TILE_EXTENT + (col as f32 + 0.5) * step,
                        TILE_EXTENT - (row as f32 + 0.5) * step,
                    ];
                    z.extend(axes.lift(p));
                }
            }
            grid(
                &snapshot.decoder.decode_many(&z),
                snapshot.decoder.width,
                snapshot.decoder.height,
                TILES,
            )
        });
        tex.id()
    });
    let response = plot.show(ui, |pu| {
        if let Some(id) = tiles {
            let side = 2.0 * TILE_EXTENT;
            pu.image(
                PlotImage::new(
                    "decoded tiles",
                    id,
                    PlotPoint::new(0.0, 0.0),
                    Vec2::splat(side),
                )
                .tint(Color32::from_white_alpha(150)),
            );
        }
        pu.pointer_coordinate()
    });
    let transform = response.transform;
    view.last_transform = Some(transform);
    let painter = ui.painter_at(*transform.frame());
    let scale = transform.dpos_dvalue_x() as f32;

    draw_snapshot(&painter, &transform, &snapshot, &axes, &state.settings);
    // Unit circle and temperature circle, in the theme's strong text colour.
    let ink = ui.visuals().strong_text_color();
    let origin = to_screen(&transform, [0.0, 0.0]);
    painter.add(Shape::circle_stroke(
        origin,
        scale,
        Stroke::new(1.5, Color32::from_gray(30)),
    ));
    let t = state.settings.temperature;
    if t > 0.0 {
        let points: Vec<Pos2> = (0..=96)
            .map(|k| {
                let a = std::f32::consts::TAU * k as f32 / 96.0;
                origin + Vec2::new(a.cos(), a.sin()) * t * scale
            })
            .collect();
        painter.extend(Shape::dashed_line(
            &points,
            Stroke::new(1.5, Color32::from_rgb(230, 140, 0)),
            6.0,
            4.0,
        ));
    }
    // Pins, path and handle.
    let pins: Vec<Pos2> = state
        .pins
        .iter()
        .filter_map(|e| state.endpoint_z(e))
        .map(|z| to_screen(&transform, axes.project(&z)))
        .collect();
    if pins.len() >= 2 && !state.settings.four_corners {
        painter.line_segment([pins[0], pins[1]], Stroke::new(2.0, ink));
    }
    for (k, p) in pins.iter().enumerate() {
        painter.circle(*p, 6.0, Color32::WHITE, Stroke::new(2.0, Color32::BLACK));
        painter.text(
            *p + Vec2::new(8.0, -8.0),
            egui::Align2::LEFT_BOTTOM,
            ["A", "B", "C", "D"][k.min(3)],
            egui::FontId::proportional(14.0),
            Color32::BLACK,
        );
    }
    if let Some(h) = handle {
        painter.circle(
            to_screen(&transform, h),
            7.0,
            Color32::from_rgb(230, 140, 0),
            Stroke::new(2.0, Color32::BLACK),
        );
    }
    if let Some((z, _)) = &state.preview {
        let p = to_screen(&transform, axes.project(z));
        painter.add(Shape::circle_stroke(
            p,
            9.0,
            Stroke::new(2.0, Color32::from_rgb(230, 140, 0)),
        ));
    }

    // Interaction.
    let r = &response.response;
    if pre_flow {
        r.clone().on_hover_text(
            "The pre-flow space: w = E(x) + sigma1 u, before the flow F. Switch back to the \
             prior's space to pin, drag and decode.",
        );
        return;
    }
    let Some(coord) = response.inner else { return };
    let p = [coord.x as f32, coord.y as f32];
    if r.drag_started() && near_handle {
        view.dragging_handle = true;
    }
    if view.dragging_handle {
        if r.dragged() && pins.len() >= 2 {
            let (a, b) = (pins[0], pins[1]);
            let pointer = to_screen(&transform, p);
            let ab = b - a;
            let t = ((pointer - a).dot(ab) / ab.length_sq().max(1e-6)).clamp(0.0, 1.0);
            state.set_handle(t);
        }
        if !r.dragged() {
            view.dragging_handle = false;
        }
        return;
    }
    if shift && r.dragged() {
        state.request_preview(axes.lift(p));
        return;
    }
    let hovered = r
        .hovered()
        .then(|| state.sample_at(p, 4.0 / scale))
        .flatten();
    if r.clicked() {
        state.pin(match hovered {
            Some(i) => Endpoint::Sample(i),
            None => Endpoint::Point(axes.lift(p)),
        });
    }
    if let Some(i) = hovered {
        let tex = view.hover_texture.get(ui.ctx(), (snapshot.key(), i), || {
            let img: Vec<f32> = snapshot
                .probe
                .image(i)
                .iter()
                .map(|&v| v as f32 / 255.0)
                .collect();
            grid(&[img], snapshot.probe.width, snapshot.probe.height, 1)
        });
        let label = snapshot
            .probe
            .class_names
            .get(snapshot.probe.labels[i] as usize)
            .cloned()
            .unwrap_or_default();
        let (mu, sigma) = (snapshot.mu_of(i).to_vec(), snapshot.sigma_of(i).to_vec());
        let id = tex.id();
        r.clone().on_hover_ui_at_pointer(|ui| {
            ui.image((id, Vec2::splat(84.0)));
            ui.label(format!("class {label}"));
            ui.label(format!(
                "mu = ({:.2}, {:.2})",
                mu[0],
                mu.get(1).copied().unwrap_or(0.0)
            ));
            ui.label(format!(
                "sigma = ({:.3}, {:.3})",
                sigma[0],
                sigma.get(1).copied().unwrap_or(0.0)
            ));
            ui.label("click to pin");
        });
    }
}

fn toolbar_ui(ui: &mut egui::Ui, state: &mut AppState, view: &mut PlaneView) {
    ui.horizontal_wrapped(|ui| {
        let (shape, has_flow, holes) =
            state
                .snapshot
                .as_ref()
                .map_or((PosteriorShape::Ellipse, false, None), |s| {
                    (
                        s.family.draws().posterior,
                        s.view.pre_flow.is_some(),
                        s.coverage.as_ref().map(|c| c.hole_share),
                    )
                });
        let label = match shape {
            PosteriorShape::PriorSamples => "Prior samples (no encoder)",
            PosteriorShape::Point => "Codes only (no ellipses)",
            PosteriorShape::Warped => "Warped outlines",
            PosteriorShape::Ellipse => "Ellipses",
        };
        ui.add_enabled(
            shape != PosteriorShape::Point,
            egui::Checkbox::new(&mut state.settings.show_ellipses, label),
        );
        ui.checkbox(&mut state.settings.show_manifold, "Decoded tiles");
        ui.checkbox(
            &mut state.settings.show_holes,
            match holes {
                Some(h) => format!("Prior holes ({:.0}%)", 100.0 * h),
                None => "Prior holes".to_owned(),
            },
        )
        .on_hover_text(
            "Tints where the aggregate posterior q(z) of the shown samples is below a tenth of \
             the prior p(z): regions a sampler visits but no image encodes to",
        );
        ui.checkbox(&mut state.settings.show_density, "q(z) heat map")
            .on_hover_text(
                "The aggregate posterior mean_i N(z; mu_i, sigma_i^2) of the shown samples",
            );
        if has_flow {
            ui.checkbox(&mut state.settings.pre_flow, "Pre-flow space")
                .on_hover_text(
                    "Show w = E(x) + sigma1 u before the flow F, where posteriors are circles",
                );
        }
        if ui
            .button("Reset view")
            .on_hover_text("Also: double-click the plane, or the Home key")
            .clicked()
        {
            view.reset = true;
        }
        let d = state.snapshot.as_ref().map_or(2, |s| s.latent_dim);
        if d > 2 {
            let current = state.settings.projection;
            egui::ComboBox::from_label("Projection")
                .selected_text(match current {
                    Projection::Dims(i, j) => format!("z{i} vs z{j}"),
                    Projection::Pca => "PCA".into(),
                })
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut state.settings.projection, Projection::Pca, "PCA");
                    for i in 0..d {
                        for j in (i + 1)..d {
                            ui.selectable_value(
                                &mut state.settings.projection,
                                Projection::Dims(i, j),
                                format!("z{i} vs z{j}"),
                            );
                        }
                    }
                });
        }
        let frames = state.timeline.len();
        if frames > 1 {
            let mut pos = state.timeline_pos.unwrap_or(frames - 1);
            let step = state.timeline[pos.min(frames - 1)].step;
            let slider = egui::Slider::new(&mut pos, 0..=frames - 1)
                .show_value(false)
                .text(format!("Timeline (step {step})"));
            if ui.add(slider).changed() {
                state.timeline_pos = (pos + 1 < frames).then_some(pos);
            }
            if state.timeline_pos.is_some() && ui.button("Live").clicked() {
                state.timeline_pos = None;
            }
        }
    });
    // Legend.
    if let Some(s) = state.snapshot.as_ref() {
        ui.horizontal_wrapped(|ui| {
            for (label, name) in s.probe.class_names.iter().enumerate() {
                ui.label(
                    egui::RichText::new(name)
                        .color(class_color32(label as u8, 255))
                        .strong(),
                );
            }
            ui.colored_label(ui.visuals().strong_text_color(), "unit circle");
            ui.colored_label(
                Color32::from_rgb(230, 140, 0),
                format!("- - T = {:.2}", state.settings.temperature),
            );
        });
    }
}
