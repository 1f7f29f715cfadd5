//! A colour dataset with known generative factors, drawn from a seed: one shape per image
//! (its class), with independent hue, scale, rotation and x/y position, on black.
//! The built-in `shapes` dataset ([`super::builtin::Builtin::Shapes`]).

use crate::rng::Rng;

/// The shapes, one class each.
pub const SHAPE_NAMES: [&str; 4] = ["square", "circle", "triangle", "heart"];

/// The factors, in the order [`Factors::values`] gives them.
pub const FACTOR_NAMES: [&str; 6] = ["shape", "hue", "scale", "rotation", "x", "y"];

/// The factors as a dataset describes them, in [`FACTOR_NAMES`] order.
pub fn factors() -> Vec<crate::data::Factor> {
    use crate::data::FactorKind::{Categorical, Circular, Linear};
    let kinds = [
        Categorical(SHAPE_NAMES.len()),
        Circular(1.0),
        Linear,
        Circular(std::f32::consts::TAU),
        Linear,
        Linear,
    ];
    FACTOR_NAMES
        .iter()
        .zip(kinds)
        .map(|(name, kind)| crate::data::Factor {
            name: (*name).to_owned(),
            kind,
        })
        .collect()
}

/// Side of the images, in pixels.
pub const SIZE: usize = 32;

/// The smallest and largest scale (the shape's half-width as a share of the image at 1 is
/// [`HALF_WIDTH`]).
pub const SCALE_RANGE: (f32, f32) = (0.5, 1.0);

/// The half-width of a shape of scale 1, as a share of the image side.
const HALF_WIDTH: f32 = 0.25;

/// Sub-pixel samples per side for anti-aliasing.
const SUPERSAMPLE: usize = 3;

/// The generative factors of one image. Every continuous factor is in [0, 1] apart from
/// `scale` (in [`SCALE_RANGE`]) and `rotation` (radians in [0, 2 pi)).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Factors {
    /// Index into [`SHAPE_NAMES`].
    pub shape: u8,
    /// Hue on the colour wheel (full saturation and value).
    pub hue: f32,
    /// Size.
    pub scale: f32,
    /// Rotation about the shape's centre.
    pub rotation: f32,
    /// Horizontal position: 0 is as far left as the largest shape fits, 1 as far right.
    pub x: f32,
    /// Vertical position: 0 is as high as the largest shape fits, 1 as low.
    pub y: f32,
}

impl Factors {
    /// Independent uniform draws of every factor.
    pub fn draw(rng: &mut Rng) -> Self {
        let shape =
            ((rng.uniform() * SHAPE_NAMES.len() as f32) as usize).min(SHAPE_NAMES.len() - 1);
        Self {
            shape: shape as u8,
            hue: rng.uniform(),
            scale: SCALE_RANGE.0 + (SCALE_RANGE.1 - SCALE_RANGE.0) * rng.uniform(),
            rotation: std::f32::consts::TAU * rng.uniform(),
            x: rng.uniform(),
            y: rng.uniform(),
        }
    }

    /// The factors as numbers, in [`FACTOR_NAMES`] order.
    pub fn values(&self) -> [f32; 6] {
        [
            self.shape as f32,
            self.hue,
            self.scale,
            self.rotation,
            self.x,
            self.y,
        ]
    }

    /// The shape's centre in image coordinates (0 to 1, y down): the largest shape
    /// (rotated any way) stays inside the image wherever it is.
    pub fn centre(&self) -> (f32, f32) {
        let margin = HALF_WIDTH * SCALE_RANGE.1 * std::f32::consts::SQRT_2;
        let place = |t: f32| margin + (1.0 - 2.0 * margin) * t;
        (place(self.x), place(self.y))
    }

    /// The colour at full coverage.
    pub fn rgb(&self) -> [f32; 3] {
        crate::colour::hue_rgb(self.hue)
    }
}

/// Whether the shape's local point `(u, v)` (the shape spans about [-1, 1] in each) is inside.
fn inside(shape: u8, u: f32, v: f32) -> bool {
    match shape {
        0 => u.abs() <= 0.85 && v.abs() <= 0.85,
        1 => u * u + v * v <= 1.0,
        2 => {
            // An equilateral triangle pointing up (v up), centred on its centroid.
            let h = 1.5;
            let base = -0.5;
            v >= base && v <= base + h && u.abs() <= (base + h - v) / 3f32.sqrt()
        }
        _ => {
            // The heart curve (x^2 + y^2 - 1)^3 <= x^2 y^3, scaled into [-1, 1].
            let (x, y) = (u * 1.2, v * 1.2 + 0.2);
            let a = x * x + y * y - 1.0;
            a * a * a <= x * x * y * y * y
        }
    }
}

/// The image of `f`: `size * size` pixels of RGB, row by row, each channel 0 to 255,
/// anti-aliased by supersampling.
pub fn render(f: &Factors, size: usize) -> Vec<u8> {
    let (cx, cy) = f.centre();
    let half = HALF_WIDTH * f.scale;
    let (sin, cos) = f.rotation.sin_cos();
    let colour = f.rgb();
    let mut out = vec![0u8; size * size * 3];
    let step = 1.0 / (size * SUPERSAMPLE) as f32;
    for row in 0..size {
        for col in 0..size {
            let mut hits = 0usize;
            for sy in 0..SUPERSAMPLE {
                for sx in 0..SUPERSAMPLE {
                    let px = (col * SUPERSAMPLE + sx) as f32 * step + step / 2.0;
                    let py = (row * SUPERSAMPLE + sy) as f32 * step + step / 2.0;
                    // To the shape's frame: centred, rotated back, unit half-width, v up.
                    let (dx, dy) = ((px - cx) / half, (cy - py) / half);
                    let (u, v) = (cos * dx + sin * dy, -sin * dx + cos * dy);
                    hits += usize::from(inside(f.shape, u, v));
                }
            }
            let coverage = hits as f32 / (SUPERSAMPLE * SUPERSAMPLE) as f32;
            let at = (row * size + col) * 3;
            for (o, c) in out[at..at + 3].iter_mut().zip(colour) {
                *o = (255.0 * c * coverage).round() as u8;
            }
        }
    }
    out
}

/// `n` images of [`SIZE`] x [`SIZE`] with independent factors drawn from `seed`: the RGB pixels
/// (image after image) and each image's factors.
pub fn generate(n: usize, seed: u64) -> (Vec<u8>, Vec<Factors>) {
    let mut rng = Rng::new(seed ^ 0x5AA9E5);
    let factors: Vec<Factors> = (0..n).map(|_| Factors::draw(&mut rng)).collect();
    let pixels = factors.iter().flat_map(|f| render(f, SIZE)).collect();
    (pixels, factors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn factors(shape: u8) -> Factors {
        Factors {
            shape,
            hue: 0.0,
            scale: 1.0,
            rotation: 0.0,
            x: 0.5,
            y: 0.5,
        }
    }

    /// Covered share of the image (by the red channel of a red shape).
    fn area(f: &Factors) -> f32 {
        let img = render(f, 64);
        img.chunks(3).map(|p| p[0] as f32 / 255.0).sum::<f32>() / (64.0 * 64.0)
    }

    #[test]
    fn the_same_seed_draws_the_same_images() {
        let (a, fa) = generate(20, 7);
        let (b, fb) = generate(20, 7);
        assert_eq!((a.len(), fa.len()), (20 * SIZE * SIZE * 3, 20));
        assert_ne!(generate(20, 8).1, fb);
        assert_eq!((a, fa), (b, fb));
    }

    #[test]
    fn shape_areas_match_their_closed_forms() {
        let side = 2.0 * HALF_WIDTH;
        // A square of half-width 0.85 h, a unit circle, an equilateral triangle of height 1.5 h.
        let square = (0.85 * side) * (0.85 * side);
        let circle = std::f32::consts::PI * HALF_WIDTH * HALF_WIDTH;
        let triangle = 1.5 * 1.5 / 3f32.sqrt() * HALF_WIDTH * HALF_WIDTH;
        for (shape, want) in [(0, square), (1, circle), (2, triangle)] {
            let got = area(&factors(shape));
            assert!(
                (got - want).abs() < 0.01 * want + 2e-3,
                "shape {shape}: {got} vs {want}"
            );
        }
        // The heart is neither of the others.
        let heart = area(&factors(3));
        assert!(heart > 0.05 && (heart - square).abs() > 0.01 && (heart - circle).abs() > 0.01);
    }

    #[test]
    fn scale_rotation_hue_and_position_do_what_they_say() {
        let base = factors(0);
        // Area goes with the square of the scale.
        let half = Factors { scale: 0.5, ..base };
        let ratio = area(&half) / area(&base);
        assert!((ratio - 0.25).abs() < 0.02, "{ratio}");
        // A square turned 45 degrees changes its pixels; a circle does not (beyond rounding).
        let turned = |f: Factors| Factors {
            rotation: std::f32::consts::FRAC_PI_4,
            ..f
        };
        assert_ne!(render(&base, SIZE), render(&turned(base), SIZE));
        let circle = factors(1);
        let diff: i32 = render(&circle, SIZE)
            .iter()
            .zip(render(&turned(circle), SIZE))
            .map(|(a, b)| (*a as i32 - b as i32).abs())
            .max()
            .unwrap();
        assert!(
            diff <= 60,
            "a circle is rotation invariant up to anti-aliasing: {diff}"
        );
        // Hue 1/3 is green.
        let green = render(
            &Factors {
                hue: 1.0 / 3.0,
                ..base
            },
            SIZE,
        );
        let sums = (0..3).map(|c| {
            green
                .iter()
                .skip(c)
                .step_by(3)
                .map(|&v| v as u32)
                .sum::<u32>()
        });
        let sums: Vec<u32> = sums.collect();
        assert!(sums[1] > 0 && sums[0] == 0 && sums[2] == 0, "{sums:?}");
        // x moves the centroid right, y moves it down.
        let centroid = |f: &Factors| {
            let img = render(f, SIZE);
            let (mut sx, mut sy, mut w) = (0.0, 0.0, 0.0);
            for (i, p) in img.chunks(3).enumerate() {
                let v = p[0] as f32;
                sx += v * (i % SIZE) as f32;
                sy += v * (i / SIZE) as f32;
                w += v;
            }
            (sx / w, sy / w)
        };
        let (x0, y0) = centroid(&Factors {
            x: 0.0,
            y: 0.0,
            ..base
        });
        let (x1, y1) = centroid(&Factors {
            x: 1.0,
            y: 1.0,
            ..base
        });
        assert!(x1 > x0 + 8.0 && y1 > y0 + 8.0, "{x0},{y0} -> {x1},{y1}");
    }

    #[test]
    fn the_largest_shape_stays_inside_the_image_wherever_it_is_and_however_turned() {
        for shape in 0..SHAPE_NAMES.len() as u8 {
            for (x, y) in [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)] {
                for k in 0..8 {
                    let f = Factors {
                        shape,
                        x,
                        y,
                        rotation: k as f32 * std::f32::consts::FRAC_PI_4,
                        ..factors(shape)
                    };
                    let full = area(&Factors {
                        x: 0.5,
                        y: 0.5,
                        ..f
                    });
                    let got = area(&f);
                    assert!((got - full).abs() < 0.002, "{f:?}: {got} vs {full}");
                }
            }
        }
    }

    #[test]
    fn factors_are_drawn_independently_and_cover_their_ranges() {
        let (_, fs) = generate(4000, 1);
        for s in 0..SHAPE_NAMES.len() as u8 {
            let share = fs.iter().filter(|f| f.shape == s).count() as f32 / 4000.0;
            assert!((share - 0.25).abs() < 0.03, "shape {s}: {share}");
        }
        let mean = |g: &dyn Fn(&Factors) -> f32| fs.iter().map(g).sum::<f32>() / 4000.0;
        assert!((mean(&|f| f.hue) - 0.5).abs() < 0.03);
        assert!((mean(&|f| f.x) - 0.5).abs() < 0.03);
        assert!((mean(&|f| f.scale) - 0.75).abs() < 0.02);
        // Independence: x does not predict y or the scale.
        let corr = |a: &dyn Fn(&Factors) -> f32, b: &dyn Fn(&Factors) -> f32| {
            let (ma, mb) = (mean(a), mean(b));
            let cov = mean(&|f| (a(f) - ma) * (b(f) - mb));
            let va = mean(&|f| (a(f) - ma).powi(2));
            let vb = mean(&|f| (b(f) - mb).powi(2));
            cov / (va * vb).sqrt()
        };
        assert!(corr(&|f| f.x, &|f| f.y).abs() < 0.05);
        assert!(corr(&|f| f.x, &|f| f.scale).abs() < 0.05);
    }
}
