//! A small RGBA canvas: alpha-blended fills, ellipses, lines and text (the Ubuntu font that
//! egui ships), enough to draw every exported view without a window.

use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use image::{Rgba, RgbaImage};

/// An RGBA colour with straight alpha.
pub type Color = [u8; 4];

/// White.
pub const WHITE: Color = [255, 255, 255, 255];
/// Black.
pub const BLACK: Color = [0, 0, 0, 255];
/// Grid grey.
pub const GRID: Color = [225, 225, 225, 255];

pub use crate::scene::{CLASS_COLORS, class_color};

fn font() -> &'static FontRef<'static> {
    static FONT: OnceLock<FontRef<'static>> = OnceLock::new();
    FONT.get_or_init(|| {
        FontRef::try_from_slice(epaint_default_fonts::UBUNTU_LIGHT)
            .expect("the embedded font parses")
    })
}

/// An image being drawn.
pub struct Canvas {
    /// The pixels.
    pub image: RgbaImage,
    /// Drawing is confined to `[x0, y0, x1, y1)` when set.
    pub clip: Option<[i32; 4]>,
}

impl Canvas {
    /// A canvas filled with `background`.
    pub fn new(width: u32, height: u32, background: Color) -> Self {
        Self {
            image: RgbaImage::from_pixel(width.max(1), height.max(1), Rgba(background)),
            clip: None,
        }
    }

    /// Blends `color` with coverage `alpha` (0-1, times the colour's own alpha) into a pixel.
    pub fn blend(&mut self, x: i32, y: i32, color: Color, alpha: f32) {
        if x < 0 || y < 0 || x >= self.image.width() as i32 || y >= self.image.height() as i32 {
            return;
        }
        if let Some([x0, y0, x1, y1]) = self.clip
            && (x < x0 || y < y0 || x >= x1 || y >= y1)
        {
            return;
        }
        let a = (alpha * color[3] as f32 / 255.0).clamp(0.0, 1.0);
        let p = self.image.get_pixel_mut(x as u32, y as u32);
        for (channel, &target) in p.0.iter_mut().zip(&color).take(3) {
            *channel = (*channel as f32 * (1.0 - a) + target as f32 * a).round() as u8;
        }
        p.0[3] = 255;
    }

    /// Stretches a field of `side x side` colours (row 0 at the top) over the pixel rectangle
    /// from `p0` (top-left) to `p1`, bilinearly, blending each by its alpha.
    pub fn blend_field(&mut self, p0: [f32; 2], p1: [f32; 2], pixels: &[Color], side: usize) {
        if side == 0 || pixels.len() < side * side {
            return;
        }
        let (w, h) = (p1[0] - p0[0], p1[1] - p0[1]);
        let last = (side - 1) as f32;
        for y in p0[1].floor() as i32..p1[1].ceil() as i32 {
            let fy = (((y as f32 + 0.5 - p0[1]) / h) * side as f32 - 0.5).clamp(0.0, last);
            for x in p0[0].floor() as i32..p1[0].ceil() as i32 {
                let fx = (((x as f32 + 0.5 - p0[0]) / w) * side as f32 - 0.5).clamp(0.0, last);
                let (x0, y0) = (fx.floor() as usize, fy.floor() as usize);
                let (x1, y1) = ((x0 + 1).min(side - 1), (y0 + 1).min(side - 1));
                let (tx, ty) = (fx - x0 as f32, fy - y0 as f32);
                let mut color = [0u8; 4];
                for (k, out) in color.iter_mut().enumerate() {
                    let v = |r: usize, col: usize| pixels[r * side + col][k] as f32;
                    let top = v(y0, x0) * (1.0 - tx) + v(y0, x1) * tx;
                    let bottom = v(y1, x0) * (1.0 - tx) + v(y1, x1) * tx;
                    *out = (top * (1.0 - ty) + bottom * ty).round() as u8;
                }
                if color[3] > 0 {
                    self.blend(x, y, color, 1.0);
                }
            }
        }
    }

    /// Pastes an image (values in `[0, 1]`, grey or RGB) stretched over the pixel rectangle from
    /// `p0` (top-left) to `p1`, nearest neighbour, blended with `alpha`.
    pub fn paste_grey_stretched(
        &mut self,
        p0: [f32; 2],
        p1: [f32; 2],
        pixels: &[f32],
        width: usize,
        height: usize,
        alpha: f32,
    ) {
        let (w, h) = (p1[0] - p0[0], p1[1] - p0[1]);
        if width == 0 || height == 0 || w <= 0.0 || h <= 0.0 {
            return;
        }
        for y in p0[1].round() as i32..p1[1].round() as i32 {
            let row = (((y as f32 + 0.5 - p0[1]) / h * height as f32) as usize).min(height - 1);
            for x in p0[0].round() as i32..p1[0].round() as i32 {
                let col = (((x as f32 + 0.5 - p0[0]) / w * width as f32) as usize).min(width - 1);
                let [r, g, b] = latent_atlas_core::colour::rgb_at(pixels, width, height, col, row);
                self.blend(x, y, [r, g, b, 255], alpha);
            }
        }
    }

    /// Fills an axis-aligned rectangle.
    pub fn fill_rect(&mut self, x: i32, y: i32, w: i32, h: i32, color: Color) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.blend(xx, yy, color, 1.0);
            }
        }
    }

    /// Fills an axis-aligned ellipse (centre and semi-axes in pixels), anti-aliased at the edge.
    pub fn fill_ellipse(&mut self, cx: f32, cy: f32, rx: f32, ry: f32, color: Color, alpha: f32) {
        let (rx, ry) = (rx.max(0.7), ry.max(0.7));
        let (x0, x1) = (
            (cx - rx - 1.0).floor() as i32,
            (cx + rx + 1.0).ceil() as i32,
        );
        let (y0, y1) = (
            (cy - ry - 1.0).floor() as i32,
            (cy + ry + 1.0).ceil() as i32,
        );
        for y in y0..=y1 {
            for x in x0..=x1 {
                let (dx, dy) = ((x as f32 + 0.5 - cx) / rx, (y as f32 + 0.5 - cy) / ry);
                let r = (dx * dx + dy * dy).sqrt();
                // Distance to the edge in pixels, roughly.
                let edge = (1.0 - r) * rx.min(ry);
                let coverage = (edge + 0.5).clamp(0.0, 1.0);
                if coverage > 0.0 {
                    self.blend(x, y, color, alpha * coverage);
                }
            }
        }
    }

    /// Draws a line of the given width (in pixels).
    pub fn line(&mut self, a: [f32; 2], b: [f32; 2], width: f32, color: Color) {
        let len = ((b[0] - a[0]).powi(2) + (b[1] - a[1]).powi(2)).sqrt();
        let steps = (len * 2.0).ceil().max(1.0) as usize;
        let r = width / 2.0;
        for i in 0..=steps {
            let t = i as f32 / steps as f32;
            let (x, y) = (a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]));
            for yy in (y - r).floor() as i32..=(y + r).ceil() as i32 {
                for xx in (x - r).floor() as i32..=(x + r).ceil() as i32 {
                    let d = ((xx as f32 + 0.5 - x).powi(2) + (yy as f32 + 0.5 - y).powi(2)).sqrt();
                    if d <= r + 0.5 {
                        self.set_max_alpha(xx, yy, color, (r + 0.5 - d).clamp(0.0, 1.0));
                    }
                }
            }
        }
    }

    /// Blends only if it darkens towards `color` more than before (avoids overdraw blotches).
    fn set_max_alpha(&mut self, x: i32, y: i32, color: Color, alpha: f32) {
        if x < 0 || y < 0 || x >= self.image.width() as i32 || y >= self.image.height() as i32 {
            return;
        }
        let p = self.image.get_pixel(x as u32, y as u32).0;
        let a = alpha * color[3] as f32 / 255.0;
        let target: [f32; 3] = std::array::from_fn(|c| color[c] as f32 * a + 255.0 * (1.0 - a));
        let p_dist: f32 = (0..3).map(|c| (p[c] as f32 - color[c] as f32).abs()).sum();
        let t_dist: f32 = (0..3).map(|c| (target[c] - color[c] as f32).abs()).sum();
        if t_dist < p_dist {
            self.blend(x, y, color, alpha);
        }
    }

    /// A closed polyline (for circles and outlines).
    pub fn polygon(&mut self, points: &[[f32; 2]], width: f32, color: Color) {
        for i in 0..points.len() {
            self.line(points[i], points[(i + 1) % points.len()], width, color);
        }
    }

    /// Width in pixels of `text` at size `px`.
    pub fn text_width(text: &str, px: f32) -> f32 {
        let font = font().as_scaled(PxScale::from(px));
        text.chars().map(|c| font.h_advance(font.glyph_id(c))).sum()
    }

    /// Draws `text` with its top-left corner at `(x, y)`, `px` pixels high.
    pub fn text(&mut self, x: f32, y: f32, px: f32, color: Color, text: &str) {
        let scaled = font().as_scaled(PxScale::from(px));
        let mut caret = x;
        let baseline = y + scaled.ascent();
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            let glyph =
                id.with_scale_and_position(PxScale::from(px), ab_glyph::point(caret, baseline));
            caret += scaled.h_advance(id);
            if let Some(outline) = font().outline_glyph(glyph) {
                let bounds = outline.px_bounds();
                outline.draw(|gx, gy, coverage| {
                    self.blend(
                        bounds.min.x as i32 + gx as i32,
                        bounds.min.y as i32 + gy as i32,
                        color,
                        coverage,
                    );
                });
            }
        }
    }

    /// Pastes an image (values in `[0, 1]`, grey or RGB; white ink on black for MNIST) scaled by
    /// an integer factor with its top-left corner at `(x, y)`.
    pub fn paste_grey(
        &mut self,
        x: i32,
        y: i32,
        pixels: &[f32],
        width: usize,
        height: usize,
        scale: u32,
    ) {
        let s = scale.max(1) as i32;
        for row in 0..height {
            for col in 0..width {
                let [r, g, b] = latent_atlas_core::colour::rgb_at(pixels, width, height, col, row);
                self.fill_rect(x + col as i32 * s, y + row as i32 * s, s, s, [r, g, b, 255]);
            }
        }
    }
}
