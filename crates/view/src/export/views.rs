//! The exported views: the latent plane with every probe posterior as an ellipse, and image
//! grids (prior samples, reconstructions, the decoded manifold, an interpolation strip).

use image::RgbaImage;

use super::canvas::{BLACK, Canvas, GRID, WHITE, class_color};
use crate::scene::{
    Census, DRAW_PURPLE, Marks, ORANGE, PRIOR_BLUE, PRIOR_GREY, Radius, Scene, density_field,
    heat_field, hole_field,
};
use latent_atlas_core::explore::PlainDecoder;
use latent_atlas_core::explore::coverage::Coverage;
use latent_atlas_core::explore::geometry::{
    PathKind, ellipse_outline, interpolation_path, manifold_grid,
};
use latent_atlas_core::rng::Rng;
use latent_atlas_core::train::Snapshot;

const TITLE_PX: f32 = 20.0;
const LABEL_PX: f32 = 14.0;

/// Paints the latent plane's scene: the fields and tiles, every posterior, prior samples,
/// class means, the unit and temperature circles and the user's marks, with axes, ticks, a
/// title and a legend. Returns the image and a census of what was painted.
pub fn latent_plane(scene: &Scene, marks: &Marks, size: u32) -> (RgbaImage, Census) {
    let legend_w = 170.0;
    let margin = 40.0;
    let side = size as f32;
    let mut c = Canvas::new(size + legend_w as u32, size, WHITE);
    let mut census = Census::default();
    let plot = side - 2.0 * margin;
    let r = scene.extent;
    let to_px = |p: [f32; 2]| {
        [
            margin + (p[0] + r) / (2.0 * r) * plot,
            margin + (r - p[1]) / (2.0 * r) * plot,
        ]
    };
    let scale = plot / (2.0 * r);
    // Grid and ticks at integers.
    let step = if r > 6.0 { 2 } else { 1 };
    for k in (-(r as i32)..=r as i32).filter(|k| k % step == 0) {
        let k = k as f32;
        let color = if k == 0.0 { [170, 170, 170, 255] } else { GRID };
        c.line(to_px([k, -r]), to_px([k, r]), 1.0, color);
        c.line(to_px([-r, k]), to_px([r, k]), 1.0, color);
        let label = format!("{k}");
        let [x, _] = to_px([k, -r]);
        c.text(
            x - Canvas::text_width(&label, LABEL_PX) / 2.0,
            side - margin + 4.0,
            LABEL_PX,
            BLACK,
            &label,
        );
        let [_, y] = to_px([-r, k]);
        c.text(
            margin - 6.0 - Canvas::text_width(&label, LABEL_PX),
            y - LABEL_PX / 2.0,
            LABEL_PX,
            BLACK,
            &label,
        );
    }
    c.clip = Some([
        margin as i32,
        margin as i32,
        (side - margin) as i32,
        (side - margin) as i32,
    ]);
    if let Some(t) = &scene.tiles {
        let cell = 2.0 * t.extent / t.n as f32;
        for (k, img) in t.images.iter().enumerate() {
            let (row, col) = ((k / t.n) as f32, (k % t.n) as f32);
            let [x0, y0] = to_px([-t.extent + col * cell, t.extent - row * cell]);
            let [x1, y1] = to_px([
                -t.extent + (col + 1.0) * cell,
                t.extent - (row + 1.0) * cell,
            ]);
            c.paste_grey_stretched([x0, y0], [x1, y1], img, t.width, t.height, 150.0 / 255.0);
            census.tiles += 1;
        }
    }
    for field in &scene.fields {
        let [x0, y0] = to_px([-field.extent, field.extent]);
        let [x1, y1] = to_px([field.extent, -field.extent]);
        c.blend_field([x0, y0], [x1, y1], &field.pixels, field.side);
        census.fields += 1;
    }
    if scene.prior_contours {
        let [x, y] = to_px([0.0, 0.0]);
        for (k, alpha) in [(1.0, 60u8), (2.0, 40), (3.0, 25)] {
            c.fill_ellipse(
                x,
                y,
                k * scale,
                k * scale,
                PRIOR_BLUE,
                alpha as f32 / 3.0 / 255.0,
            );
            let ring: Vec<[f32; 2]> = ellipse_outline(0.0, 0.0, k, k, 128)
                .into_iter()
                .map(to_px)
                .collect();
            let [r0, g0, b0, _] = PRIOR_BLUE;
            c.polygon(&ring, 1.0, [r0, g0, b0, alpha]);
            census.prior_contours += 1;
        }
    }
    for d in &scene.discs {
        let [x, y] = to_px(d.centre);
        let (rx, ry) = match d.radius {
            Radius::Screen(px) => (px, px),
            Radius::Latent([a, b]) => ((a * scale).max(1.0), (b * scale).max(1.0)),
        };
        c.fill_ellipse(x, y, rx, ry, d.color, 1.0);
        census.discs += 1;
    }
    for o in &scene.outlines {
        let points: Vec<[f32; 2]> = o.points.iter().map(|&p| to_px(p)).collect();
        c.polygon(&points, 1.0, o.color);
        census.outlines += 1;
    }
    for &p in &scene.prior_points {
        // A ring: a grey disc with a white centre.
        let [x, y] = to_px(p);
        c.fill_ellipse(x, y, 3.2, 3.2, PRIOR_GREY, 1.0);
        c.fill_ellipse(x, y, 1.6, 1.6, WHITE, 1.0);
        census.prior_points += 1;
    }
    for &(m, label) in &scene.class_means {
        let [x, y] = to_px(m);
        c.fill_ellipse(x, y, 7.0, 7.0, BLACK, 1.0);
        c.fill_ellipse(x, y, 5.0, 5.0, class_color(label), 1.0);
        census.class_means += 1;
    }
    let circle: Vec<[f32; 2]> = ellipse_outline(0.0, 0.0, 1.0, 1.0, 256)
        .into_iter()
        .map(to_px)
        .collect();
    c.polygon(&circle, 2.0, [30, 30, 30, 255]);
    census.circles += 1;
    if let Some(t) = marks.temperature {
        let ring: Vec<[f32; 2]> = ellipse_outline(0.0, 0.0, t, t, 96)
            .into_iter()
            .map(to_px)
            .collect();
        // Dashes: every other segment.
        for k in (0..ring.len()).step_by(2) {
            c.line(ring[k], ring[(k + 1) % ring.len()], 1.5, ORANGE);
        }
    }
    let heaviest = marks.heaviest_draw();
    for &(p, w) in &marks.draws {
        let (radius, alpha) = Marks::draw_style(w, heaviest);
        let [x, y] = to_px(p);
        c.fill_ellipse(x, y, radius + 1.0, radius + 1.0, BLACK, 1.0);
        c.fill_ellipse(x, y, radius, radius, DRAW_PURPLE, alpha);
    }
    if let Some([a, b]) = marks.path {
        c.line(to_px(a), to_px(b), 2.0, BLACK);
    }
    for (k, &p) in marks.pins.iter().enumerate() {
        let [x, y] = to_px(p);
        c.fill_ellipse(x, y, 7.0, 7.0, BLACK, 1.0);
        c.fill_ellipse(x, y, 5.0, 5.0, WHITE, 1.0);
        c.text(
            x + 8.0,
            y - 22.0,
            LABEL_PX,
            BLACK,
            ["A", "B", "C", "D"][k.min(3)],
        );
    }
    if let Some(h) = marks.handle {
        let [x, y] = to_px(h);
        c.fill_ellipse(x, y, 8.0, 8.0, BLACK, 1.0);
        c.fill_ellipse(x, y, 6.0, 6.0, ORANGE, 1.0);
    }
    if let Some(p) = marks.preview {
        let [x, y] = to_px(p);
        let ring: Vec<[f32; 2]> = ellipse_outline(x, y, 9.0, 9.0, 24);
        c.polygon(&ring, 2.0, ORANGE);
    }
    c.clip = None;
    c.polygon(
        &[
            to_px([-r, -r]),
            to_px([r, -r]),
            to_px([r, r]),
            to_px([-r, r]),
        ],
        1.0,
        [120, 120, 120, 255],
    );
    c.text(margin, 10.0, LABEL_PX + 2.0, BLACK, &scene.title);
    // Legend.
    let x0 = side + 5.0;
    let mut y = margin;
    for (name, color) in scene.legend.iter().take(24) {
        c.fill_rect(x0 as i32, y as i32 + 2, 14, 14, *color);
        c.text(x0 + 20.0, y, LABEL_PX + 1.0, BLACK, name);
        y += 22.0;
    }
    c.line([x0, y + 12.0], [x0 + 14.0, y + 12.0], 2.0, BLACK);
    c.text(x0 + 20.0, y + 4.0, LABEL_PX, BLACK, "unit circle");
    if let Some(t) = marks.temperature {
        y += 22.0;
        c.line([x0, y + 12.0], [x0 + 5.0, y + 12.0], 1.5, ORANGE);
        c.line([x0 + 9.0, y + 12.0], [x0 + 14.0, y + 12.0], 1.5, ORANGE);
        c.text(x0 + 20.0, y + 4.0, LABEL_PX, BLACK, &format!("T = {t:.2}"));
    }
    if !scene.class_means.is_empty() {
        y += 22.0;
        c.fill_ellipse(x0 + 7.0, y + 10.0, 6.0, 6.0, BLACK, 1.0);
        c.text(x0 + 20.0, y + 4.0, LABEL_PX, BLACK, "class means");
    }
    if !scene.prior_samples().is_empty() {
        y += 22.0;
        c.fill_ellipse(x0 + 7.0, y + 10.0, 4.0, 4.0, PRIOR_GREY, 1.0);
        c.text(x0 + 20.0, y + 4.0, LABEL_PX, BLACK, "prior samples");
    }
    for field in &scene.fields {
        y += 22.0;
        let swatch = field
            .pixels
            .iter()
            .copied()
            .max_by_key(|p| p[3])
            .unwrap_or(BLACK);
        c.fill_rect(
            x0 as i32,
            y as i32 + 4,
            14,
            14,
            [swatch[0], swatch[1], swatch[2], 255],
        );
        let text = match (field.name, scene.hole_share) {
            ("prior holes", Some(h)) => format!("holes {:.0}% of prior", 100.0 * h),
            (name, _) => name.to_owned(),
        };
        c.text(x0 + 20.0, y + 4.0, LABEL_PX, BLACK, &text);
    }
    (c.image, census)
}

/// The aggregate posterior as a heat map beside the prior, with the holes tinted: the fields
/// the latent plane draws ([`crate::scene`]).
pub fn coverage(coverage: &Coverage, size: u32) -> RgbaImage {
    let margin = 36.0;
    let side = size as f32;
    let mut c = Canvas::new(size * 2, size + 30, WHITE);
    let plot = side - 2.0 * margin;
    let panels = [
        (
            vec![density_field(coverage), hole_field(coverage)],
            format!(
                "aggregate posterior q(z), holes (q < 0.1 p) tinted: {:.1}% of the prior",
                100.0 * coverage.hole_share
            ),
        ),
        (
            vec![heat_field(coverage, &coverage.p, "prior")],
            "prior p(z) = N(0, I)".to_owned(),
        ),
    ];
    for (panel, (fields, title)) in panels.into_iter().enumerate() {
        let x0 = panel as f32 * side + margin;
        for field in &fields {
            c.blend_field(
                [x0, margin],
                [x0 + plot, margin + plot],
                &field.pixels,
                field.side,
            );
        }
        c.polygon(
            &[
                [x0, margin],
                [x0 + plot, margin],
                [x0 + plot, margin + plot],
                [x0, margin + plot],
            ],
            1.0,
            [120, 120, 120, 255],
        );
        let e = coverage.extent;
        for (v, label) in [(-e, format!("{}", -e)), (e, format!("{e}"))] {
            let x = x0 + (v + e) / (2.0 * e) * plot;
            c.text(x - 8.0, margin + plot + 4.0, LABEL_PX, BLACK, &label);
        }
        c.text(x0, 10.0, LABEL_PX, BLACK, &title);
    }
    c.image
}

/// A grid of class-conditional samples (CVAE): one row per class, `per_class` samples each at
/// temperature `t` around the class mean.
pub fn class_samples(snapshot: &Snapshot, per_class: usize, t: f32, seed: u64) -> RgbaImage {
    let d = snapshot.latent_dim;
    let classes = snapshot.view.classes(d);
    let mut rng = Rng::new(seed);
    let mut z = Vec::with_capacity(classes * per_class * d);
    for c in 0..classes {
        let mode = snapshot.prior_mode(Some(c));
        for _ in 0..per_class {
            z.extend(mode.iter().map(|m| m + t * rng.normal()));
        }
    }
    let images = snapshot.decoder.decode_many(&z);
    image_grid(
        &format!("class-conditional samples z ~ N(mu_y, T^2 I), T = {t}, one row per class"),
        &images,
        snapshot.decoder.width,
        snapshot.decoder.height,
        per_class,
        2,
    )
}

/// A titled grid of grey images, `cols` per row, each scaled by `scale` with a 2-pixel gap.
pub fn image_grid(
    title: &str,
    images: &[Vec<f32>],
    width: usize,
    height: usize,
    cols: usize,
    scale: u32,
) -> RgbaImage {
    let cols = cols.max(1);
    let rows = images.len().div_ceil(cols);
    let (cell_w, cell_h) = (width as u32 * scale + 2, height as u32 * scale + 2);
    let top = if title.is_empty() {
        2
    } else {
        TITLE_PX as u32 + 12
    };
    let total_w = (cols as u32 * cell_w + 2).max(Canvas::text_width(title, TITLE_PX) as u32 + 12);
    let mut c = Canvas::new(total_w, top + rows as u32 * cell_h + 2, WHITE);
    c.text(6.0, 5.0, TITLE_PX, BLACK, title);
    for (i, img) in images.iter().enumerate() {
        let (col, row) = ((i % cols) as u32, (i / cols) as u32);
        c.paste_grey(
            (2 + col * cell_w) as i32,
            (top + row * cell_h) as i32,
            img,
            width,
            height,
            scale,
        );
    }
    c.image
}

/// Places images side by side with a gap.
pub fn hstack(images: &[RgbaImage], gap: u32) -> RgbaImage {
    let w =
        images.iter().map(|i| i.width()).sum::<u32>() + gap * images.len().saturating_sub(1) as u32;
    let h = images.iter().map(|i| i.height()).max().unwrap_or(1);
    let mut out = Canvas::new(w, h, WHITE).image;
    let mut x = 0;
    for img in images {
        image::imageops::overlay(&mut out, img, x as i64, 0);
        x += img.width() + gap;
    }
    out
}

/// Points drawn from the prior at temperature `t`: `z = t * eps`, `eps ~ N(0, I)`.
pub fn prior_points(n: usize, latent_dim: usize, t: f32, rng: &mut Rng) -> Vec<f32> {
    rng.normals(n * latent_dim)
        .into_iter()
        .map(|e| e * t)
        .collect()
}

/// Prior samples at several temperatures, a 10 x 10 grid each.
pub fn prior_samples(decoder: &PlainDecoder, temperatures: &[f32], seed: u64) -> RgbaImage {
    let panels: Vec<RgbaImage> = temperatures
        .iter()
        .map(|&t| {
            // The same noise at every temperature, so the panels differ only by T.
            let z = prior_points(100, decoder.latent_dim(), t, &mut Rng::new(seed));
            let images = decoder.decode_many(&z);
            image_grid(
                &format!("prior samples, T = {t}"),
                &images,
                decoder.width,
                decoder.height,
                10,
                2,
            )
        })
        .collect();
    hstack(&panels, 16)
}

/// Inputs beside their reconstructions (decoded posterior means): `pairs` pairs, 4 per row.
pub fn reconstructions(snapshot: &Snapshot, pairs: usize) -> RgbaImage {
    let probe = &snapshot.probe;
    let n = pairs.min(probe.len());
    let mu: Vec<f32> = (0..n).flat_map(|i| snapshot.mu_of(i).to_vec()).collect();
    let decoded = snapshot.decoder.decode_many(&mu);
    let mut images = Vec::with_capacity(2 * n);
    for (i, rec) in decoded.into_iter().enumerate() {
        images.push(probe.image(i).iter().map(|&p| p as f32 / 255.0).collect());
        images.push(rec);
    }
    image_grid(
        "inputs (left) and reconstructions (right)",
        &images,
        probe.width,
        probe.height,
        8,
        2,
    )
}

/// The `n x n` decoded manifold over the inverse-CDF grid of the prior in its first two dims.
pub fn manifold(decoder: &PlainDecoder, n: usize, class_means: Option<&[f32]>) -> RgbaImage {
    let z = manifold_grid(n, decoder.latent_dim(), class_means);
    let images = decoder.decode_many(&z);
    let prior = match class_means {
        Some(_) => "the class-mixture prior's marginals",
        None => "the prior",
    };
    image_grid(
        &format!("decoded manifold, {n} x {n} inverse-CDF grid of {prior}"),
        &images,
        decoder.width,
        decoder.height,
        n,
        1,
    )
}

/// Probe samples `a` and `b`, and `steps` decodings along the path between their posterior
/// means, framed by the two inputs.
pub fn interpolation(
    snapshot: &Snapshot,
    a: usize,
    b: usize,
    steps: usize,
    kind: PathKind,
) -> RgbaImage {
    let probe = &snapshot.probe;
    let path = interpolation_path(snapshot.mu_of(a), snapshot.mu_of(b), steps, kind);
    let mut images = vec![probe.image(a).iter().map(|&p| p as f32 / 255.0).collect()];
    images.extend(snapshot.decoder.decode_many(&path));
    images.push(probe.image(b).iter().map(|&p| p as f32 / 255.0).collect());
    let names = &probe.class_names;
    let label = |i: usize| {
        names
            .get(probe.labels[i] as usize)
            .cloned()
            .unwrap_or_default()
    };
    image_grid(
        &format!(
            "interpolation from a {} to a {} ({steps} steps; inputs at the ends)",
            label(a),
            label(b)
        ),
        &images,
        probe.width,
        probe.height,
        steps + 2,
        3,
    )
}

/// Two probe samples of different classes (the first sample and the first of another class).
pub fn interpolation_ends(snapshot: &Snapshot) -> (usize, usize) {
    let labels = &snapshot.probe.labels;
    let b = (1..labels.len())
        .find(|&i| labels[i] != labels[0])
        .unwrap_or(labels.len().saturating_sub(1));
    (0, b)
}

/// A named series of `(x, y)` points and its colour.
pub type ChartSeries<'a> = (&'a str, Vec<[f64; 2]>, [u8; 4]);

/// A line chart of several named series (`(name, points, colour)`), optionally with a
/// logarithmic y axis, with axes, ticks and a legend.
pub fn line_chart(
    title: &str,
    series: &[ChartSeries<'_>],
    log_y: bool,
    width: u32,
    height: u32,
) -> RgbaImage {
    let mut c = Canvas::new(width, height, WHITE);
    let (left, right, top, bottom) = (70.0, 20.0, 40.0, 40.0);
    let (w, h) = (width as f32 - left - right, height as f32 - top - bottom);
    let ty = |y: f64| if log_y { y.max(1e-9).log10() } else { y };
    let all = series.iter().flat_map(|s| s.1.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for p in all {
        x0 = x0.min(p[0]);
        x1 = x1.max(p[0]);
        y0 = y0.min(ty(p[1]));
        y1 = y1.max(ty(p[1]));
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 - x0 < 1e-9 {
        x1 = x0 + 1.0;
    }
    if y1 - y0 < 1e-9 {
        y1 = y0 + 1.0;
    }
    let to_px = |x: f64, y: f64| {
        [
            left + ((x - x0) / (x1 - x0)) as f32 * w,
            top + (1.0 - ((ty(y) - y0) / (y1 - y0)) as f32) * h,
        ]
    };
    for k in 0..=4 {
        let f = k as f64 / 4.0;
        let yv = y0 + f * (y1 - y0);
        let py = top + (1.0 - f as f32) * h;
        c.line([left, py], [left + w, py], 1.0, GRID);
        let label = if log_y {
            format!("{:.3}", 10f64.powf(yv))
        } else {
            format!("{yv:.1}")
        };
        c.text(
            left - 6.0 - Canvas::text_width(&label, LABEL_PX),
            py - LABEL_PX / 2.0,
            LABEL_PX,
            BLACK,
            &label,
        );
        let xv = x0 + f * (x1 - x0);
        let px = left + f as f32 * w;
        let label = format!("{xv:.0}");
        c.text(
            px - Canvas::text_width(&label, LABEL_PX) / 2.0,
            top + h + 6.0,
            LABEL_PX,
            BLACK,
            &label,
        );
    }
    c.polygon(
        &[
            [left, top],
            [left + w, top],
            [left + w, top + h],
            [left, top + h],
        ],
        1.0,
        [120, 120, 120, 255],
    );
    for (_, points, color) in series {
        for pair in points.windows(2) {
            c.line(
                to_px(pair[0][0], pair[0][1]),
                to_px(pair[1][0], pair[1][1]),
                1.5,
                *color,
            );
        }
    }
    c.text(left, 10.0, LABEL_PX + 2.0, BLACK, title);
    let mut x = left + Canvas::text_width(title, LABEL_PX + 2.0) + 24.0;
    for (name, _, color) in series {
        c.fill_rect(x as i32, 14, 12, 12, *color);
        c.text(x + 16.0, 10.0, LABEL_PX + 1.0, BLACK, name);
        x += Canvas::text_width(name, LABEL_PX + 1.0) + 36.0;
    }
    c.image
}

/// An animated GIF of `frames`, each shown for `delay_ms`, looping.
pub fn gif(frames: &[RgbaImage], delay_ms: u32) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new_with_speed(&mut bytes, 10);
        encoder.set_repeat(image::codecs::gif::Repeat::Infinite)?;
        for f in frames {
            let delay = image::Delay::from_numer_denom_ms(delay_ms, 1);
            encoder.encode_frame(image::Frame::from_parts(f.clone(), 0, 0, delay))?;
        }
    }
    Ok(bytes)
}
