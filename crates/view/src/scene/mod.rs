//! The latent plane as plain data: everything the window and an exported image draw, built once
//! from a snapshot and the view settings, in latent coordinates. Two thin painters turn it into
//! pixels: egui's in `app/panels/plane.rs` for the window, the CPU canvas in `export/views.rs`
//! for PNG and GIF files. Whatever one shows, the other shows.

pub mod samples;

use latent_atlas_core::explore::coverage::{self, Coverage, HOLE_RATIO};
use latent_atlas_core::explore::geometry::warped_outline;
use latent_atlas_core::explore::projection::{PlaneAxes, Projection};
use latent_atlas_core::train::{PosteriorShape, Snapshot};

/// A colour, straight (not premultiplied) RGBA.
pub type Rgba = [u8; 4];

/// Ten distinct class colours (Tableau 10), indexed by label.
pub const CLASS_COLORS: [Rgba; 10] = [
    [31, 119, 180, 255],
    [255, 127, 14, 255],
    [44, 160, 44, 255],
    [214, 39, 40, 255],
    [148, 103, 189, 255],
    [140, 86, 75, 255],
    [227, 119, 194, 255],
    [127, 127, 127, 255],
    [188, 189, 34, 255],
    [23, 190, 207, 255],
];

/// The colour of class `label`, opaque.
pub fn class_color(label: u8) -> Rgba {
    CLASS_COLORS[label as usize % CLASS_COLORS.len()]
}

/// The plane's legend: class names and colours, or (with `colour_by`, a factor the probe set
/// carries) a few of that factor's values and their colours.
pub fn legend(
    probe: &latent_atlas_core::train::snapshot::Probe,
    colour_by: Option<usize>,
) -> Vec<(String, Rgba)> {
    Paint::new(probe, colour_by).legend(&probe.class_names)
}

/// How posteriors are coloured: by class, or by one known factor of the data.
struct Paint<'a> {
    /// The factor: its index, description and every probe sample's values.
    factor: Option<(usize, &'a latent_atlas_core::data::Factor, &'a [f32])>,
    /// Factor values per sample (the row length of the table).
    stride: usize,
    /// The factor's range over the probe set (linear factors).
    range: (f32, f32),
}

impl<'a> Paint<'a> {
    fn new(probe: &'a latent_atlas_core::train::snapshot::Probe, colour_by: Option<usize>) -> Self {
        let k = probe.factor_info.len();
        let factor = colour_by
            .filter(|&j| j < k && probe.factors.len() >= probe.len() * k)
            .map(|j| (j, &probe.factor_info[j], probe.factors.as_slice()));
        let range = factor.map_or((0.0, 1.0), |(j, _, values)| {
            (0..probe.len())
                .map(|i| values[i * k + j])
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
                    (lo.min(v), hi.max(v))
                })
        });
        Self {
            factor,
            stride: k,
            range,
        }
    }

    /// The colour of probe sample `i` of class `label`.
    fn color(&self, i: usize, label: u8) -> Rgba {
        match self.factor {
            None => class_color(label),
            Some((j, f, values)) => self.value_color(f, values[i * self.stride + j]),
        }
    }

    fn value_color(&self, f: &latent_atlas_core::data::Factor, v: f32) -> Rgba {
        use latent_atlas_core::data::FactorKind;
        match f.kind {
            FactorKind::Categorical(_) => class_color(v.round().max(0.0) as u8),
            FactorKind::Circular(period) => {
                let byte = |c: f32| (c * 255.0).round() as u8;
                let [r, g, b] = latent_atlas_core::colour::hue_rgb(v / period);
                [byte(r), byte(g), byte(b), 255]
            }
            FactorKind::Linear => {
                let (lo, hi) = self.range;
                viridis(((v - lo) / (hi - lo).max(1e-12)).clamp(0.0, 1.0))
            }
        }
    }

    /// Legend entries: class names, or a few values of the factor with their colours.
    fn legend(&self, class_names: &[String]) -> Vec<(String, Rgba)> {
        use latent_atlas_core::data::FactorKind;
        let Some((_, f, _)) = self.factor else {
            return class_names
                .iter()
                .enumerate()
                .map(|(label, name)| (name.clone(), class_color(label as u8)))
                .collect();
        };
        match f.kind {
            FactorKind::Categorical(c) => (0..c)
                .map(|v| {
                    let name = class_names.get(v).cloned().unwrap_or(v.to_string());
                    (format!("{}: {name}", f.name), class_color(v as u8))
                })
                .collect(),
            FactorKind::Circular(period) => (0..6)
                .map(|s| {
                    let v = period * s as f32 / 6.0;
                    (format!("{} {v:.2}", f.name), self.value_color(f, v))
                })
                .collect(),
            FactorKind::Linear => (0..5)
                .map(|s| {
                    let (lo, hi) = self.range;
                    let v = lo + (hi - lo) * s as f32 / 4.0;
                    (format!("{} {v:.2}", f.name), self.value_color(f, v))
                })
                .collect(),
        }
    }
}

/// The viridis colour map at `t` in [0, 1] (five stops, linearly between them).
fn viridis(t: f32) -> Rgba {
    const STOPS: [[f32; 3]; 5] = [
        [68.0, 1.0, 84.0],
        [59.0, 82.0, 139.0],
        [33.0, 145.0, 140.0],
        [94.0, 201.0, 98.0],
        [253.0, 231.0, 37.0],
    ];
    let x = t.clamp(0.0, 1.0) * 4.0;
    let i = (x as usize).min(3);
    let f = x - i as f32;
    let c = |k: usize| (STOPS[i][k] * (1.0 - f) + STOPS[i + 1][k] * f).round() as u8;
    [c(0), c(1), c(2), 255]
}

fn with_alpha([r, g, b, _]: Rgba, a: u8) -> Rgba {
    [r, g, b, a]
}

/// Grey of the prior samples drawn in the plane.
pub const PRIOR_GREY: Rgba = [150, 150, 150, 255];
/// The temperature circle, the drag handle and the preview ring.
pub const ORANGE: Rgba = [230, 140, 0, 255];
/// The prior's density contours (adversarial families).
pub const PRIOR_BLUE: Rgba = [90, 140, 220, 255];
/// Tint of the prior's holes.
pub const HOLE: Rgba = [255, 170, 60, 255];
/// Importance draws.
pub const DRAW_PURPLE: Rgba = [190, 60, 255, 255];
/// Pixels per side of a rasterised field.
pub const FIELD_PIXELS: usize = 192;
/// Half-width of the decoded tile grid under the plane.
pub const TILE_EXTENT: f32 = 3.0;
/// Tiles per side.
pub const TILES: usize = 15;

/// How large a disc is: fixed on screen (a point), or in latent units (a posterior's axes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Radius {
    /// Pixels.
    Screen(f32),
    /// Semi-axes in latent units (at least a pixel when drawn).
    Latent([f32; 2]),
}

/// A filled axis-aligned ellipse.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Disc {
    /// Centre, in plane coordinates.
    pub centre: [f32; 2],
    /// Size.
    pub radius: Radius,
    /// Fill.
    pub color: Rgba,
}

/// A closed outline (the f-VAE's warped posteriors).
#[derive(Clone, Debug, PartialEq)]
pub struct Outline {
    /// Points in plane coordinates.
    pub points: Vec<[f32; 2]>,
    /// Stroke.
    pub color: Rgba,
}

/// A smooth field over `[-extent, extent]^2`, rasterised: `FIELD_PIXELS^2` colours, row 0 at
/// the top (`y = extent`). Painters stretch it over the square with bilinear filtering.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    /// What it shows, for legends.
    pub name: &'static str,
    /// Half-width of the square it covers.
    pub extent: f32,
    /// Pixels per side.
    pub side: usize,
    /// Colours, row-major from the top.
    pub pixels: Vec<Rgba>,
}

/// Decoded images on a grid under the plane.
#[derive(Clone, Debug, PartialEq)]
pub struct Tiles {
    /// Half-width of the square they cover.
    pub extent: f32,
    /// Tiles per side.
    pub n: usize,
    /// Intensities in `[0, 1]`, row-major from the top-left tile.
    pub images: Vec<Vec<f32>>,
    /// Image width.
    pub width: usize,
    /// Image height.
    pub height: usize,
}

/// What shapes the scene: the view settings that change what is drawn.
#[derive(Clone, Debug, PartialEq)]
pub struct SceneOptions {
    /// How a latent space above two dimensions is shown.
    pub projection: Projection,
    /// Posteriors as ellipses or outlines (otherwise as points).
    pub ellipses: bool,
    /// Tint the prior's holes.
    pub holes: bool,
    /// The aggregate posterior q(z) as a heat map.
    pub density: bool,
    /// The f-VAE's pre-flow space instead of the prior's space.
    pub pre_flow: bool,
    /// Decoded tiles under the plane.
    pub tiles: bool,
    /// Colour each posterior by this known factor of the dataset (its index) instead of by
    /// class; ignored when the data have no such factor.
    pub colour_by: Option<usize>,
}

impl Default for SceneOptions {
    /// The command line's view: dims 0 and 1, ellipses, the prior's holes.
    fn default() -> Self {
        Self {
            projection: Projection::default(),
            ellipses: true,
            holes: true,
            density: false,
            pre_flow: false,
            tiles: false,
            colour_by: None,
        }
    }
}

/// What changes with every gesture, drawn over the scene without rebuilding it: the
/// temperature circle, pins, the path between the first two, the handle and the preview point,
/// in plane coordinates.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Marks {
    /// The prior temperature's circle, if drawn.
    pub temperature: Option<f32>,
    /// Pinned ends, labelled A, B, C, D.
    pub pins: Vec<[f32; 2]>,
    /// The straight segment between the first two pins.
    pub path: Option<[[f32; 2]; 2]>,
    /// The interpolation handle.
    pub handle: Option<[f32; 2]>,
    /// The point decoded under the mouse.
    pub preview: Option<[f32; 2]>,
    /// A probe image's importance draws with their normalised weights (summing to 1).
    pub draws: Vec<([f32; 2], f32)>,
}

impl Marks {
    /// Projects latent points onto the scene's plane; a temperature of 0 draws no circle.
    pub fn new(
        axes: &PlaneAxes,
        temperature: f32,
        pins: &[Vec<f32>],
        path: bool,
        handle: Option<&[f32]>,
        preview: Option<&[f32]>,
    ) -> Self {
        let pins: Vec<[f32; 2]> = pins.iter().map(|z| axes.project(z)).collect();
        Self {
            temperature: (temperature > 0.0).then_some(temperature),
            path: (path && pins.len() >= 2).then(|| [pins[0], pins[1]]),
            pins,
            handle: handle.map(|z| axes.project(z)),
            preview: preview.map(|z| axes.project(z)),
            draws: Vec::new(),
        }
    }

    /// Adds importance draws (latent points and their normalised weights).
    pub fn with_draws(
        mut self,
        axes: &PlaneAxes,
        draws: Option<&(Vec<Vec<f32>>, Vec<f32>)>,
    ) -> Self {
        if let Some((z, w)) = draws {
            self.draws = z
                .iter()
                .zip(w)
                .map(|(z, &w)| (axes.project(z), w))
                .collect();
        }
        self
    }

    /// A draw's disc radius in pixels and opacity from its normalised weight: the area grows
    /// with the weight, and the heaviest draw is opaque.
    pub fn draw_style(weight: f32, heaviest: f32) -> (f32, f32) {
        let radius = 3.5 + 14.0 * weight.clamp(0.0, 1.0).sqrt();
        let alpha = 0.3 + 0.7 * (weight / heaviest.max(f32::MIN_POSITIVE)).clamp(0.0, 1.0);
        (radius, alpha)
    }

    /// The heaviest draw's weight (0 without draws).
    pub fn heaviest_draw(&self) -> f32 {
        self.draws.iter().map(|d| d.1).fold(0.0, f32::max)
    }
}

/// Everything the latent plane draws, bottom to top.
#[derive(Clone, Debug, PartialEq)]
pub struct Scene {
    /// A title for exports: family, projection, step, count.
    pub title: String,
    /// The plane's axes in the latent space.
    pub axes: PlaneAxes,
    /// Whether this is the f-VAE's pre-flow space.
    pub pre_flow: bool,
    /// Decoded tiles, lowest.
    pub tiles: Option<Tiles>,
    /// The density heat map and the hole tint, in that order.
    pub fields: Vec<Field>,
    /// The prior's 1, 2 and 3 sigma contours (the adversarial families judge codes by them).
    pub prior_contours: bool,
    /// Posteriors as discs (ellipses and points), or the GAN's prior samples.
    pub discs: Vec<Disc>,
    /// Whether the discs are prior samples (a family without an encoder).
    pub discs_are_prior_samples: bool,
    /// Warped posterior outlines.
    pub outlines: Vec<Outline>,
    /// Fixed prior samples drawn as rings beside the codes (ALI).
    pub prior_points: Vec<[f32; 2]>,
    /// Class means with their class.
    pub class_means: Vec<([f32; 2], u8)>,
    /// Legend entries: class names and colours.
    pub legend: Vec<(String, Rgba)>,
    /// A square half-width that shows the scene: the prior's bulk and 99% of the points.
    pub extent: f32,
    /// The share of the prior in holes, when known.
    pub hole_share: Option<f32>,
}

impl Scene {
    /// Builds the scene of `snapshot` under `options`.
    pub fn build(snapshot: &Snapshot, options: &SceneOptions) -> Self {
        let d = snapshot.latent_dim;
        let axes = PlaneAxes::new(options.projection, &snapshot.mu, d);
        let draws = snapshot.family.draws();
        let pre_flow = options.pre_flow && snapshot.view.pre_flow.is_some();
        let shape = draws.posterior;
        let n = snapshot.probe.len();
        let labels = &snapshot.probe.labels;
        let ellipse_alpha = 55;
        let point_alpha = 160;
        let mut discs = Vec::with_capacity(n);
        let mut outlines = Vec::new();
        let dims = match options.projection {
            Projection::Dims(i, j) if i < d && j < d => Some([i, j]),
            Projection::Pca if d <= 2 => Some([0, 1.min(d.saturating_sub(1))]),
            _ => None,
        };
        let paint = Paint::new(&snapshot.probe, options.colour_by);
        for i in 0..n {
            let color = paint.color(i, labels[i]);
            if pre_flow && let Some(pre) = &snapshot.view.pre_flow {
                // Circles of radius sigma1 around E(x).
                let radius = if options.ellipses {
                    let s = snapshot.sigma_of(i)[0];
                    Radius::Latent([s, s])
                } else {
                    Radius::Screen(2.0)
                };
                discs.push(Disc {
                    centre: axes.project(&pre[i * d..(i + 1) * d]),
                    radius,
                    color: with_alpha(color, ellipse_alpha),
                });
                continue;
            }
            let centre = axes.project(snapshot.mu_of(i));
            let point = Disc {
                centre,
                radius: Radius::Screen(2.0),
                color: with_alpha(color, point_alpha),
            };
            match (shape, options.ellipses) {
                (PosteriorShape::PriorSamples, _) => discs.push(Disc {
                    color: PRIOR_GREY,
                    ..point
                }),
                (PosteriorShape::Point, _) | (_, false) => discs.push(point),
                (PosteriorShape::Warped, true) => {
                    match warped(snapshot, i, dims) {
                        Some(points) => outlines.push(Outline {
                            points,
                            color: with_alpha(color, 90),
                        }),
                        // No outline through a PCA projection: the centre alone.
                        None => discs.push(point),
                    }
                }
                (PosteriorShape::Ellipse, true) => discs.push(Disc {
                    centre,
                    radius: Radius::Latent(axes.project_sigma(snapshot.sigma_of(i))),
                    color: with_alpha(color, ellipse_alpha),
                }),
            }
        }
        let prior_points = match &snapshot.view.prior_points {
            Some(prior) if !pre_flow => prior
                .chunks_exact(d.max(1))
                .map(|z| axes.project(z))
                .collect(),
            _ => Vec::new(),
        };
        let class_means = match &snapshot.view.class_means {
            Some(means) if !pre_flow => means
                .chunks_exact(d.max(1))
                .enumerate()
                .map(|(label, m)| (axes.project(m), label as u8))
                .collect(),
            _ => Vec::new(),
        };
        let coverage = (!pre_flow && (options.holes || options.density) && draws.encoder)
            .then(|| plane_coverage(snapshot, &axes, options.projection))
            .flatten();
        let mut fields = Vec::new();
        if let Some(c) = &coverage {
            if options.density {
                fields.push(density_field(c));
            }
            if options.holes {
                fields.push(hole_field(c));
            }
        }
        let tiles = options.tiles.then(|| {
            let step = 2.0 * TILE_EXTENT / TILES as f32;
            let mut z = Vec::with_capacity(TILES * TILES * d);
            for row in 0..TILES {
                for col in 0..TILES {
                    let p = [
                        -TILE_EXTENT + (col as f32 + 0.5) * step,
                        TILE_EXTENT - (row as f32 + 0.5) * step,
                    ];
                    z.extend(axes.lift(p));
                }
            }
            Tiles {
                extent: TILE_EXTENT,
                n: TILES,
                images: snapshot.decoder.decode_many(&z),
                width: snapshot.decoder.width,
                height: snapshot.decoder.height,
            }
        });
        let projection = match dims {
            Some([i, j]) => format!("z{i} vs z{j}"),
            None => "PCA".to_owned(),
        };
        let title = format!(
            "{} latent plane{} ({projection}), step {}, {n} {}",
            snapshot.family.label(),
            if pre_flow { ", pre-flow space" } else { "" },
            snapshot.step,
            match shape {
                PosteriorShape::PriorSamples => "prior samples",
                PosteriorShape::Point => "codes",
                PosteriorShape::Ellipse | PosteriorShape::Warped => "posteriors",
            }
        );
        let legend = paint.legend(&snapshot.probe.class_names);
        // Every class mean is in view too: the CVAE's codes move out to them as it trains.
        let means_extent = class_means
            .iter()
            .map(|(p, _)| 1.15 * p[0].abs().max(p[1].abs()))
            .fold(0.0f32, f32::max)
            .min(12.0);
        let extent = view_extent(
            discs
                .iter()
                .map(|d| d.centre)
                .chain(prior_points.iter().copied()),
        )
        .max(means_extent);
        Self {
            title,
            axes,
            pre_flow,
            tiles,
            fields,
            prior_contours: draws.adversarial && !pre_flow,
            discs_are_prior_samples: shape == PosteriorShape::PriorSamples && !pre_flow,
            discs,
            outlines,
            prior_points,
            class_means,
            legend,
            extent,
            hole_share: coverage.filter(|_| options.holes).map(|c| c.hole_share),
        }
    }

    /// Where the plane shows samples of the prior: the GAN's discs, ALI's rings.
    pub fn prior_samples(&self) -> Vec<[f32; 2]> {
        let discs = self.discs.iter().filter(|_| self.discs_are_prior_samples);
        discs
            .map(|d| d.centre)
            .chain(self.prior_points.iter().copied())
            .collect()
    }

    /// How many of each primitive the scene holds: what a painter must draw.
    pub fn census(&self) -> Census {
        Census {
            tiles: self.tiles.as_ref().map_or(0, |t| t.images.len()),
            fields: self.fields.len(),
            prior_contours: usize::from(self.prior_contours) * 3,
            discs: self.discs.len(),
            outlines: self.outlines.len(),
            prior_points: self.prior_points.len(),
            class_means: self.class_means.len(),
            circles: 1,
        }
    }
}

/// Counts of a scene's primitives ([`Scene::census`]); the painters report the same for what
/// they drew.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Census {
    /// Decoded tiles.
    pub tiles: usize,
    /// Fields (heat map, hole tint).
    pub fields: usize,
    /// The prior's density contours.
    pub prior_contours: usize,
    /// Discs.
    pub discs: usize,
    /// Warped outlines.
    pub outlines: usize,
    /// Prior sample rings.
    pub prior_points: usize,
    /// Class means.
    pub class_means: usize,
    /// The unit circle.
    pub circles: usize,
}

/// The warped outline of probe sample `i` in the plane of `dims`: the one kept with the
/// snapshot for dims 0 and 1, computed through the flow for others; none through PCA.
fn warped(snapshot: &Snapshot, i: usize, dims: Option<[usize; 2]>) -> Option<Vec<[f32; 2]>> {
    let dims = dims?;
    if dims == [0, 1]
        && let Some(o) = snapshot.view.outline(i)
    {
        return Some(o.to_vec());
    }
    let (flow, pre) = (
        snapshot.view.flow.as_ref()?,
        snapshot.view.pre_flow.as_ref()?,
    );
    let d = snapshot.latent_dim;
    let sigma1 = snapshot.sigma_of(i)[0];
    Some(warped_outline(
        flow,
        &pre[i * d..(i + 1) * d],
        sigma1,
        dims,
        16,
    ))
}

/// The aggregate posterior against the prior in the shown plane: the snapshot's own when it is
/// over the same dims, else the mixture of the posteriors' shadows on the plane (the prior's
/// shadow on two orthonormal axes is N(0, I) again); none when the snapshot has none.
fn plane_coverage(
    snapshot: &Snapshot,
    axes: &PlaneAxes,
    projection: Projection,
) -> Option<std::sync::Arc<Coverage>> {
    // Snapshots taken without coverage (between the paced ones) show none either.
    let own = snapshot.coverage.as_ref()?;
    let same = match projection {
        Projection::Dims(i, j) => own.axes == (i, j),
        Projection::Pca => snapshot.latent_dim == 2 && own.axes == (0, 1),
    };
    if same {
        return Some(own.clone());
    }
    let n = snapshot.probe.len();
    let mut mu = Vec::with_capacity(2 * n);
    let mut sigma = Vec::with_capacity(2 * n);
    for i in 0..n {
        mu.extend(axes.project(snapshot.mu_of(i)));
        sigma.extend(axes.project_sigma(snapshot.sigma_of(i)));
    }
    // The CVAE's prior is the mixture of its class means' shadows (each N(mu_y', I) on
    // orthonormal axes).
    let prior = match &snapshot.view.class_means {
        Some(means) => {
            let shadows: Vec<f32> = means
                .chunks_exact(snapshot.latent_dim.max(1))
                .flat_map(|m| axes.project(m))
                .collect();
            coverage::Prior::class_mixture(&shadows, 2, (0, 1))
        }
        None => coverage::Prior::Standard,
    };
    Some(std::sync::Arc::new(coverage::gaussian_mixture(
        &mu,
        &sigma,
        2,
        (0, 1),
        &prior,
    )))
}

/// Samples a coverage grid's value at plane point `(x, y)`, bilinearly between cell centres.
fn bilinear(c: &Coverage, values: &[f32], x: f32, y: f32) -> f32 {
    let n = c.n;
    let cell = c.cell();
    let fx = ((x + c.extent) / cell - 0.5).clamp(0.0, (n - 1) as f32);
    let fy = ((y + c.extent) / cell - 0.5).clamp(0.0, (n - 1) as f32);
    let (x0, y0) = (fx.floor() as usize, fy.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(n - 1), (y0 + 1).min(n - 1));
    let (tx, ty) = (fx - x0 as f32, fy - y0 as f32);
    let v = |r: usize, col: usize| values[r * n + col];
    let top = v(y0, x0) * (1.0 - tx) + v(y0, x1) * tx;
    let bottom = v(y1, x0) * (1.0 - tx) + v(y1, x1) * tx;
    top * (1.0 - ty) + bottom * ty
}

/// Rasterises `color(x, y)` over the coverage grid's square.
fn rasterise(c: &Coverage, name: &'static str, color: impl Fn(f32, f32) -> Rgba) -> Field {
    let side = FIELD_PIXELS;
    let mut pixels = Vec::with_capacity(side * side);
    for row in 0..side {
        let y = c.extent - (row as f32 + 0.5) / side as f32 * 2.0 * c.extent;
        for col in 0..side {
            let x = -c.extent + (col as f32 + 0.5) / side as f32 * 2.0 * c.extent;
            pixels.push(color(x, y));
        }
    }
    Field {
        name,
        extent: c.extent,
        side,
        pixels,
    }
}

/// The hole tint: where q < 0.1 p, orange weighted by the prior's density, with a soft edge
/// (the log ratio is interpolated, then thresholded smoothly).
pub fn hole_field(c: &Coverage) -> Field {
    let peak = 1.0 / std::f32::consts::TAU;
    let log_ratio: Vec<f32> =
        c.q.iter()
            .zip(&c.p)
            .map(|(&q, &p)| (q.max(1e-30) / (HOLE_RATIO * p).max(1e-30)).ln())
            .collect();
    rasterise(c, "prior holes", |x, y| {
        let r = bilinear(c, &log_ratio, x, y);
        // Fully tinted a quarter of a nat inside the boundary, clear as far outside.
        let inside = ((0.25 - r) / 0.5).clamp(0.0, 1.0);
        let p = (-(x * x + y * y) / 2.0).exp() / std::f32::consts::TAU;
        let a = inside * (p / peak).sqrt() * 0.6;
        with_alpha(HOLE, (a * 255.0).round() as u8)
    })
}

/// The aggregate posterior q(z) as a heat map: transparent where q is 0, deep blue at its
/// peak (square-root scale).
pub fn density_field(c: &Coverage) -> Field {
    heat_field(c, &c.q, "q(z) heat map")
}

/// A density on the coverage grid (`values`, its layout) as a heat map, like [`density_field`].
pub fn heat_field(c: &Coverage, values: &[f32], name: &'static str) -> Field {
    let max = values.iter().copied().fold(1e-12f32, f32::max);
    rasterise(c, name, |x, y| {
        let v = (bilinear(c, values, x, y) / max).clamp(0.0, 1.0).sqrt();
        [40, 70, 200, (v * 150.0).round() as u8]
    })
}

/// Half-width of a square that shows `points`: at least 3 (the prior's bulk), wide enough for
/// 99% of them, at most 12.
fn view_extent(points: impl Iterator<Item = [f32; 2]>) -> f32 {
    let mut extents: Vec<f32> = points.map(|p| p[0].abs().max(p[1].abs())).collect();
    extents.sort_by(f32::total_cmp);
    let p99 = extents
        .get(extents.len() * 99 / 100)
        .copied()
        .unwrap_or(0.0);
    (p99 * 1.1).clamp(3.0, 12.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posteriors_are_coloured_by_a_chosen_factor_with_a_legend_of_its_values() {
        use latent_atlas_core::data::{Factor, FactorKind};
        let probe = latent_atlas_core::train::snapshot::Probe {
            labels: vec![0, 1, 1],
            class_names: vec!["square".into(), "circle".into()],
            factor_info: vec![
                Factor {
                    name: "hue".into(),
                    kind: FactorKind::Circular(1.0),
                },
                Factor {
                    name: "x".into(),
                    kind: FactorKind::Linear,
                },
            ],
            // (hue, x) per sample.
            factors: vec![0.0, 2.0, 1.0 / 3.0, 4.0, 0.999, 6.0],
            ..Default::default()
        };
        let by_class = Paint::new(&probe, None);
        assert_eq!(by_class.color(1, 1), class_color(1));
        assert_eq!(by_class.legend(&probe.class_names)[1].0, "circle");
        let by_hue = Paint::new(&probe, Some(0));
        assert_eq!(by_hue.color(0, 0), [255, 0, 0, 255], "hue 0 is red");
        assert_eq!(by_hue.color(1, 1), [0, 255, 0, 255], "hue 1/3 is green");
        let red_again = by_hue.color(2, 1);
        assert!(
            red_again[0] == 255 && red_again[2] < 5,
            "hue wraps: {red_again:?}"
        );
        let by_x = Paint::new(&probe, Some(1));
        assert_eq!(by_x.color(0, 0), viridis(0.0), "the smallest x");
        assert_eq!(by_x.color(2, 0), viridis(1.0), "the largest x");
        let legend = by_x.legend(&probe.class_names);
        assert_eq!(legend.len(), 5);
        assert_eq!(legend[0].0, "x 2.00");
        assert_eq!(legend[4].0, "x 6.00");
        // A factor the data do not have falls back to classes.
        assert_eq!(Paint::new(&probe, Some(7)).color(1, 1), class_color(1));
    }

    fn coverage_with_hole() -> Coverage {
        // Every code at (2, 2): the prior's centre is a hole.
        coverage::gaussian_mixture(&[2.0, 2.0], &[0.3, 0.3], 2, (0, 1), &Default::default())
    }

    #[test]
    fn the_hole_tint_is_smooth_and_where_the_holes_are() {
        let c = coverage_with_hole();
        let f = hole_field(&c);
        assert_eq!(f.pixels.len(), f.side * f.side);
        let at = |x: f32, y: f32| {
            let col = ((x + f.extent) / (2.0 * f.extent) * f.side as f32) as usize;
            let row = ((f.extent - y) / (2.0 * f.extent) * f.side as f32) as usize;
            f.pixels[row * f.side + col][3]
        };
        assert!(at(0.0, 0.0) > 80, "the prior's centre is a hole");
        assert_eq!(at(2.0, 2.0), 0, "where the codes are is no hole");
        // Smooth: along a row, neighbouring pixels differ by little (no 48-cell blocks).
        let row = f.side / 2;
        let jumps = (1..f.side)
            .map(|k| {
                (f.pixels[row * f.side + k][3] as i32 - f.pixels[row * f.side + k - 1][3] as i32)
                    .abs()
            })
            .max()
            .unwrap();
        assert!(jumps < 40, "largest step between neighbours {jumps}");
    }

    #[test]
    fn the_density_field_peaks_where_the_codes_are() {
        let f = density_field(&coverage_with_hole());
        let max = f.pixels.iter().map(|p| p[3]).max().unwrap();
        let centre = f.pixels[(f.side / 2) * f.side + f.side / 2][3];
        assert!(max > 100 && centre < max / 4);
    }

    #[test]
    fn marks_project_and_the_path_needs_two_pins() {
        let axes = PlaneAxes::new(Projection::Dims(1, 2), &[], 3);
        let m = Marks::new(&axes, 0.0, &[vec![1.0, 2.0, 3.0]], true, None, None);
        assert_eq!(m.pins, vec![[2.0, 3.0]]);
        assert_eq!(m.path, None);
        assert_eq!(m.temperature, None);
        let m = Marks::new(
            &axes,
            1.5,
            &[vec![1.0, 2.0, 3.0], vec![0.0, -1.0, 0.5]],
            true,
            Some(&[0.0, 1.0, 1.0]),
            None,
        );
        assert_eq!(m.path, Some([[2.0, 3.0], [-1.0, 0.5]]));
        assert_eq!(m.handle, Some([1.0, 1.0]));
        assert_eq!(m.temperature, Some(1.5));
    }
}
