//! The kernels on the flex backend: each fused pass over `f32` rows, split across threads
//! by rows where the matrix is large.

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, TensorData};
use rayon::prelude::*;

use super::{Curve, FusedOps};
use crate::conv::{self, ConvGeom};
use crate::gemm::{Operand, gemm_new, rows_cols};
use crate::{flex, math};

/// Rows above this many elements in total are split across threads.
const PARALLEL_ELEMENTS: usize = 1 << 14;

/// The elements of a flex tensor in row-major order (copied only when not contiguous).
fn contiguous(t: FlexTensor) -> FlexTensor {
    assert_eq!(t.dtype(), DType::F32, "the fused kernels take f32");
    if flex::plain(&t) {
        t
    } else {
        t.to_contiguous()
    }
}

impl FusedOps for Flex {
    fn bernoulli_nll(logits: FlexTensor, x: FlexTensor) -> FlexTensor {
        let (logits, x) = (contiguous(logits), contiguous(x));
        let (rows, cols) = rows_cols(&logits);
        assert_eq!(
            rows_cols(&x),
            (rows, cols),
            "logits and targets differ in shape"
        );
        let (l, t) = (logits.storage::<f32>(), x.storage::<f32>());
        let row = |i: usize| {
            let mut sum = 0.0;
            let span = i * cols..(i + 1) * cols;
            math::bernoulli_nll_row(&l[span.clone()], &t[span], &mut sum);
            sum
        };
        let out: Vec<f32> = if rows * cols >= PARALLEL_ELEMENTS {
            (0..rows).into_par_iter().map(row).collect()
        } else {
            (0..rows).map(row).collect()
        };
        FlexTensor::from_data(TensorData::new(out, [rows]))
    }

    fn bernoulli_nll_backward(logits: FlexTensor, x: FlexTensor, grad: FlexTensor) -> FlexTensor {
        let (logits, x, grad) = (contiguous(logits), contiguous(x), contiguous(grad));
        let (rows, cols) = rows_cols(&logits);
        let g = grad.storage::<f32>();
        assert_eq!(g.len(), rows, "one upstream gradient per row");
        let (l, t) = (logits.storage::<f32>(), x.storage::<f32>());
        let mut out = vec![0.0f32; rows * cols];
        let fill = |(i, out): (usize, &mut [f32])| {
            let span = i * cols..(i + 1) * cols;
            math::bernoulli_nll_grad_row(&l[span.clone()], &t[span], g[i], out);
        };
        if rows * cols >= PARALLEL_ELEMENTS {
            out.par_chunks_mut(cols.max(1)).enumerate().for_each(fill);
        } else {
            out.chunks_mut(cols.max(1)).enumerate().for_each(fill);
        }
        FlexTensor::from_data(TensorData::new(out, [rows, cols]))
    }

    fn dense(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        curve: Curve,
        slope: f32,
        keep: f32,
        seed: u32,
    ) -> FlexTensor {
        let (x, weight) = (forward_strides(x), forward_strides(weight));
        let (rows, inputs) = rows_cols(&x);
        let (w_in, outputs) = rows_cols(&weight);
        assert_eq!(inputs, w_in, "linear: input width and weight rows differ");
        let bias = contiguous(bias);
        let b = bias.storage::<f32>();
        assert_eq!(b.len(), outputs, "linear: one bias per output");
        // Each band of rows starts as the bias, takes the product onto it and applies the
        // activation while it is in cache: one parallel pass in all.
        let act = move |chunk: &mut [f32], first: usize| {
            math::activate(chunk, first as u32, curve, slope, keep, seed);
        };
        let out = gemm_new(
            Operand::of(&x, false),
            Operand::of(&weight, false),
            Some(b),
            Some(&act),
        );
        FlexTensor::from_data(TensorData::new(out, [rows, outputs]))
    }

    fn activation_backward(
        y: FlexTensor,
        grad: FlexTensor,
        curve: Curve,
        slope: f32,
        keep: f32,
    ) -> FlexTensor {
        if curve == Curve::Piecewise && slope == 1.0 && keep == 1.0 {
            return grad;
        }
        let y = contiguous(y);
        // In place when the gradient is ours alone, as it is in a backward pass. One cheap
        // pass, on one thread: waking another costs about as much.
        let mut grad = contiguous(grad);
        math::activation_grad(
            grad.storage_mut::<f32>(),
            y.storage::<f32>(),
            curve,
            slope,
            keep,
        );
        grad
    }

    fn gemm(a: FlexTensor, b: FlexTensor, transpose_a: bool, transpose_b: bool) -> FlexTensor {
        let (a, b) = (forward_strides(a), forward_strides(b));
        let (a, b) = (Operand::of(&a, transpose_a), Operand::of(&b, transpose_b));
        assert_eq!(a.cols, b.rows, "gemm: inner dimensions differ");
        let (m, n) = (a.rows, b.cols);
        let out = gemm_new(a, b, None, None);
        FlexTensor::from_data(TensorData::new(out, [m, n]))
    }

    fn conv_down(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        add_bias: bool,
        geom: ConvGeom,
        slope: f32,
    ) -> FlexTensor {
        let (x, weight) = (contiguous(x), contiguous(weight));
        let bias = add_bias.then(|| contiguous(bias));
        let batch = rows_cols(&x).0;
        let p = conv::pack(weight.storage::<f32>(), &geom);
        let out = conv::down(
            x.storage::<f32>(),
            &p,
            bias.as_ref().map(|b| b.storage::<f32>()),
            &geom,
            slope,
        );
        FlexTensor::from_data(TensorData::new(out, [batch, geom.small_len()]))
    }

    fn conv_up(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        add_bias: bool,
        geom: ConvGeom,
    ) -> FlexTensor {
        let (x, weight) = (contiguous(x), contiguous(weight));
        let bias = add_bias.then(|| contiguous(bias));
        let batch = rows_cols(&x).0;
        let p = conv::pack(weight.storage::<f32>(), &geom);
        let out = conv::up(
            x.storage::<f32>(),
            &p,
            bias.as_ref().map(|b| b.storage::<f32>()),
            &geom,
        );
        FlexTensor::from_data(TensorData::new(out, [batch, geom.big_len()]))
    }

    fn conv_weight_grad(big: FlexTensor, small: FlexTensor, geom: ConvGeom) -> FlexTensor {
        let (big, small) = (contiguous(big), contiguous(small));
        let p = conv::patch_grad(big.storage::<f32>(), small.storage::<f32>(), &geom);
        let [kh, kw] = geom.kernel;
        FlexTensor::from_data(TensorData::new(
            conv::unpack(&p, &geom),
            [geom.small[2], geom.big[2], kh, kw],
        ))
    }

    fn group_norm(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        groups: usize,
        eps: f32,
        slope: f32,
    ) -> FlexTensor {
        let (x, gamma, beta) = (contiguous(x), contiguous(gamma), contiguous(beta));
        let (batch, image) = rows_cols(&x);
        let out = conv::group_norm(
            x.storage::<f32>(),
            image,
            gamma.storage::<f32>(),
            beta.storage::<f32>(),
            groups,
            eps,
            slope,
        );
        FlexTensor::from_data(TensorData::new(out, [batch, image]))
    }

    fn group_norm_backward(
        x: FlexTensor,
        y: FlexTensor,
        gamma: FlexTensor,
        grad: FlexTensor,
        groups: usize,
        eps: f32,
        slope: f32,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let (x, y, gamma, grad) = (
            contiguous(x),
            contiguous(y),
            contiguous(gamma),
            contiguous(grad),
        );
        let (batch, image) = rows_cols(&x);
        let c = gamma.storage::<f32>().len();
        let mut packed = conv::group_norm_backward(
            x.storage::<f32>(),
            image,
            y.storage::<f32>(),
            grad.storage::<f32>(),
            gamma.storage::<f32>(),
            groups,
            eps,
            slope,
        );
        let dbeta = packed.split_off(batch * image + c);
        let dgamma = packed.split_off(batch * image);
        (
            FlexTensor::from_data(TensorData::new(packed, [batch, image])),
            FlexTensor::from_data(TensorData::new(dgamma, [c])),
            FlexTensor::from_data(TensorData::new(dbeta, [c])),
        )
    }

    fn column_moments(x: FlexTensor) -> (FlexTensor, FlexTensor) {
        let x = contiguous(x);
        let (rows, cols) = rows_cols(&x);
        let x = x.storage::<f32>();
        let count = rows.max(1) as f32;
        let mut mean = vec![0.0f32; cols];
        let mut var = vec![0.0f32; cols];
        if cols > 0 {
            math::channel_moment(x, None, &mut mean);
            mean.iter_mut().for_each(|m| *m /= count);
            math::channel_moment(x, Some(&mean), &mut var);
            var.iter_mut().for_each(|v| *v /= count);
        }
        (
            FlexTensor::from_data(TensorData::new(mean, [cols])),
            FlexTensor::from_data(TensorData::new(var, [cols])),
        )
    }

    fn power_iteration(weight: FlexTensor, u: FlexTensor) -> (FlexTensor, FlexTensor, FlexTensor) {
        let (weight, u) = (contiguous(weight), contiguous(u));
        let (rows, cols) = rows_cols(&weight);
        let u = u.storage::<f32>();
        assert_eq!(u.len(), cols, "power iteration: one entry of u per column");
        let w = weight.storage::<f32>();
        let mut a = vec![0.0f32; rows];
        // Bands of rows in parallel, each with its own share of `t`, summed after.
        let band = row_band(rows, cols);
        let t = a
            .par_chunks_mut(band)
            .zip(w.par_chunks(band * cols.max(1)))
            .map(|(a, w)| {
                let mut t = vec![0.0f32; cols];
                math::power_rows(w, u, a, &mut t);
                t
            })
            .reduce(
                || vec![0.0f32; cols],
                |mut x, y| {
                    x.iter_mut().zip(&y).for_each(|(x, y)| *x += y);
                    x
                },
            );
        let norm = |x: &[f32]| x.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
        // v = a / (|a| + eps); W^T v = t / (|a| + eps); u' = W^T v / (|W^T v| + eps).
        let na = norm(&a) + 1e-12;
        let v: Vec<f32> = a.iter().map(|&x| (f64::from(x) / na) as f32).collect();
        let s = norm(&t) / na;
        let u_new: Vec<f32> = t
            .iter()
            .map(|&x| (f64::from(x) / na / (s + 1e-12)) as f32)
            .collect();
        // v^T W u' = |W^T v|^2 / (|W^T v| + eps).
        let sigma = (s * s / (s + 1e-12)) as f32;
        (
            FlexTensor::from_data(TensorData::new(v, [rows])),
            FlexTensor::from_data(TensorData::new(u_new, [cols])),
            FlexTensor::from_data(TensorData::new(vec![sigma], [1])),
        )
    }

    fn spectral_scale(
        weight: FlexTensor,
        _v: FlexTensor,
        _u: FlexTensor,
        sigma: FlexTensor,
    ) -> FlexTensor {
        let weight = contiguous(weight);
        let shape = weight.layout().shape().clone();
        let sigma = contiguous(sigma).storage::<f32>()[0];
        let w = weight.storage::<f32>();
        let scale = 1.0 / sigma;
        // Written once, without zeroing the new buffer first.
        let out: Vec<f32> = w
            .par_iter()
            .with_min_len(PARALLEL_ELEMENTS)
            .map(|&v| v * scale)
            .collect();
        FlexTensor::from_data(TensorData::new(out, shape))
    }

    fn spectral_scale_backward(
        weight: FlexTensor,
        v: FlexTensor,
        u: FlexTensor,
        sigma: FlexTensor,
        grad: FlexTensor,
    ) -> FlexTensor {
        let (weight, v, u) = (contiguous(weight), contiguous(v), contiguous(u));
        let mut grad = contiguous(grad);
        let (rows, cols) = rows_cols(&weight);
        assert_eq!(
            rows_cols(&grad),
            (rows, cols),
            "spectral norm: gradient shape"
        );
        let sigma = contiguous(sigma).storage::<f32>()[0];
        let (v, u) = (v.storage::<f32>(), u.storage::<f32>());
        let band = row_band(rows, cols) * cols.max(1);
        let inner: f32 = weight
            .storage::<f32>()
            .par_chunks(band)
            .zip(grad.storage::<f32>().par_chunks(band))
            .map(|(w, g)| {
                let mut d = 0.0f32;
                math::dot(w, g, &mut d);
                d
            })
            .sum();
        // dW = G / sigma - (<G, W> / sigma^2) v u^T, row by row in place.
        let c = inner / (sigma * sigma);
        let g = grad.storage_mut::<f32>();
        g.par_chunks_mut(band)
            .zip(v.par_chunks(band / cols.max(1)))
            .for_each(|(g, v)| {
                for (row, &vi) in g.chunks_exact_mut(cols.max(1)).zip(v) {
                    math::scale_sub_scaled(row, 1.0 / sigma, c * vi, u);
                }
            });
        grad
    }
}

/// Rows per parallel band of a `[rows, cols]` pass: one band per thread when the matrix is
/// large enough to be worth waking them, all rows otherwise.
fn row_band(rows: usize, cols: usize) -> usize {
    let rows = rows.max(1);
    if rows * cols < 4 * PARALLEL_ELEMENTS {
        return rows;
    }
    rows.div_ceil(rayon::current_num_threads().max(1))
}

/// `t` itself when its strides are all non-negative (any view the product can read in place),
/// otherwise a contiguous copy (a flipped view, say).
fn forward_strides(t: FlexTensor) -> FlexTensor {
    if t.layout().strides().iter().all(|&s| s >= 0) {
        t
    } else {
        t.to_contiguous()
    }
}
