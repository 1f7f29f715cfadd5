//! The latent plane: every probe posterior as a translucent ellipse (or a point), the unit
//! circle and the temperature circle, decoded tiles underneath, pinned ends with a draggable
//! handle between them. Hover shows a sample, click pins it, shift-drag decodes under the mouse.
//! What is drawn comes from the plane's [`Scene`]; this file only paints it with egui.

use std::sync::Arc;

use egui::{Color32, Pos2, Shape, Stroke, Vec2};
use egui_plot::{Plot, PlotPoint, PlotTransform};

use super::class_color32;
use crate::images::{CachedTexture, grid};
use crate::state::{AppState, Endpoint};
use latent_atlas_core::explore::projection::Projection;
use latent_atlas_core::train::{PosteriorShape, Snapshot};
use latent_atlas_view::scene::{Census, Marks, Radius, Rgba, Scene, SceneOptions};

/// Plots that share zoom and pan (the comparison's two planes).
const PLANE_LINK: &str = "latent_plane_link";

fn color(c: Rgba) -> Color32 {
    Color32::from_rgba_unmultiplied(c[0], c[1], c[2], c[3])
}

fn to_screen(t: &PlotTransform, p: [f32; 2]) -> Pos2 {
    t.position_from_point(&PlotPoint::new(p[0] as f64, p[1] as f64))
}

/// One plane's scene, kept while its snapshot and the view settings stay the same, with the
/// textures and the disc mesh made from it.
pub struct SceneCache {
    key: Option<(u64, SceneOptions)>,
    scene: Option<Arc<Scene>>,
    /// Bumped with each new scene: what the textures and the mesh were made from.
    generation: u64,
    fields: Vec<CachedTexture<u64>>,
    tiles: CachedTexture<u64>,
    mesh: Option<(MeshKey, Arc<egui::Mesh>)>,
    /// What the last frame painted.
    painted: Census,
}

impl SceneCache {
    fn new() -> Self {
        Self {
            key: None,
            scene: None,
            generation: 0,
            fields: Vec::new(),
            tiles: CachedTexture::new("decoded tiles"),
            mesh: None,
            painted: Census::default(),
        }
    }

    /// The scene of `snapshot` under the state's view settings, rebuilt when either changed.
    fn scene(&mut self, state: &AppState, snapshot: &Snapshot) -> Arc<Scene> {
        let key = (snapshot.key(), state.scene_options());
        if self.key.as_ref() != Some(&key) || self.scene.is_none() {
            self.scene = Some(Arc::new(state.plane_scene(snapshot)));
            self.key = Some(key);
            self.generation += 1;
        }
        self.scene.clone().expect("set above")
    }

    /// The scene painted last, if any.
    pub fn last(&self) -> Option<&Scene> {
        self.scene.as_deref()
    }

    /// How many of each primitive the last frame painted.
    pub fn painted(&self) -> Census {
        self.painted
    }
}

/// What a disc mesh was built from.
#[derive(Clone, Debug, PartialEq)]
struct MeshKey {
    generation: u64,
    frame: egui::Rect,
    bounds: [f64; 4],
}

/// Paints a scene and the user's marks over a plot's transform.
fn paint_scene(
    ui: &egui::Ui,
    painter: &egui::Painter,
    transform: &PlotTransform,
    scene: &Scene,
    marks: &Marks,
    cache: &mut SceneCache,
) {
    let scale = transform.dpos_dvalue_x() as f32;
    let mut census = Census::default();
    let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
    let square = |e: f32| {
        egui::Rect::from_two_pos(to_screen(transform, [-e, e]), to_screen(transform, [e, -e]))
    };
    if let Some(t) = &scene.tiles {
        let tex = cache.tiles.get(ui.ctx(), cache.generation, || {
            grid(&t.images, t.width, t.height, t.n)
        });
        painter.image(
            tex.id(),
            square(t.extent),
            uv,
            Color32::from_white_alpha(150),
        );
        census.tiles = t.images.len();
    }
    while cache.fields.len() < scene.fields.len() {
        cache.fields.push(CachedTexture::linear("plane field"));
    }
    for (field, tex) in scene.fields.iter().zip(&mut cache.fields) {
        let tex = tex.get(ui.ctx(), cache.generation, || {
            egui::ColorImage::new(
                [field.side, field.side],
                field.pixels.iter().map(|&c| color(c)).collect(),
            )
        });
        painter.image(tex.id(), square(field.extent), uv, Color32::WHITE);
        census.fields += 1;
    }
    if scene.prior_contours {
        // The prior's density, for codes to be judged against: its 1, 2 and 3 sigma contours.
        let origin = to_screen(transform, [0.0, 0.0]);
        let [r, g, b, _] = latent_atlas_view::scene::PRIOR_BLUE;
        for (k, alpha) in [(1.0, 60u8), (2.0, 40), (3.0, 25)] {
            painter.add(Shape::circle_filled(
                origin,
                k * scale,
                Color32::from_rgba_unmultiplied(r, g, b, alpha / 3),
            ));
            painter.add(Shape::circle_stroke(
                origin,
                k * scale,
                Stroke::new(1.0, Color32::from_rgba_unmultiplied(r, g, b, alpha)),
            ));
            census.prior_contours += 1;
        }
    }
    // Every disc and ellipse goes into one mesh: 10,000 posteriors stay one shape for egui to
    // pass through, instead of 10,000 shapes to tessellate each frame. The mesh is kept while
    // the scene and the view stay the same.
    let key = MeshKey {
        generation: cache.generation,
        frame: *transform.frame(),
        bounds: [
            transform.bounds().min()[0],
            transform.bounds().min()[1],
            transform.bounds().max()[0],
            transform.bounds().max()[1],
        ],
    };
    let mesh = match &cache.mesh {
        Some((k, mesh)) if *k == key => mesh.clone(),
        _ => {
            let mut discs = Discs::new(scene.discs.len(), painter.clip_rect());
            for d in &scene.discs {
                let radii = match d.radius {
                    Radius::Screen(px) => Vec2::splat(px),
                    Radius::Latent([a, b]) => Vec2::new((a * scale).max(1.0), (b * scale).max(1.0)),
                };
                discs.add(to_screen(transform, d.centre), radii, color(d.color));
            }
            let mesh = Arc::new(discs.mesh);
            cache.mesh = Some((key, mesh.clone()));
            mesh
        }
    };
    painter.add(Shape::Mesh(mesh));
    census.discs = scene.discs.len();
    for o in &scene.outlines {
        let points: Vec<Pos2> = o.points.iter().map(|p| to_screen(transform, *p)).collect();
        painter.add(Shape::closed_line(points, Stroke::new(1.0, color(o.color))));
        census.outlines += 1;
    }
    for p in &scene.prior_points {
        painter.add(Shape::circle_stroke(
            to_screen(transform, *p),
            2.0,
            Stroke::new(1.0, color(latent_atlas_view::scene::PRIOR_GREY)),
        ));
        census.prior_points += 1;
    }
    for (m, label) in &scene.class_means {
        painter.circle(
            to_screen(transform, *m),
            7.0,
            class_color32(*label, 255),
            Stroke::new(2.0, Color32::BLACK),
        );
        census.class_means += 1;
    }
    // Unit circle and temperature circle.
    let origin = to_screen(transform, [0.0, 0.0]);
    painter.add(Shape::circle_stroke(
        origin,
        scale,
        Stroke::new(1.5, Color32::from_gray(30)),
    ));
    census.circles += 1;
    if let Some(t) = marks.temperature {
        let points: Vec<Pos2> = (0..=96)
            .map(|k| {
                let a = std::f32::consts::TAU * k as f32 / 96.0;
                origin + Vec2::new(a.cos(), a.sin()) * t * scale
            })
            .collect();
        painter.extend(Shape::dashed_line(
            &points,
            Stroke::new(1.5, color(latent_atlas_view::scene::ORANGE)),
            6.0,
            4.0,
        ));
    }
    let ink = ui.visuals().strong_text_color();
    // Importance draws, under the pins.
    let heaviest = marks.heaviest_draw();
    for &(p, w) in &marks.draws {
        let (radius, alpha) = Marks::draw_style(w, heaviest);
        let [r, g, b, _] = latent_atlas_view::scene::DRAW_PURPLE;
        painter.circle(
            to_screen(transform, p),
            radius,
            Color32::from_rgba_unmultiplied(r, g, b, (alpha * 255.0) as u8),
            Stroke::new(1.5, ink),
        );
    }
    // Pins, path, handle and preview.
    if let Some([a, b]) = marks.path {
        painter.line_segment(
            [to_screen(transform, a), to_screen(transform, b)],
            Stroke::new(2.0, ink),
        );
    }
    for (k, p) in marks.pins.iter().enumerate() {
        let p = to_screen(transform, *p);
        painter.circle(p, 6.0, Color32::WHITE, Stroke::new(2.0, Color32::BLACK));
        painter.text(
            p + Vec2::new(8.0, -8.0),
            egui::Align2::LEFT_BOTTOM,
            ["A", "B", "C", "D"][k.min(3)],
            egui::FontId::proportional(14.0),
            Color32::BLACK,
        );
    }
    if let Some(h) = marks.handle {
        painter.circle(
            to_screen(transform, h),
            7.0,
            color(latent_atlas_view::scene::ORANGE),
            Stroke::new(2.0, Color32::BLACK),
        );
    }
    if let Some(p) = marks.preview {
        painter.add(Shape::circle_stroke(
            to_screen(transform, p),
            9.0,
            Stroke::new(2.0, color(latent_atlas_view::scene::ORANGE)),
        ));
    }
    cache.painted = census;
}

/// A plane's title: the family, the step and its latest losses.
fn run_title(
    family: latent_atlas_core::train::ModelKind,
    snapshot: Option<&Snapshot>,
    last: Option<&latent_atlas_core::train::StepMetrics>,
) -> String {
    match (snapshot, last) {
        (Some(s), Some(m)) => format!(
            "{} at step {}: reconstruction {:.1}, KL {:.2}{}{}",
            family.label(),
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
        _ => format!("{}: building the model…", family.label()),
    }
}

/// The comparison run's plane, read-only, with the same view settings and linked zoom.
pub fn compare_ui(ui: &mut egui::Ui, state: &AppState, view: &mut PlaneView) {
    let Some(compare) = &state.compare else {
        return;
    };
    ui.label(
        egui::RichText::new(run_title(
            compare.family(),
            compare.snapshot.as_ref(),
            compare.last_step.as_ref(),
        ))
        .strong(),
    );
    if let Some(e) = &compare.last_error {
        ui.colored_label(Color32::from_rgb(200, 40, 40), e);
    }
    let Some(snapshot) = &compare.snapshot else {
        return;
    };
    let scene = view.compare.scene(state, snapshot);
    let response = plane_plot("compare_plane", ui, scene.extent).show(ui, |_| {});
    let transform = response.transform;
    let painter = ui.painter_at(*transform.frame());
    paint_scene(
        ui,
        &painter,
        &transform,
        &scene,
        &Marks::default(),
        &mut view.compare,
    );
}

/// The plot both planes use: square units, linked zoom and pan, sized to the space given.
/// The plane's plot, first showing (and on reset) the square of half-width `extent` (at least
/// the prior's bulk): codes drawn far out, like the CVAE's spread classes, are in view.
fn plane_plot(id: &'static str, ui: &egui::Ui, extent: f32) -> Plot<'static> {
    let size = ui.available_size();
    let e = (extent as f64).max(3.5);
    Plot::new(id)
        .data_aspect(1.0)
        .link_axis(egui::Id::unique(PLANE_LINK), true)
        .default_x_bounds(-e, e)
        .default_y_bounds(-e, e)
        .width(size.x.max(50.0))
        .height(size.y.max(50.0))
        .show_x(false)
        .show_y(false)
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
    /// The main run's scene.
    pub main: SceneCache,
    /// The comparison run's scene.
    pub compare: SceneCache,
}

impl Default for PlaneView {
    fn default() -> Self {
        Self {
            reset: false,
            last_transform: None,
            dragging_handle: false,
            hover_texture: CachedTexture::new("hovered sample"),
            main: SceneCache::new(),
            compare: SceneCache::new(),
        }
    }
}

/// Filled axis-aligned ellipses gathered into one triangle mesh: a fan each, with more
/// segments for larger ones; ellipses wholly outside the visible rectangle are left out.
struct Discs {
    mesh: egui::Mesh,
    visible: egui::Rect,
    /// Unit-circle points for 8, 12 and 24 segments.
    circles: [Vec<Vec2>; 3],
}

impl Discs {
    /// Room for `n` discs.
    fn new(n: usize, visible: egui::Rect) -> Self {
        let mut mesh = egui::Mesh::default();
        mesh.reserve_vertices(n * 9);
        mesh.reserve_triangles(n * 8);
        let circle = |segments: usize| {
            (0..segments)
                .map(|k| Vec2::angled(std::f32::consts::TAU * k as f32 / segments as f32))
                .collect()
        };
        Self {
            mesh,
            visible,
            circles: [circle(8), circle(12), circle(24)],
        }
    }

    fn add(&mut self, centre: Pos2, radii: Vec2, color: Color32) {
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

/// Draws the plane toolbar and the plane, and beside it the comparison run's plane when there
/// is one: the toolbar spans both, each plane has a title line and an equal column.
pub fn plane_ui(ui: &mut egui::Ui, state: &mut AppState, view: &mut PlaneView) {
    toolbar_ui(ui, state, view);
    if state.compare.is_some() {
        ui.columns(2, |cols| {
            let shown = state.shown_snapshot();
            let title = run_title(
                shown.map_or(state.settings.config.model, |s| s.family),
                shown,
                state.main.last_step.as_ref(),
            );
            cols[0].label(egui::RichText::new(title).strong());
            main_plane_ui(&mut cols[0], state, view);
            compare_ui(&mut cols[1], state, view);
        });
    } else {
        main_plane_ui(ui, state, view);
    }
}

/// The main run's plane, with its interaction.
fn main_plane_ui(ui: &mut egui::Ui, state: &mut AppState, view: &mut PlaneView) {
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
    let scene = view.main.scene(state, &snapshot);
    let marks = state.plane_marks(&scene);
    let mut plot = plane_plot("latent_plane", ui, scene.extent)
        .allow_drag(!shift && !near_handle && !view.dragging_handle)
        .allow_double_click_reset(true);
    if view.reset {
        plot = plot.reset();
        view.reset = false;
    }
    let response = plot.show(ui, |pu| pu.pointer_coordinate());
    let transform = response.transform;
    view.last_transform = Some(transform);
    let painter = ui.painter_at(*transform.frame());
    let scale = transform.dpos_dvalue_x() as f32;
    paint_scene(ui, &painter, &transform, &scene, &marks, &mut view.main);
    let pins: Vec<Pos2> = marks
        .pins
        .iter()
        .map(|p| to_screen(&transform, *p))
        .collect();

    // Interaction. The importance draws follow the pins unless a sample is hovered.
    state.focus_draws(None);
    let r = &response.response;
    if scene.pre_flow {
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
    if hovered.is_some() {
        state.focus_draws(hovered);
    }
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
        let draws = state
            .draws
            .as_ref()
            .filter(|d| d.probe == i && d.run == snapshot.run && state.settings.show_draws)
            .map(draws_summary);
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
            if let Some(text) = &draws {
                ui.label(text);
            }
            ui.label("click to pin");
        });
    }
}

/// The hover text on a sample's importance draws: the bound they make and how many carry it.
fn draws_summary(d: &latent_atlas_core::train::ImportanceDraws) -> String {
    format!(
        "{} draws (purple, sized by weight): log p(x) >= {:.2} nats (ELBO {:.2}); \
         effective sample size {:.1} of {}",
        d.k(),
        d.bound(),
        d.elbo(),
        d.effective_sample_size(),
        d.k()
    )
}

fn toolbar_ui(ui: &mut egui::Ui, state: &mut AppState, view: &mut PlaneView) {
    ui.horizontal_wrapped(|ui| {
        let (shape, has_flow, holes) =
            state
                .main
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
        let factors: Vec<String> = state.main.snapshot.as_ref().map_or(Vec::new(), |s| {
            s.probe.factor_info.iter().map(|f| f.name.clone()).collect()
        });
        if !factors.is_empty() {
            let current = state
                .settings
                .colour_by
                .and_then(|k| factors.get(k).cloned())
                .unwrap_or_else(|| "class".to_owned());
            egui::ComboBox::from_label("Colour by")
                .selected_text(current)
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut state.settings.colour_by, None, "class");
                    for (k, name) in factors.iter().enumerate() {
                        ui.selectable_value(&mut state.settings.colour_by, Some(k), name);
                    }
                })
                .response
                .on_hover_text(
                    "Colour each posterior by one of the data's known factors, to see which \
                     latent direction learned it",
                );
        }
        if state
            .main
            .snapshot
            .as_ref()
            .is_some_and(|s| s.family.has_importance_weights())
        {
            let k = state.draws_k();
            ui.checkbox(&mut state.settings.show_draws, "Importance draws")
                .on_hover_text(format!(
                    "Hover over an image (or pin it) to see {k} draws z_k from its posterior, \
                     each sized by its normalised weight p(x, z_k) / q(z_k|x): the draws that \
                     carry the importance-weighted bound{}",
                    if state.settings.config.hyper.iw_samples > 1 {
                        ""
                    } else {
                        " (this run trains on the ELBO, K = 1: the controls' IW draws K sets it)"
                    }
                ));
        }
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
        let d = state.main.snapshot.as_ref().map_or(2, |s| s.latent_dim);
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
        let frames = state.main.timeline.len();
        if frames > 1 {
            let mut pos = state.timeline_pos.unwrap_or(frames - 1);
            let frame = &state.main.timeline[pos.min(frames - 1)];
            let text = match frame.decoder_step == frame.step {
                true => format!("Timeline (step {})", frame.step),
                // The timeline keeps a bounded number of decoder copies.
                false => format!(
                    "Timeline (step {}; images decoded at step {})",
                    frame.step, frame.decoder_step
                ),
            };
            let slider = egui::Slider::new(&mut pos, 0..=frames - 1)
                .show_value(false)
                .text(text);
            if ui.add(slider).changed() {
                state.timeline_pos = (pos + 1 < frames).then_some(pos);
            }
            if state.timeline_pos.is_some() && ui.button("Live").clicked() {
                state.timeline_pos = None;
            }
        }
    });
    // Legend.
    if let Some(s) = state.main.snapshot.as_ref() {
        ui.horizontal_wrapped(|ui| {
            for (name, [r, g, b, _]) in
                latent_atlas_view::scene::legend(&s.probe, state.settings.colour_by)
            {
                ui.label(
                    egui::RichText::new(name)
                        .color(Color32::from_rgb(r, g, b))
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use burn::tensor::Device;

    use super::*;
    use crate::exporter;
    use crate::state::Settings;
    use latent_atlas_core::data::builtin::Builtin;
    use latent_atlas_core::train::{ModelKind, TrainConfig, Trainer};

    /// Runs one frame of the plane in a headless egui context.
    fn paint(state: &mut AppState, view: &mut PlaneView) {
        let ctx = egui::Context::default();
        let input = egui::RawInput {
            screen_rect: Some(egui::Rect::from_min_size(
                egui::Pos2::ZERO,
                egui::vec2(900.0, 700.0),
            )),
            ..Default::default()
        };
        let _ = ctx.run_ui(input, |ui| plane_ui(ui, state, view));
    }

    /// The share of `points` (plane coordinates) with the prior samples' grey within 3 pixels
    /// of where an export of `size` pixels and half-width `extent` puts them.
    fn grey_near(image: &image::RgbaImage, points: &[[f32; 2]], extent: f32, size: u32) -> f32 {
        let (margin, plot) = (40.0, size as f32 - 80.0);
        let found = points
            .iter()
            .filter(|p| {
                let x = margin + (p[0] + extent) / (2.0 * extent) * plot;
                let y = margin + (extent - p[1]) / (2.0 * extent) * plot;
                (-3..=3).any(|dy| {
                    (-3..=3).any(|dx| {
                        let (px, py) = (x as i32 + dx, y as i32 + dy);
                        px >= 0
                            && py >= 0
                            && image
                                .get_pixel_checked(px as u32, py as u32)
                                .is_some_and(|q| {
                                    let [r, g, b, _] = q.0;
                                    r == g && g == b && (140..=160).contains(&r)
                                })
                    })
                })
            })
            .count();
        found as f32 / points.len().max(1) as f32
    }

    #[test]
    fn the_exported_plane_paints_what_the_window_paints_for_every_family_and_projection() {
        let data = Arc::new(Builtin::Mnist.load(0).unwrap());
        let mut cases: Vec<(ModelKind, usize, Projection)> = ModelKind::ALL
            .iter()
            .map(|&k| (k, 2, Projection::Dims(0, 1)))
            .collect();
        cases.push((ModelKind::Vae, 4, Projection::Pca));
        cases.push((ModelKind::FVae, 3, Projection::Dims(1, 2)));
        for (kind, d, projection) in cases {
            let config = TrainConfig {
                model: kind,
                latent_dim: d,
                probe_size: 300,
                hidden: vec![64],
                ..TrainConfig::default()
            };
            let trainer = Trainer::new(config.clone(), data.clone(), Device::flex()).unwrap();
            let mut state = AppState::new(Settings {
                config,
                projection,
                show_density: true,
                show_manifold: true,
                ..Settings::default()
            });
            let snapshot = trainer.snapshot(true);
            state.main.snapshot = Some(snapshot.clone());
            state.pin(Endpoint::Sample(0));
            state.pin(Endpoint::Sample(1));
            let mut view = PlaneView::default();
            paint(&mut state, &mut view);
            let window = view.main.last().expect("the window built a scene").clone();
            let (_, exported) = exporter::plane_image(&state, &snapshot, 600);
            let case = format!("{kind:?} d={d} {projection:?}");
            assert_eq!(
                window,
                state.plane_scene(&snapshot),
                "{case}: scenes differ"
            );
            assert_eq!(view.main.painted(), window.census(), "{case}: window");
            assert_eq!(exported, window.census(), "{case}: export");
            let c = window.census();
            assert!(c.discs + c.outlines == 300, "{case}: {c:?}");
            assert_eq!(
                c.tiles,
                latent_atlas_view::scene::TILES * latent_atlas_view::scene::TILES,
                "{case}"
            );
            let draws = kind.draws();
            assert_eq!(c.fields > 0, draws.encoder, "{case}: fields {c:?}");
            assert_eq!(c.prior_contours > 0, draws.adversarial, "{case}");
            assert_eq!(c.class_means > 0, draws.class_means, "{case}");
            assert_eq!(c.outlines > 0, draws.pre_flow, "{case}");
            let marks = state.plane_marks(&window);
            assert_eq!(marks.pins.len(), 2, "{case}");
            // The prior samples are in the PNG where the scene puts them (the decoded tiles,
            // grey images, are turned off for this).
            state.settings.show_manifold = false;
            let scene = state.plane_scene(&snapshot);
            let prior = scene.prior_samples();
            assert_eq!(
                !prior.is_empty(),
                draws.prior_samples || !draws.encoder,
                "{case}: prior samples in the scene"
            );
            if !prior.is_empty() {
                let image = exporter::plane_image(&state, &snapshot, 600).0;
                let share = grey_near(&image, &prior, scene.extent, 600);
                assert!(
                    share > 0.7,
                    "{case}: {share} of the prior samples seen in the PNG"
                );
            }
        }
    }
}
