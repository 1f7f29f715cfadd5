//! Convolutions on the CPU in the project's own pixel layout: images stay rows of interleaved
//! pixels (`[batch, h * w * c]`, channels last), so no layer permutes to burn's `[b, c, h, w]`
//! and back.
//!
//! A 2-D convolution and its transpose are one pair of maps between a *big* grid (the
//! convolution's input, the transpose's output) and a *small* one (the convolution's output,
//! the transpose's input): each small position sees a `kh x kw` window of big positions,
//! `big = small * stride - pad + tap`. With `P` the weights packed as a matrix
//! `[kh * kw * big channels, small channels]` and `patches(big)` the windows as rows
//! (im2col), and its adjoint `scatter` (col2im, adding where windows overlap):
//!
//! - convolution: `small = patches(big) P + b`; its input gradient `scatter(g P^T)`;
//! - transpose: `big = scatter(small P^T) + b`; its input gradient `patches(g) P`;
//! - weight gradient, both: `P' = patches(big)^T small` (with the gradient as one of the two).
//!
//! So three kernels serve both layers forward and backward ([`down`], [`up`],
//! [`patch_grad`]). Each runs over chunks of images in parallel, the windows of a chunk in a
//! reused per-thread buffer sized to stay in cache, the products through the `gemm` crate.
//! Group normalisation with its activation ([`group_norm`], [`group_norm_backward`]) works on
//! the same layout, one image's groups at a time.

use std::cell::RefCell;

use rayon::prelude::*;

use super::gemm::Operand;
use super::math;

/// `out (+)= a b` on the calling thread.
fn gemm_serial(out: &mut [f32], a: Operand<'_>, b: Operand<'_>, accumulate: bool) {
    super::gemm::gemm_serial(out, a, b, accumulate, gemm::Parallelism::None);
}

/// One convolution's geometry on channels-last images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    /// `[height, width, channels]` of the big grid (a convolution's input, a transpose's
    /// output after any crop).
    pub big: [usize; 3],
    /// `[height, width, channels]` of the small grid.
    pub small: [usize; 3],
    /// `[kh, kw]`.
    pub kernel: [usize; 2],
    /// The same stride along both sides.
    pub stride: usize,
    /// The same padding on every side.
    pub pad: usize,
}

impl ConvGeom {
    /// Values in one big image.
    pub fn big_len(&self) -> usize {
        self.big.iter().product()
    }

    /// Values in one small image.
    pub fn small_len(&self) -> usize {
        self.small.iter().product()
    }

    /// Positions in the small grid.
    fn positions(&self) -> usize {
        self.small[0] * self.small[1]
    }

    /// Values in one window (a row of the patch matrix).
    fn window(&self) -> usize {
        self.kernel[0] * self.kernel[1] * self.big[2]
    }

    /// Images per chunk: the chunk's windows fit in about `CHUNK_BYTES`.
    fn chunk(&self, batch: usize) -> usize {
        let per_image = self.positions() * self.window() * std::mem::size_of::<f32>();
        (chunk_bytes() / per_image.max(1)).clamp(1, batch.max(1))
    }
}

/// The size of a chunk's window buffer: `LATENT_ATLAS_CONV_CHUNK_KB` (read once) or
/// [`CHUNK_KB`].
fn chunk_bytes() -> usize {
    static BYTES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BYTES.get_or_init(|| {
        std::env::var("LATENT_ATLAS_CONV_CHUNK_KB")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(CHUNK_KB)
            .max(1)
            * 1024
    })
}

/// The default window buffer per chunk, in KiB (measured: see docs/command-line.md, the
/// convolutions' levers).
const CHUNK_KB: usize = 512;

thread_local! {
    /// Each thread's window buffer, kept between calls.
    static WINDOWS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's window buffer of at least `len` values (contents unspecified).
fn with_windows<T>(len: usize, f: impl FnOnce(&mut [f32]) -> T) -> T {
    WINDOWS.with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        f(&mut buf[..len])
    })
}

/// The weights `[small c, big c, kh, kw]` (burn's layout for both layers) as `P`, row-major
/// `[(ky, kx, big c), small c]`.
pub fn pack(weight: &[f32], g: &ConvGeom) -> Vec<f32> {
    let ([kh, kw], cb, cs) = (g.kernel, g.big[2], g.small[2]);
    assert_eq!(weight.len(), cs * cb * kh * kw, "conv: weight size");
    let mut p = vec![0.0f32; weight.len()];
    for o in 0..cs {
        for c in 0..cb {
            for ky in 0..kh {
                for kx in 0..kw {
                    p[((ky * kw + kx) * cb + c) * cs + o] =
                        weight[((o * cb + c) * kh + ky) * kw + kx];
                }
            }
        }
    }
    p
}

/// `P` back in burn's layout (the inverse of [`pack`]).
pub fn unpack(p: &[f32], g: &ConvGeom) -> Vec<f32> {
    let ([kh, kw], cb, cs) = (g.kernel, g.big[2], g.small[2]);
    let mut w = vec![0.0f32; p.len()];
    for o in 0..cs {
        for c in 0..cb {
            for ky in 0..kh {
                for kx in 0..kw {
                    w[((o * cb + c) * kh + ky) * kw + kx] = p[((ky * kw + kx) * cb + c) * cs + o];
                }
            }
        }
    }
    w
}

/// For each window row `(ky)` of small position `(sy, sx)`: the big row `iy` it reads and the
/// taps `lo..hi` that fall inside the image (`None` when the row is outside).
#[inline(always)]
fn span(g: &ConvGeom, sy: usize, sx: usize, ky: usize) -> Option<(usize, isize, usize, usize)> {
    let [bh, bw, _] = g.big;
    let kw = g.kernel[1];
    let iy = (sy * g.stride + ky) as isize - g.pad as isize;
    if iy < 0 || iy >= bh as isize {
        return None;
    }
    let x0 = (sx * g.stride) as isize - g.pad as isize;
    let lo = (-x0).clamp(0, kw as isize) as usize;
    let hi = (bw as isize - x0).clamp(0, kw as isize) as usize;
    Some((iy as usize, x0, lo, hi.max(lo)))
}

/// One big image's windows, one row per small position (im2col).
fn patches(big: &[f32], g: &ConvGeom, rows: &mut [f32]) {
    let [sh, sw, _] = g.small;
    let ([kh, kw], c, bw) = (g.kernel, g.big[2], g.big[1]);
    let k = g.window();
    for sy in 0..sh {
        for sx in 0..sw {
            let row = &mut rows[(sy * sw + sx) * k..][..k];
            for ky in 0..kh {
                let dst = &mut row[ky * kw * c..(ky + 1) * kw * c];
                match span(g, sy, sx, ky) {
                    None => dst.fill(0.0),
                    Some((iy, x0, lo, hi)) => {
                        dst[..lo * c].fill(0.0);
                        dst[hi * c..].fill(0.0);
                        if hi > lo {
                            let from = (iy * bw) as isize + x0 + lo as isize;
                            let from = from as usize * c;
                            dst[lo * c..hi * c].copy_from_slice(&big[from..from + (hi - lo) * c]);
                        }
                    }
                }
            }
        }
    }
}

/// Adds each window row back onto the big image it came from (col2im, the adjoint of
/// [`patches`]).
fn scatter(rows: &[f32], g: &ConvGeom, big: &mut [f32]) {
    let [sh, sw, _] = g.small;
    let ([kh, kw], c, bw) = (g.kernel, g.big[2], g.big[1]);
    let k = g.window();
    for sy in 0..sh {
        for sx in 0..sw {
            let row = &rows[(sy * sw + sx) * k..][..k];
            for ky in 0..kh {
                if let Some((iy, x0, lo, hi)) = span(g, sy, sx, ky)
                    && hi > lo
                {
                    let from = ((iy * bw) as isize + x0 + lo as isize) as usize * c;
                    let src = &row[ky * kw * c + lo * c..ky * kw * c + hi * c];
                    for (d, s) in big[from..from + src.len()].iter_mut().zip(src) {
                        *d += s;
                    }
                }
            }
        }
    }
}

fn fill_rows(out: &mut [f32], bias: Option<&[f32]>) {
    match bias {
        Some(b) => out
            .chunks_exact_mut(b.len())
            .for_each(|r| r.copy_from_slice(b)),
        None => out.fill(0.0),
    }
}

/// The convolution: `act(patches(big) P + bias)`, `[batch, big]` -> `[batch, small]`, where
/// `act` keeps positive values and scales the rest by `slope` (1: none).
pub fn down(big: &[f32], p: &[f32], bias: Option<&[f32]>, g: &ConvGeom, slope: f32) -> Vec<f32> {
    let (bl, sl) = (g.big_len(), g.small_len());
    let batch = big.len() / bl.max(1);
    assert_eq!(big.len(), batch * bl, "conv: input size");
    let (k, cs, n) = (g.window(), g.small[2], g.positions());
    let mut out = vec![0.0f32; batch * sl];
    if batch == 0 || sl == 0 {
        return out;
    }
    let chunk = g.chunk(batch);
    let pm = Operand::matrix(p, k, cs);
    let work = |(i, dst): (usize, &mut [f32])| {
        let images = dst.len() / sl;
        with_windows(images * n * k, |rows| {
            for j in 0..images {
                let src = &big[(i * chunk + j) * bl..][..bl];
                patches(src, g, &mut rows[j * n * k..(j + 1) * n * k]);
            }
            fill_rows(dst, bias);
            gemm_serial(dst, Operand::matrix(rows, images * n, k), pm, true);
        });
        if slope != 1.0 {
            math::activate(dst, 0, math::Curve::Piecewise, slope, 1.0, 0);
        }
    };
    over_chunks(&mut out, chunk * sl, batch * sl * k >= PARALLEL_MACS, work);
    out
}

/// The transpose: `scatter(small P^T) + bias`, `[batch, small]` -> `[batch, big]`.
pub fn up(small: &[f32], p: &[f32], bias: Option<&[f32]>, g: &ConvGeom) -> Vec<f32> {
    let (bl, sl) = (g.big_len(), g.small_len());
    let batch = small.len() / sl.max(1);
    assert_eq!(small.len(), batch * sl, "conv: input size");
    let (k, cs, n) = (g.window(), g.small[2], g.positions());
    let mut out = vec![0.0f32; batch * bl];
    if batch == 0 || bl == 0 {
        return out;
    }
    let chunk = g.chunk(batch);
    let pt = Operand::matrix(p, k, cs).t();
    let work = |(i, dst): (usize, &mut [f32])| {
        let images = dst.len() / bl;
        let first = i * chunk;
        let src = &small[first * sl..(first + images) * sl];
        with_windows(images * n * k, |rows| {
            gemm_serial(rows, Operand::matrix(src, images * n, cs), pt, false);
            fill_rows(dst, bias);
            for j in 0..images {
                scatter(
                    &rows[j * n * k..(j + 1) * n * k],
                    g,
                    &mut dst[j * bl..(j + 1) * bl],
                );
            }
        });
    };
    over_chunks(&mut out, chunk * bl, batch * sl * k >= PARALLEL_MACS, work);
    out
}

/// The packed weights' gradient, `patches(big)^T small` summed over the batch:
/// `[batch, big]`, `[batch, small]` -> `P'` `[(ky, kx, big c), small c]`.
pub fn patch_grad(big: &[f32], small: &[f32], g: &ConvGeom) -> Vec<f32> {
    let (bl, sl) = (g.big_len(), g.small_len());
    let batch = big.len() / bl.max(1);
    assert_eq!(small.len(), batch * sl, "conv: gradient size");
    let (k, cs, n) = (g.window(), g.small[2], g.positions());
    let chunk = g.chunk(batch);
    let chunks = batch.div_ceil(chunk);
    let work = |mut acc: Vec<f32>, i: usize| {
        let first = i * chunk;
        let images = chunk.min(batch - first);
        with_windows(images * n * k, |rows| {
            for j in 0..images {
                let src = &big[(first + j) * bl..][..bl];
                patches(src, g, &mut rows[j * n * k..(j + 1) * n * k]);
            }
            let s = &small[first * sl..(first + images) * sl];
            gemm_serial(
                &mut acc,
                Operand::matrix(rows, images * n, k).t(),
                Operand::matrix(s, images * n, cs),
                true,
            );
        });
        acc
    };
    let zero = || vec![0.0f32; k * cs];
    if batch * sl * k < PARALLEL_MACS {
        (0..chunks).fold(zero(), work)
    } else {
        (0..chunks)
            .into_par_iter()
            .fold(zero, work)
            .reduce(zero, |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            })
    }
}

/// `work` on each chunk of `len` values of `out` (the last may be shorter) with its index, in
/// parallel when `parallel`.
fn over_chunks(
    out: &mut [f32],
    len: usize,
    parallel: bool,
    work: impl Fn((usize, &mut [f32])) + Send + Sync,
) {
    if parallel {
        out.par_chunks_mut(len).enumerate().for_each(work);
    } else {
        out.chunks_mut(len).enumerate().for_each(work);
    }
}

/// Products below this many multiply-adds run on the calling thread.
const PARALLEL_MACS: usize = 1 << 20;

/// Group normalisation of channels-last images with an affine map and an activation:
/// per image and group of `channels / groups` channels, `(x - mean) / sqrt(var + eps)`, then
/// `gamma x + beta` per channel, then positive values kept and the rest scaled by `slope`.
/// `x` holds whole images of `image` values (pixels times channels).
pub fn group_norm(
    x: &[f32],
    image: usize,
    gamma: &[f32],
    beta: &[f32],
    groups: usize,
    eps: f32,
    slope: f32,
) -> Vec<f32> {
    let c = gamma.len();
    check_images(x.len(), image, c, groups);
    let mut out = vec![0.0f32; x.len()];
    let per_task = images_per_task(image);
    let work = |(src, dst): (&[f32], &mut [f32])| {
        let (mut scale, mut shift) = (vec![0.0f32; c], vec![0.0f32; c]);
        let mut m = Moments::new(c);
        for (src, dst) in src.chunks_exact(image).zip(dst.chunks_exact_mut(image)) {
            m.of(src, groups, eps);
            for ch in 0..c {
                scale[ch] = m.rstd[ch] * gamma[ch];
                shift[ch] = beta[ch] - m.mean[ch] * scale[ch];
            }
            math::scale_shift_act(src, &scale, &shift, slope, dst);
        }
    };
    if x.len() <= per_task * image {
        work((x, &mut out));
    } else {
        x.par_chunks(per_task * image)
            .zip(out.par_chunks_mut(per_task * image))
            .for_each(work);
    }
    out
}

/// The gradient of [`group_norm`] from its input `x`, its output `y` and the upstream
/// gradient: `[x's gradient..., gamma's (c values), beta's (c values)]` in one buffer.
#[allow(clippy::too_many_arguments)]
pub fn group_norm_backward(
    x: &[f32],
    image: usize,
    y: &[f32],
    grad: &[f32],
    gamma: &[f32],
    groups: usize,
    eps: f32,
    slope: f32,
) -> Vec<f32> {
    let c = gamma.len();
    check_images(x.len(), image, c, groups);
    let cg = c / groups;
    let count = (image / c * cg) as f32;
    let mut packed = vec![0.0f32; x.len() + 2 * c];
    let (dx, params) = packed.split_at_mut(x.len());
    let per_task = images_per_task(image);
    let partial = |(i, dst): (usize, &mut [f32])| {
        let mut acc = vec![0.0f32; 2 * c];
        let (mut sum_g, mut sum_gx) = (vec![0.0f32; c], vec![0.0f32; c]);
        let mut coef = vec![[0.0f32; 3]; c];
        let mut m = Moments::new(c);
        let first = i * per_task * image;
        for (j, dst) in dst.chunks_exact_mut(image).enumerate() {
            let span = first + j * image..first + (j + 1) * image;
            let (xs, ys, gs) = (&x[span.clone()], &y[span.clone()], &grad[span]);
            m.of(xs, groups, eps);
            math::norm_grad_sums(xs, ys, gs, &m.mean, &m.rstd, slope, &mut sum_g, &mut sum_gx);
            for ch in 0..c {
                acc[ch] += sum_gx[ch];
                acc[c + ch] += sum_g[ch];
            }
            for gi in 0..groups {
                let span = gi * cg..(gi + 1) * cg;
                let m1: f32 = span.clone().map(|ch| gamma[ch] * sum_g[ch]).sum::<f32>() / count;
                let m2: f32 = span.clone().map(|ch| gamma[ch] * sum_gx[ch]).sum::<f32>() / count;
                for ch in span {
                    let r = m.rstd[ch];
                    coef[ch] = [r * gamma[ch], r * m1, r * m2];
                }
            }
            math::norm_grad_input(xs, ys, gs, &m.mean, &m.rstd, &coef, slope, dst);
        }
        acc
    };
    let add = |mut a: Vec<f32>, b: Vec<f32>| {
        a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
        a
    };
    let sums = if x.len() <= per_task * image {
        partial((0, dx))
    } else {
        dx.par_chunks_mut(per_task * image)
            .enumerate()
            .map(partial)
            .reduce(|| vec![0.0f32; 2 * c], add)
    };
    params.copy_from_slice(&sums);
    packed
}

fn check_images(len: usize, image: usize, channels: usize, groups: usize) {
    assert!(
        channels > 0 && image > 0 && image.is_multiple_of(channels) && len.is_multiple_of(image),
        "group norm: whole images of whole pixels"
    );
    assert!(
        groups > 0 && channels.is_multiple_of(groups),
        "group norm: whole groups"
    );
}

/// Images per parallel task: enough values to be worth a thread.
fn images_per_task(image: usize) -> usize {
    (1usize << 15).div_ceil(image.max(1)).max(1)
}

/// One image's group statistics, spread to its channels: each channel's group mean and
/// `1 / sqrt(var + eps)` (two passes over the image, per-channel sums then groups).
struct Moments {
    mean: Vec<f32>,
    rstd: Vec<f32>,
    sums: Vec<f32>,
}

impl Moments {
    fn new(c: usize) -> Self {
        Self {
            mean: vec![0.0; c],
            rstd: vec![0.0; c],
            sums: vec![0.0; c],
        }
    }

    fn of(&mut self, image: &[f32], groups: usize, eps: f32) {
        let c = self.mean.len();
        let cg = c / groups;
        let count = (image.len() / c * cg) as f64;
        let spread = |sums: &[f32], out: &mut [f32], f: &dyn Fn(f64) -> f32| {
            for (s, o) in sums.chunks_exact(cg).zip(out.chunks_exact_mut(cg)) {
                let v = f(s.iter().map(|&v| v as f64).sum::<f64>() / count);
                o.fill(v);
            }
        };
        math::channel_moment(image, None, &mut self.sums);
        spread(&self.sums, &mut self.mean, &|m| m as f32);
        math::channel_moment(image, Some(&self.mean), &mut self.sums);
        spread(&self.sums, &mut self.rstd, &|v| {
            (1.0 / (v + eps as f64).sqrt()) as f32
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize, salt: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919 + salt * 104_729) % 2003) as f32 / 1001.5 - 1.0)
            .collect()
    }

    fn geoms() -> Vec<ConvGeom> {
        let g =
            |big: [usize; 3], small: [usize; 3], k: usize, stride: usize, pad: usize| ConvGeom {
                big,
                small,
                kernel: [k, k],
                stride,
                pad,
            };
        vec![
            g([28, 28, 1], [14, 14, 32], 4, 2, 1),
            g([7, 9, 3], [3, 4, 5], 4, 2, 1),
            g([5, 5, 2], [5, 5, 3], 3, 1, 1),
            // A transposed convolution's output cropped from 8 x 8 to 7 x 5.
            g([7, 5, 3], [4, 4, 2], 4, 2, 1),
        ]
    }

    /// The convolution written out: `small[sy, sx, o] = b[o] + sum w[o, c, ky, kx] big[..]`.
    fn direct(big: &[f32], w: &[f32], b: &[f32], g: &ConvGeom) -> Vec<f32> {
        let ([bh, bw, cb], [sh, sw, cs], [kh, kw]) = (g.big, g.small, g.kernel);
        let mut out = vec![0.0f32; sh * sw * cs];
        for sy in 0..sh {
            for sx in 0..sw {
                for o in 0..cs {
                    let mut acc = b[o] as f64;
                    for c in 0..cb {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (sy * g.stride + ky) as isize - g.pad as isize;
                                let ix = (sx * g.stride + kx) as isize - g.pad as isize;
                                if iy < 0 || ix < 0 || iy >= bh as isize || ix >= bw as isize {
                                    continue;
                                }
                                let v = big[(iy as usize * bw + ix as usize) * cb + c];
                                acc += (w[((o * cb + c) * kh + ky) * kw + kx] * v) as f64;
                            }
                        }
                    }
                    out[(sy * sw + sx) * cs + o] = acc as f32;
                }
            }
        }
        out
    }

    #[test]
    fn the_convolution_matches_the_sum_written_out() {
        for (i, g) in geoms().iter().enumerate() {
            let batch = 2;
            let big = pattern(batch * g.big_len(), i);
            let w = pattern(g.small[2] * g.big[2] * g.kernel[0] * g.kernel[1], i + 1);
            let b = pattern(g.small[2], i + 2);
            let got = down(&big, &pack(&w, g), Some(&b), g, 1.0);
            for n in 0..batch {
                let want = direct(&big[n * g.big_len()..(n + 1) * g.big_len()], &w, &b, g);
                let part = &got[n * g.small_len()..(n + 1) * g.small_len()];
                for (a, e) in part.iter().zip(&want) {
                    assert!((a - e).abs() < 1e-4, "{g:?}: {a} against {e}");
                }
            }
            // Leaky ReLU on top keeps positives and scales negatives.
            let leaky = down(&big, &pack(&w, g), Some(&b), g, 0.2);
            for (l, v) in leaky.iter().zip(&got) {
                assert!((l - if *v > 0.0 { *v } else { 0.2 * v }).abs() < 1e-6);
            }
        }
    }

    /// `<down(x), y> = <x, up(y)>` and `<down(x), y> = <P, patch_grad(x, y)>`: the transpose
    /// and the weight gradient are the convolution's adjoints.
    #[test]
    fn the_transpose_and_the_weight_gradient_are_adjoints() {
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x * y) as f64).sum::<f64>();
        for (i, g) in geoms().iter().enumerate() {
            let batch = 3;
            let x = pattern(batch * g.big_len(), i + 3);
            let y = pattern(batch * g.small_len(), i + 4);
            let w = pattern(g.small[2] * g.big[2] * g.kernel[0] * g.kernel[1], i + 5);
            let p = pack(&w, g);
            let lhs = dot(&down(&x, &p, None, g, 1.0), &y);
            let rhs = dot(&x, &up(&y, &p, None, g));
            assert!(
                (lhs - rhs).abs() < 1e-3 * lhs.abs().max(1.0),
                "{g:?}: {lhs} vs {rhs}"
            );
            let by_weights = dot(&p, &patch_grad(&x, &y, g));
            assert!((lhs - by_weights).abs() < 1e-3 * lhs.abs().max(1.0));
            assert_eq!(unpack(&p, g), w, "unpack undoes pack");
        }
    }

    #[test]
    fn group_norm_normalises_each_image_and_group() {
        let (c, pixels, groups, batch) = (4, 6, 2, 2);
        let x: Vec<f32> = pattern(batch * pixels * c, 9)
            .iter()
            .map(|v| 3.0 * v + 1.0)
            .collect();
        let y = group_norm(&x, pixels * c, &[1.0; 4], &[0.0; 4], groups, 1e-5, 1.0);
        for image in y.chunks_exact(pixels * c) {
            for gi in 0..groups {
                let vals: Vec<f32> = image
                    .chunks_exact(c)
                    .flat_map(|px| px[gi * 2..gi * 2 + 2].to_vec())
                    .collect();
                let mean = vals.iter().sum::<f32>() / vals.len() as f32;
                let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / vals.len() as f32;
                assert!(
                    mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-3,
                    "{mean} {var}"
                );
            }
        }
    }
}
