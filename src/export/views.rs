//! The exported views: the latent plane with every probe posterior as an ellipse, and image
//! grids (prior samples, reconstructions, the decoded manifold, an interpolation strip).

use image::RgbaImage;

use super::canvas::{BLACK, Canvas, GRID, WHITE, class_color};
use crate::explore::PlainDecoder;
use crate::explore::geometry::{PathKind, ellipse_outline, interpolation_path, manifold_grid};
use crate::rng::Rng;
use crate::train::Snapshot;

const TITLE_PX: f32 = 20.0;
const LABEL_PX: f32 = 14.0;

/// Half-width of the square latent view: at least 3 (the prior's bulk), wide enough for 99%
/// of the posterior means, at most 12.
pub fn view_radius(snapshot: &Snapshot, dims: [usize; 2]) -> f32 {
    let mut extents: Vec<f32> = (0..snapshot.probe.len())
        .map(|i| {
            let mu = snapshot.mu_of(i);
            mu[dims[0]].abs().max(mu[dims[1]].abs())
        })
        .collect();
    extents.sort_by(f32::total_cmp);
    let p99 = extents
        .get(extents.len() * 99 / 100)
        .copied()
        .unwrap_or(0.0);
    (p99 * 1.1).clamp(3.0, 12.0)
}

/// The latent plane (`dims` picks the two latent dimensions shown): each probe sample's
/// posterior as a translucent ellipse (centre mu, semi-axes sigma) coloured by class, the unit
/// circle, axes with ticks, and a legend.
pub fn latent_plane(snapshot: &Snapshot, dims: [usize; 2], size: u32) -> RgbaImage {
    let legend_w = 150.0;
    let margin = 40.0;
    let side = size as f32;
    let mut c = Canvas::new(size + legend_w as u32, size, WHITE);
    let plot = side - 2.0 * margin;
    let r = view_radius(snapshot, dims);
    let to_px = |x: f32, y: f32| {
        [
            margin + (x + r) / (2.0 * r) * plot,
            margin + (r - y) / (2.0 * r) * plot,
        ]
    };
    let scale = plot / (2.0 * r);
    // Grid and ticks at integers.
    let step = if r > 6.0 { 2 } else { 1 };
    for k in (-(r as i32)..=r as i32).filter(|k| k % step == 0) {
        let k = k as f32;
        let color = if k == 0.0 { [170, 170, 170, 255] } else { GRID };
        c.line(to_px(k, -r), to_px(k, r), 1.0, color);
        c.line(to_px(-r, k), to_px(r, k), 1.0, color);
        let label = format!("{k}");
        let [x, _] = to_px(k, -r);
        c.text(
            x - Canvas::text_width(&label, LABEL_PX) / 2.0,
            side - margin + 4.0,
            LABEL_PX,
            BLACK,
            &label,
        );
        let [_, y] = to_px(-r, k);
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
    for i in 0..snapshot.probe.len() {
        let (mu, sigma) = (snapshot.mu_of(i), snapshot.sigma_of(i));
        let [x, y] = to_px(mu[dims[0]], mu[dims[1]]);
        let color = class_color(snapshot.probe.labels[i]);
        c.fill_ellipse(
            x,
            y,
            sigma[dims[0]] * scale,
            sigma[dims[1]] * scale,
            color,
            0.22,
        );
    }
    let circle: Vec<[f32; 2]> = ellipse_outline(0.0, 0.0, 1.0, 1.0, 256)
        .iter()
        .map(|p| to_px(p[0], p[1]))
        .collect();
    c.polygon(&circle, 2.0, BLACK);
    c.clip = None;
    c.polygon(
        &[to_px(-r, -r), to_px(r, -r), to_px(r, r), to_px(-r, r)],
        1.0,
        [120, 120, 120, 255],
    );
    let title = format!(
        "latent plane (z{} vs z{}), step {}, {} posteriors",
        dims[0],
        dims[1],
        snapshot.step,
        snapshot.probe.len()
    );
    c.text(margin, 10.0, LABEL_PX + 2.0, BLACK, &title);
    // Legend.
    let x0 = side + 5.0;
    let mut y = margin;
    let names = &snapshot.probe.class_names;
    for (label, name) in names.iter().enumerate().take(24) {
        let color = class_color(label as u8);
        c.fill_rect(x0 as i32, y as i32 + 2, 14, 14, color);
        c.text(x0 + 20.0, y, LABEL_PX + 1.0, BLACK, name);
        y += 22.0;
    }
    c.line([x0, y + 12.0], [x0 + 14.0, y + 12.0], 2.0, BLACK);
    c.text(x0 + 20.0, y + 4.0, LABEL_PX, BLACK, "unit circle");
    c.image
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
pub fn manifold(decoder: &PlainDecoder, n: usize) -> RgbaImage {
    let z = manifold_grid(n, decoder.latent_dim());
    let images = decoder.decode_many(&z);
    image_grid(
        &format!("decoded manifold, {n} x {n} inverse-CDF grid of the prior"),
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
