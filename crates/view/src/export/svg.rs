//! Vector exports for papers: the latent plane (`latent_plane.svg`) from the same [`Scene`] the
//! window and the PNG draw, and the loss curves (`curves.svg`) from the run's series. Plain SVG
//! 1.1, no scripts or external references.

use std::fmt::Write as _;

use crate::run::RunView;
use crate::scene::{Radius, Rgba, Scene};

/// Side of the plane's drawing square, in SVG user units.
const SIDE: f32 = 800.0;

/// `fill="rgb(..)" fill-opacity=".."` (or the stroke's pair) for a colour with alpha.
fn paint(attribute: &str, c: Rgba) -> String {
    format!(
        "{attribute}=\"rgb({},{},{})\" {attribute}-opacity=\"{:.3}\"",
        c[0],
        c[1],
        c[2],
        f32::from(c[3]) / 255.0
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The plane as SVG: posteriors as ellipses (or points), warped outlines, prior samples, class
/// means, the unit circle and a legend, over `[-extent, extent]^2`.
pub fn plane_svg(scene: &Scene) -> String {
    let e = scene.extent.max(1e-3);
    let scale = SIDE / (2.0 * e);
    let to = |p: [f32; 2]| ((p[0] + e) * scale, (e - p[1]) * scale);
    let legend_rows = scene.legend.len() as f32;
    let height = SIDE + 30.0 + 18.0 * legend_rows;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{SIDE}\" height=\"{height}\" viewBox=\"0 0 {SIDE} {height}\">"
    );
    let _ = writeln!(s, "<title>{}</title>", escape(&scene.title));
    let _ = writeln!(
        s,
        "<rect x=\"0\" y=\"0\" width=\"{SIDE}\" height=\"{SIDE}\" fill=\"white\" stroke=\"#888\"/>"
    );
    // The prior's unit circle.
    let (cx, cy) = to([0.0, 0.0]);
    let _ = writeln!(
        s,
        "<circle cx=\"{cx:.2}\" cy=\"{cy:.2}\" r=\"{:.2}\" fill=\"none\" stroke=\"#444\" stroke-width=\"1\"/>",
        scale
    );
    s.push_str("<g id=\"posteriors\">\n");
    for d in &scene.discs {
        let (x, y) = to(d.centre);
        let (rx, ry) = match d.radius {
            Radius::Screen(px) => (px, px),
            Radius::Latent([a, b]) => ((a * scale).max(0.5), (b * scale).max(0.5)),
        };
        let _ = writeln!(
            s,
            "<ellipse cx=\"{x:.2}\" cy=\"{y:.2}\" rx=\"{rx:.2}\" ry=\"{ry:.2}\" {}/>",
            paint("fill", d.color)
        );
    }
    for o in &scene.outlines {
        let points: Vec<String> = o
            .points
            .iter()
            .map(|&p| {
                let (x, y) = to(p);
                format!("{x:.2},{y:.2}")
            })
            .collect();
        let _ = writeln!(
            s,
            "<polygon points=\"{}\" fill=\"none\" {}/>",
            points.join(" "),
            paint("stroke", o.color)
        );
    }
    s.push_str("</g>\n<g id=\"prior-samples\">\n");
    for &p in &scene.prior_points {
        let (x, y) = to(p);
        let _ = writeln!(
            s,
            "<circle cx=\"{x:.2}\" cy=\"{y:.2}\" r=\"1.5\" fill=\"#222\"/>"
        );
    }
    s.push_str("</g>\n<g id=\"class-means\">\n");
    for &(p, label) in &scene.class_means {
        let (x, y) = to(p);
        let c = crate::scene::class_color(label);
        let _ = writeln!(
            s,
            "<rect x=\"{:.2}\" y=\"{:.2}\" width=\"8\" height=\"8\" fill=\"rgb({},{},{})\" stroke=\"black\"/>",
            x - 4.0,
            y - 4.0,
            c[0],
            c[1],
            c[2]
        );
    }
    s.push_str("</g>\n");
    let _ = writeln!(
        s,
        "<text x=\"4\" y=\"{:.0}\" font-family=\"sans-serif\" font-size=\"14\">{} (extent {e:.2})</text>",
        SIDE + 20.0,
        escape(&scene.title)
    );
    for (i, (name, c)) in scene.legend.iter().enumerate() {
        let y = SIDE + 30.0 + 18.0 * i as f32;
        let _ = writeln!(
            s,
            "<rect x=\"4\" y=\"{y:.0}\" width=\"12\" height=\"12\" fill=\"rgb({},{},{})\"/><text x=\"22\" y=\"{:.0}\" font-family=\"sans-serif\" font-size=\"12\">{}</text>",
            c[0],
            c[1],
            c[2],
            y + 11.0,
            escape(name)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// The loss curves as SVG: reconstruction, KL and total per step and the test negative ELBO per
/// epoch, on shared axes, with a legend.
pub fn curves_svg(run: &RunView) -> String {
    let c = &run.curves;
    let series = [
        ("reconstruction", &c.reconstruction, "#1f77b4"),
        ("KL", &c.kl, "#ff7f0e"),
        ("total", &c.total, "#2ca02c"),
        ("test negative ELBO", &c.test_elbo, "#d62728"),
    ];
    let points = || series.iter().flat_map(|(_, s, _)| s.points().iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for p in points() {
        x0 = x0.min(p[0]);
        x1 = x1.max(p[0]);
        y0 = y0.min(p[1]);
        y1 = y1.max(p[1]);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 - x0 < 1e-9 {
        x1 = x0 + 1.0;
    }
    if y1 - y0 < 1e-9 {
        y1 = y0 + 1.0;
    }
    let (w, h, left, bottom) = (900.0, 500.0, 70.0, 40.0);
    let sx = |x: f64| left + (x - x0) / (x1 - x0) * (w - left - 20.0);
    let sy = |y: f64| (h - bottom) - (y - y0) / (y1 - y0) * (h - bottom - 20.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">"
    );
    let _ = writeln!(
        s,
        "<rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n<line x1=\"{left}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"black\"/>\n<line x1=\"{left}\" y1=\"20\" x2=\"{left}\" y2=\"{0}\" stroke=\"black\"/>",
        h - bottom,
        w - 20.0
    );
    for (v, y) in [(y0, sy(y0)), (y1, sy(y1))] {
        let _ = writeln!(
            s,
            "<text x=\"{:.0}\" y=\"{:.0}\" font-family=\"sans-serif\" font-size=\"11\" text-anchor=\"end\">{v:.2}</text>",
            left - 4.0,
            y + 4.0
        );
    }
    for (v, x) in [(x0, sx(x0)), (x1, sx(x1))] {
        let _ = writeln!(
            s,
            "<text x=\"{x:.0}\" y=\"{:.0}\" font-family=\"sans-serif\" font-size=\"11\" text-anchor=\"middle\">step {v:.0}</text>",
            h - bottom + 16.0
        );
    }
    for (i, (name, series, stroke)) in series.iter().enumerate() {
        if series.is_empty() {
            continue;
        }
        let path: Vec<String> = series
            .points()
            .iter()
            .map(|p| format!("{:.2},{:.2}", sx(p[0]), sy(p[1])))
            .collect();
        let _ = writeln!(
            s,
            "<polyline id=\"{}\" points=\"{}\" fill=\"none\" stroke=\"{stroke}\" stroke-width=\"1.5\"/>",
            name.replace(' ', "-"),
            path.join(" ")
        );
        let y = 30.0 + 16.0 * i as f64;
        let _ = writeln!(
            s,
            "<rect x=\"{:.0}\" y=\"{:.0}\" width=\"12\" height=\"3\" fill=\"{stroke}\"/><text x=\"{:.0}\" y=\"{:.0}\" font-family=\"sans-serif\" font-size=\"12\">{name}</text>",
            w - 200.0,
            y,
            w - 184.0,
            y + 5.0
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_curves_hold_every_point_as_a_polyline() {
        let mut run = RunView::default();
        for step in 1..=50u64 {
            run.curves.total.push(step as f64, 100.0 / step as f64);
        }
        let svg = curves_svg(&run);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        let line = svg
            .lines()
            .find(|l| l.contains("id=\"total\""))
            .expect("the total's polyline");
        let points = line
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(points.split(' ').count(), 50);
        assert!(!svg.contains("id=\"KL\""), "empty series are left out");
    }
}
