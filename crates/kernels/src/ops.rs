//! Fused operations with hand-written gradients, as a burn backend extension: implemented for
//! the flex backend, and for burn's autodiff decorator over it (forward on the inner backend,
//! backward through the `_backward` kernels). The public functions take ordinary tensors and
//! route to the fused kernel only for flex `f32` tensors; anything else gets the same value
//! from composed tensor operations, so every backend stays supported.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::nn::{BatchNorm, GroupNorm};
use burn::tensor::activation::log_sigmoid;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

use super::conv::{self, ConvGeom};
use super::gemm::{Operand, gemm_new, rows_cols};
use super::{flex, math};

/// The extension's kernels.
#[backend_extension(Flex, Autodiff)]
pub trait FusedOps: Backend {
    /// Bernoulli negative log-likelihood with logits, summed over each row:
    /// `sum_j softplus(l_ij) - x_ij l_ij`, `[rows, cols]` -> `[rows]`.
    fn bernoulli_nll(logits: FloatTensor<Self>, x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Its gradient with respect to the logits for an upstream gradient `grad` `[rows]`:
    /// `(sigmoid(l_ij) - x_ij) grad_i`, `[rows, cols]`.
    fn bernoulli_nll_backward(
        logits: FloatTensor<Self>,
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// A dense layer `drop(act(x w + b))`, `x` `[rows, in]`, `w` `[in, out]`, `b` `[out]`:
    /// `act` is the sigmoid when `sigmoid` is set, otherwise `v` for `v > 0` and `slope v`
    /// elsewhere (0: ReLU, 1: none, 0.2: leaky ReLU); `drop` keeps each output with
    /// probability `keep`, scaled by `1 / keep`, from a hash of `seed` and its position.
    fn dense(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        sigmoid: bool,
        slope: f32,
        keep: f32,
        seed: u32,
    ) -> FloatTensor<Self>;

    /// The layer's gradient at the pre-activation, from its output `y` alone.
    fn activation_backward(
        y: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        sigmoid: bool,
        slope: f32,
        keep: f32,
    ) -> FloatTensor<Self>;

    /// `op(a) op(b)` with `op` the transpose where asked (a view, never a copy).
    fn gemm(
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        transpose_a: bool,
        transpose_b: bool,
    ) -> FloatTensor<Self>;

    /// A convolution of channels-last images (`conv::down`): `x` `[batch, big]`, `weight`
    /// `[small c, big c, kh, kw]`, `bias` `[small c]` (added only with `add_bias`; any tensor
    /// otherwise), then the activation with `slope` (1: none) -> `[batch, small]`.
    fn conv_down(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        add_bias: bool,
        geom: ConvGeom,
        slope: f32,
    ) -> FloatTensor<Self>;

    /// A transposed convolution (`conv::up`): `x` `[batch, small]`, `weight`
    /// `[small c, big c, kh, kw]`, `bias` `[big c]` (added only with `add_bias`) ->
    /// `[batch, big]`.
    fn conv_up(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        add_bias: bool,
        geom: ConvGeom,
    ) -> FloatTensor<Self>;

    /// The weights' gradient of either layer, `[small c, big c, kh, kw]`, from the big side
    /// `[batch, big]` and the small side `[batch, small]` (one of them the upstream gradient).
    fn conv_weight_grad(
        big: FloatTensor<Self>,
        small: FloatTensor<Self>,
        geom: ConvGeom,
    ) -> FloatTensor<Self>;

    /// Group norm of channels-last images with an affine map and the activation with `slope`:
    /// `x` `[batch, pixels * c]`, `gamma` and `beta` `[c]`.
    fn group_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        eps: f32,
        slope: f32,
    ) -> FloatTensor<Self>;

    /// Its gradients for `x`, `gamma` and `beta`, from the input, the output and the upstream
    /// gradient.
    fn group_norm_backward(
        x: FloatTensor<Self>,
        y: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        groups: usize,
        eps: f32,
        slope: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// Per-column mean and biased variance of `x` `[rows, cols]`, `[cols]` each: a batch
    /// norm's statistics. Not differentiable.
    fn column_moments(x: FloatTensor<Self>) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// One step of power iteration towards the largest singular value of `weight`
    /// `[in, out]` from `u` `[out]` (unit length): `v = W u / |W u|` `[in]`,
    /// `u' = W^T v / |W^T v|` `[out]` and `sigma = v^T W u'` `[1]`. Not differentiable.
    fn power_iteration(
        weight: FloatTensor<Self>,
        u: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// `W / sigma` for `sigma` `[1]` from [`FusedOps::power_iteration`], differentiated as
    /// `sigma = v^T W u` with `v` and `u` held (Miyato et al.'s gradient).
    fn spectral_scale(
        weight: FloatTensor<Self>,
        v: FloatTensor<Self>,
        u: FloatTensor<Self>,
        sigma: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// Its gradient for the upstream gradient `G`: `(G - <G, W> / sigma v u^T) / sigma`.
    fn spectral_scale_backward(
        weight: FloatTensor<Self>,
        v: FloatTensor<Self>,
        u: FloatTensor<Self>,
        sigma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

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
        sigmoid: bool,
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
            math::activate(chunk, first as u32, sigmoid, slope, keep, seed);
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
        sigmoid: bool,
        slope: f32,
        keep: f32,
    ) -> FlexTensor {
        if !sigmoid && slope == 1.0 && keep == 1.0 {
            return grad;
        }
        let y = contiguous(y);
        // In place when the gradient is ours alone, as it is in a backward pass. One cheap
        // pass, on one thread: waking another costs about as much.
        let mut grad = contiguous(grad);
        math::activation_grad(
            grad.storage_mut::<f32>(),
            y.storage::<f32>(),
            sigmoid,
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

/// Three of a kind.
type Three<T> = (T, T, T);

/// Three results of the inner backend as untracked tensors of the autodiff one (for the
/// kernels that are not differentiable themselves).
fn untracked3<B: FusedOps, C: CheckpointStrategy>(
    (a, b, c): Three<FloatTensor<B>>,
) -> Three<FloatTensor<Autodiff<B, C>>> {
    (
        <FloatTensor<Autodiff<B, C>>>::new(a),
        <FloatTensor<Autodiff<B, C>>>::new(b),
        <FloatTensor<Autodiff<B, C>>>::new(c),
    )
}

impl<B: FusedOps, C: CheckpointStrategy> FusedOps for Autodiff<B, C> {
    fn bernoulli_nll(logits: FloatTensor<Self>, x: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct BernoulliNll;

        impl<B: FusedOps> Backward<B, 2> for BernoulliNll {
            type State = (FloatTensor<B>, FloatTensor<B>);

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node_logits, node_x] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (logits, x) = ops.state;
                if let Some(node) = node_x {
                    // d/dx = -l, per row's upstream gradient (targets are data in this
                    // project; this keeps the operation correct if they are not).
                    let rows = grad.shape()[0];
                    let g = B::float_reshape(grad.clone(), [rows, 1].into());
                    grads.register::<B>(node.id, B::float_mul(B::float_neg(logits.clone()), g));
                }
                if let Some(node) = node_logits {
                    grads.register::<B>(node.id, B::bernoulli_nll_backward(logits, x, grad));
                }
            }
        }

        match BernoulliNll
            .prepare::<C>([logits.node(), x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let out = B::bernoulli_nll(logits.primitive().clone(), x.primitive().clone());
                prep.finish((logits.into_primitive(), x.into_primitive()), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::bernoulli_nll(
                logits.into_primitive(),
                x.into_primitive(),
            )),
        }
    }

    fn bernoulli_nll_backward(
        logits: FloatTensor<Self>,
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        // Used inside backward passes only: not differentiable itself.
        <FloatTensor<Self>>::new(B::bernoulli_nll_backward(
            logits.into_primitive(),
            x.into_primitive(),
            grad.into_primitive(),
        ))
    }

    fn dense(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        sigmoid: bool,
        slope: f32,
        keep: f32,
        seed: u32,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Linear;

        impl<B: FusedOps> Backward<B, 3> for Linear {
            /// The input, the weight, the output and the activation (sigmoid, slope, keep).
            type State = (
                FloatTensor<B>,
                FloatTensor<B>,
                FloatTensor<B>,
                (bool, f32, f32),
            );

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_w, node_b] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x, w, y, (sigmoid, slope, keep)) = ops.state;
                let g = B::activation_backward(y, grad, sigmoid, slope, keep);
                if let Some(node) = node_b {
                    let outputs = g.shape()[1];
                    let sums = B::float_sum_dim(g.clone(), 0);
                    grads.register::<B>(node.id, B::float_reshape(sums, [outputs].into()));
                }
                if let Some(node) = node_w {
                    grads.register::<B>(node.id, B::gemm(x, g.clone(), true, false));
                }
                if let Some(node) = node_x {
                    grads.register::<B>(node.id, B::gemm(g, w, false, true));
                }
            }
        }

        match Linear
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = B::dense(
                    x.primitive().clone(),
                    weight.primitive().clone(),
                    bias.into_primitive(),
                    sigmoid,
                    slope,
                    keep,
                    seed,
                );
                let act = (sigmoid, slope, keep);
                prep.finish(
                    (x.into_primitive(), weight.into_primitive(), y.clone(), act),
                    y,
                )
            }
            OpsKind::UnTracked(prep) => prep.finish(B::dense(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
                sigmoid,
                slope,
                keep,
                seed,
            )),
        }
    }

    fn activation_backward(
        y: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        sigmoid: bool,
        slope: f32,
        keep: f32,
    ) -> FloatTensor<Self> {
        <FloatTensor<Self>>::new(B::activation_backward(
            y.into_primitive(),
            grad.into_primitive(),
            sigmoid,
            slope,
            keep,
        ))
    }

    fn gemm(
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        transpose_a: bool,
        transpose_b: bool,
    ) -> FloatTensor<Self> {
        <FloatTensor<Self>>::new(B::gemm(
            a.into_primitive(),
            b.into_primitive(),
            transpose_a,
            transpose_b,
        ))
    }

    fn conv_down(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        add_bias: bool,
        geom: ConvGeom,
        slope: f32,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct ConvDown;

        impl<B: FusedOps> Backward<B, 3> for ConvDown {
            /// The input, the weights, the output, the geometry and the activation's slope.
            type State = (
                FloatTensor<B>,
                FloatTensor<B>,
                FloatTensor<B>,
                ConvGeom,
                f32,
            );

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_w, node_b] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x, w, y, geom, slope) = ops.state;
                let g = B::activation_backward(y, grad, false, slope, 1.0);
                if let Some(node) = node_b {
                    grads.register::<B>(node.id, channel_sums::<B>(g.clone(), geom.small[2]));
                }
                if let Some(node) = node_w {
                    grads.register::<B>(node.id, B::conv_weight_grad(x, g.clone(), geom));
                }
                if let Some(node) = node_x {
                    let unused = w.clone();
                    grads.register::<B>(node.id, B::conv_up(g, w, unused, false, geom));
                }
            }
        }

        assert!(add_bias, "the differentiable convolution takes its bias");
        match ConvDown
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = B::conv_down(
                    x.primitive().clone(),
                    weight.primitive().clone(),
                    bias.into_primitive(),
                    true,
                    geom,
                    slope,
                );
                prep.finish(
                    (
                        x.into_primitive(),
                        weight.into_primitive(),
                        y.clone(),
                        geom,
                        slope,
                    ),
                    y,
                )
            }
            OpsKind::UnTracked(prep) => prep.finish(B::conv_down(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
                true,
                geom,
                slope,
            )),
        }
    }

    fn conv_up(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        add_bias: bool,
        geom: ConvGeom,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct ConvUp;

        impl<B: FusedOps> Backward<B, 3> for ConvUp {
            /// The input, the weights and the geometry.
            type State = (FloatTensor<B>, FloatTensor<B>, ConvGeom);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_w, node_b] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x, w, geom) = ops.state;
                if let Some(node) = node_b {
                    grads.register::<B>(node.id, channel_sums::<B>(grad.clone(), geom.big[2]));
                }
                if let Some(node) = node_w {
                    grads.register::<B>(node.id, B::conv_weight_grad(grad.clone(), x, geom));
                }
                if let Some(node) = node_x {
                    let unused = w.clone();
                    grads.register::<B>(node.id, B::conv_down(grad, w, unused, false, geom, 1.0));
                }
            }
        }

        assert!(
            add_bias,
            "the differentiable transposed convolution takes its bias"
        );
        match ConvUp
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = B::conv_up(
                    x.primitive().clone(),
                    weight.primitive().clone(),
                    bias.into_primitive(),
                    true,
                    geom,
                );
                prep.finish((x.into_primitive(), weight.into_primitive(), geom), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::conv_up(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
                true,
                geom,
            )),
        }
    }

    fn conv_weight_grad(
        big: FloatTensor<Self>,
        small: FloatTensor<Self>,
        geom: ConvGeom,
    ) -> FloatTensor<Self> {
        // Used inside backward passes only: not differentiable itself.
        <FloatTensor<Self>>::new(B::conv_weight_grad(
            big.into_primitive(),
            small.into_primitive(),
            geom,
        ))
    }

    fn group_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        eps: f32,
        slope: f32,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct GroupNorm;

        impl<B: FusedOps> Backward<B, 3> for GroupNorm {
            /// The input, the output, gamma, and (groups, eps, slope).
            type State = (
                FloatTensor<B>,
                FloatTensor<B>,
                FloatTensor<B>,
                (usize, f32, f32),
            );

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_gamma, node_beta] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x, y, gamma, (groups, eps, slope)) = ops.state;
                let (dx, dgamma, dbeta) =
                    B::group_norm_backward(x, y, gamma, grad, groups, eps, slope);
                if let Some(node) = node_x {
                    grads.register::<B>(node.id, dx);
                }
                if let Some(node) = node_gamma {
                    grads.register::<B>(node.id, dgamma);
                }
                if let Some(node) = node_beta {
                    grads.register::<B>(node.id, dbeta);
                }
            }
        }

        match GroupNorm
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = B::group_norm(
                    x.primitive().clone(),
                    gamma.primitive().clone(),
                    beta.into_primitive(),
                    groups,
                    eps,
                    slope,
                );
                prep.finish(
                    (
                        x.into_primitive(),
                        y.clone(),
                        gamma.into_primitive(),
                        (groups, eps, slope),
                    ),
                    y,
                )
            }
            OpsKind::UnTracked(prep) => prep.finish(B::group_norm(
                x.into_primitive(),
                gamma.into_primitive(),
                beta.into_primitive(),
                groups,
                eps,
                slope,
            )),
        }
    }

    fn group_norm_backward(
        x: FloatTensor<Self>,
        y: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        groups: usize,
        eps: f32,
        slope: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        // Used inside backward passes only: not differentiable itself.
        untracked3::<B, C>(B::group_norm_backward(
            x.into_primitive(),
            y.into_primitive(),
            gamma.into_primitive(),
            grad.into_primitive(),
            groups,
            eps,
            slope,
        ))
    }

    fn column_moments(x: FloatTensor<Self>) -> (FloatTensor<Self>, FloatTensor<Self>) {
        // Not differentiable: statistics for the running averages only.
        let (mean, var) = B::column_moments(x.into_primitive());
        (
            <FloatTensor<Self>>::new(mean),
            <FloatTensor<Self>>::new(var),
        )
    }

    fn power_iteration(
        weight: FloatTensor<Self>,
        u: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        // Not differentiable: the estimates are held constant.
        untracked3::<B, C>(B::power_iteration(
            weight.into_primitive(),
            u.into_primitive(),
        ))
    }

    fn spectral_scale(
        weight: FloatTensor<Self>,
        v: FloatTensor<Self>,
        u: FloatTensor<Self>,
        sigma: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct SpectralScale;

        impl<B: FusedOps> Backward<B, 1> for SpectralScale {
            /// The weight, v, u and sigma.
            type State = (
                FloatTensor<B>,
                FloatTensor<B>,
                FloatTensor<B>,
                FloatTensor<B>,
            );

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node_w] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (w, v, u, sigma) = ops.state;
                if let Some(node) = node_w {
                    let dw = B::spectral_scale_backward(w, v, u, sigma, grad);
                    grads.register::<B>(node.id, dw);
                }
            }
        }

        let (v, u, sigma) = (
            v.into_primitive(),
            u.into_primitive(),
            sigma.into_primitive(),
        );
        match SpectralScale
            .prepare::<C>([weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let out = B::spectral_scale(
                    weight.primitive().clone(),
                    v.clone(),
                    u.clone(),
                    sigma.clone(),
                );
                prep.finish((weight.into_primitive(), v, u, sigma), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::spectral_scale(weight.into_primitive(), v, u, sigma))
            }
        }
    }

    fn spectral_scale_backward(
        weight: FloatTensor<Self>,
        v: FloatTensor<Self>,
        u: FloatTensor<Self>,
        sigma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        // Used inside backward passes only: not differentiable itself.
        <FloatTensor<Self>>::new(B::spectral_scale_backward(
            weight.into_primitive(),
            v.into_primitive(),
            u.into_primitive(),
            sigma.into_primitive(),
            grad.into_primitive(),
        ))
    }
}

/// Per-channel sums of channels-last images `[batch, pixels * channels]` -> `[channels]`.
fn channel_sums<B: Backend>(g: FloatTensor<B>, channels: usize) -> FloatTensor<B> {
    let n = g.shape().num_elements();
    let rows = B::float_reshape(g, [n / channels, channels].into());
    B::float_reshape(B::float_sum_dim(rows, 0), [channels].into())
}

/// The activation after a dense layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// None: the layer's output as it is.
    Identity,
    /// `max(v, 0)`.
    Relu,
    /// `v` for positive `v`, `slope v` otherwise (`slope` in (0, 1)).
    LeakyRelu(f32),
    /// `1 / (1 + e^-v)`.
    Sigmoid,
}

impl Activation {
    /// `(sigmoid, slope)` as the kernels take them.
    fn code(self) -> (bool, f32) {
        match self {
            Activation::Identity => (false, 1.0),
            Activation::Relu => (false, 0.0),
            Activation::LeakyRelu(slope) => (false, slope),
            Activation::Sigmoid => (true, 1.0),
        }
    }

    /// The activation by burn's composed operations.
    pub fn apply(self, y: Tensor<2>) -> Tensor<2> {
        match self {
            Activation::Identity => y,
            Activation::Relu => burn::tensor::activation::relu(y),
            Activation::LeakyRelu(slope) => burn::tensor::activation::leaky_relu(y, slope as f64),
            Activation::Sigmoid => burn::tensor::activation::sigmoid(y),
        }
    }
}

/// A dense layer on a batch, `act(x W + b)`.
///
/// On flex `f32` tensors with a bias this is one fused kernel forward (the product added onto
/// the bias, the activation in the same buffer) and a hand-written backward; otherwise it is
/// burn's `Linear::forward` followed by the activation.
///
/// # Shapes
///   x `[batch, in]` -> `[batch, out]`
pub fn linear(layer: &burn::nn::Linear, x: Tensor<2>, act: Activation) -> Tensor<2> {
    dense(layer, x, act, None)
}

/// Whether the fused convolutions take `x`: an `f32` tensor on flex (with or without
/// autodiff), with the `conv` lever on.
pub fn conv_fusable(x: &Tensor<2>) -> bool {
    levers().conv && flex::on_flex(x)
}

/// burn's `Conv2d` (with its bias) on channels-last images, then the activation with `slope`
/// (1: none), through the fused kernels; callers check [`conv_fusable`] first.
///
/// # Shapes
///   x `[batch, geom.big]` -> `[batch, geom.small]`
pub fn conv2d(conv: &Conv2d, x: Tensor<2>, geom: ConvGeom, slope: f32) -> Tensor<2> {
    let bias = conv
        .bias
        .as_ref()
        .expect("the fused convolution takes a bias");
    let out = Dispatch::conv_down(
        x.into_dispatch(),
        conv.weight.val().into_dispatch(),
        bias.val().into_dispatch(),
        true,
        geom,
        slope,
    );
    Tensor::from_dispatch(out)
}

/// burn's `ConvTranspose2d` (with its bias) on channels-last images, its output cropped to
/// `geom.big`, through the fused kernels; callers check [`conv_fusable`] first.
///
/// # Shapes
///   x `[batch, geom.small]` -> `[batch, geom.big]`
pub fn conv_transpose2d(conv: &ConvTranspose2d, x: Tensor<2>, geom: ConvGeom) -> Tensor<2> {
    let bias = conv
        .bias
        .as_ref()
        .expect("the fused convolution takes a bias");
    let out = Dispatch::conv_up(
        x.into_dispatch(),
        conv.weight.val().into_dispatch(),
        bias.val().into_dispatch(),
        true,
        geom,
    );
    Tensor::from_dispatch(out)
}

/// burn's affine `GroupNorm` on channels-last images, then the activation with `slope`, through
/// the fused kernels; callers check [`conv_fusable`] first.
///
/// # Shapes
///   x `[batch, pixels * channels]` -> the same
pub fn group_norm(norm: &GroupNorm, x: Tensor<2>, slope: f32) -> Tensor<2> {
    let (gamma, beta) = match (&norm.gamma, &norm.beta) {
        (Some(g), Some(b)) => (g.val(), b.val()),
        _ => panic!("the fused group norm is affine"),
    };
    let out = Dispatch::group_norm(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        norm.num_groups,
        norm.epsilon as f32,
        slope,
    );
    Tensor::from_dispatch(out)
}

/// burn's `BatchNorm` on a batch of rows, then `act`: in training (an autodiff device and the
/// module in training mode) the batch's statistics normalise it and move the running ones as
/// burn's module does; otherwise the running statistics normalise it.
///
/// While training on flex this is one fused kernel each way: the batch is group norm's one
/// image, with each feature a group of one channel (the activation in the same pass), and
/// the statistics for the running averages one more pass. Otherwise burn's module, then the
/// activation.
///
/// # Shapes
///   x `[batch, features]` -> the same
pub fn batch_norm(norm: &BatchNorm, x: Tensor<2>, act: Activation) -> Tensor<2> {
    let training = x.device().is_autodiff() && norm.training.is_enabled();
    let slope = match act {
        Activation::Identity => Some(1.0),
        Activation::Relu => Some(0.0),
        Activation::LeakyRelu(slope) => Some(slope),
        Activation::Sigmoid => None,
    };
    let [rows, features] = x.dims();
    let fusable = training && rows > 0 && features > 0 && levers().batch_norm && flex::on_flex(&x);
    let Some(slope) = slope.filter(|_| fusable) else {
        return act.apply(norm.forward(x));
    };
    let (mean, var) = Dispatch::column_moments(x.clone().detach().into_dispatch());
    let (mean, var) = (
        Tensor::<1>::from_dispatch(mean),
        Tensor::<1>::from_dispatch(var),
    );
    let m = norm.momentum;
    let moved = |state: &burn::module::RunningState<Tensor<1>>, batch: Tensor<1>| {
        let old = state.value_sync().to_device(&batch.device());
        state.update(old.mul_scalar(1.0 - m).add(batch.mul_scalar(m)).detach());
    };
    moved(&norm.running_mean, mean);
    moved(&norm.running_var, var);
    let out = Dispatch::group_norm(
        x.reshape([1, rows * features]).into_dispatch(),
        norm.gamma.val().into_dispatch(),
        norm.beta.val().into_dispatch(),
        features,
        norm.epsilon as f32,
        slope,
    );
    Tensor::<2>::from_dispatch(out).reshape([rows, features])
}

/// [`linear`] followed by `dropout` (which acts only while training, as burn's does). The
/// fused path draws the mask from a hash of its position and a seed taken from the device's
/// random stream, so a seeded run repeats; its gradient is read off the output.
pub fn linear_dropout(
    layer: &burn::nn::Linear,
    x: Tensor<2>,
    act: Activation,
    dropout: &burn::nn::Dropout,
) -> Tensor<2> {
    let active = dropout.training.is_enabled() && x.device().is_autodiff() && dropout.prob > 0.0;
    if !active {
        return linear(layer, x, act);
    }
    dense(layer, x, act, Some(dropout))
}

fn dense(
    layer: &burn::nn::Linear,
    x: Tensor<2>,
    act: Activation,
    dropout: Option<&burn::nn::Dropout>,
) -> Tensor<2> {
    let bias = layer.bias.as_ref().map(|b| b.val());
    dense_with(layer.weight.val(), bias, x, act, dropout)
}

/// [`linear_dropout`] with the weights `[in, out]` and bias given as tensors (computed ones,
/// such as spectrally normalised weights).
pub fn dense_with(
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
    x: Tensor<2>,
    act: Activation,
    dropout: Option<&burn::nn::Dropout>,
) -> Tensor<2> {
    let dropout =
        dropout.filter(|d| d.training.is_enabled() && x.device().is_autodiff() && d.prob > 0.0);
    // Dropout after a sigmoid would make the backward's zeros ambiguous: composed instead.
    let fusable = !(act == Activation::Sigmoid && dropout.is_some());
    if let Some(bias) = &bias
        && fusable
        && levers().linear
        && flex::on_flex(&x)
        && flex::on_flex(&weight)
    {
        let (sigmoid, slope) = act.code();
        let (keep, seed) = match dropout {
            Some(d) => ((1.0 - d.prob) as f32, dropout_seed(&x.device())),
            None => (1.0, 0),
        };
        let out = Dispatch::dense(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.clone().into_dispatch(),
            sigmoid,
            slope,
            keep,
            seed,
        );
        return Tensor::from_dispatch(out);
    }
    let y = act.apply(burn::tensor::module::linear(x, weight, bias));
    match dropout {
        Some(d) => d.forward(y),
        None => y,
    }
}

/// Spectral normalisation through the fused kernels: one step of power iteration on
/// `weight` `[in, out]` from `u` `[out]` (held constant), then `(W / sigma, u')`. `None` off
/// flex (or with the kernel switched off): the caller composes the same step from burn's
/// operations.
pub fn spectral_normalise(weight: Tensor<2>, u: Tensor<1>) -> Option<(Tensor<2>, Tensor<1>)> {
    if !(levers().spectral && flex::on_flex(&weight) && flex::on_flex(&u)) {
        return None;
    }
    let held = weight.clone().detach().into_dispatch();
    let (v, u, sigma) = Dispatch::power_iteration(held, u.detach().into_dispatch());
    let scaled = Dispatch::spectral_scale(weight.into_dispatch(), v, u.clone(), sigma);
    Some((Tensor::from_dispatch(scaled), Tensor::from_dispatch(u)))
}

/// 32 random bits from the device's seeded stream (the one burn's own dropout draws from).
fn dropout_seed(device: &burn::tensor::Device) -> u32 {
    let draws = Tensor::<1>::random(
        [2],
        burn::tensor::Distribution::Uniform(0.0, 1.0),
        &device.clone().inner(),
    );
    let v = crate::to_vec(draws);
    v.iter().fold(0x9e37_79b9u32, |h, x| {
        (h ^ x.to_bits()).rotate_left(13).wrapping_mul(0x85eb_ca6b)
    })
}

/// Which fused kernels are in use. All are, unless `LATENT_ATLAS_UNFUSED` names some
/// (comma-separated: `adam`, `nll`, `linear`, `conv`, `spectral`, `batchnorm`), which measures each one's effect in one build.
#[derive(Clone, Copy, Debug)]
pub struct Levers {
    /// The in-place Adam.
    pub adam: bool,
    /// The Bernoulli likelihood.
    pub nll: bool,
    /// The dense layer.
    pub linear: bool,
    /// The convolutions.
    pub conv: bool,
    /// Spectral normalisation's power iteration and scaling.
    pub spectral: bool,
    /// Batch normalisation while training.
    pub batch_norm: bool,
}

/// The levers in force for this process (read once), narrowed on this thread by
/// [`with_levers`].
pub fn levers() -> Levers {
    static LEVERS: std::sync::OnceLock<Levers> = std::sync::OnceLock::new();
    let global = *LEVERS.get_or_init(|| {
        let off = std::env::var("LATENT_ATLAS_UNFUSED").unwrap_or_default();
        let off: Vec<&str> = off.split(',').map(str::trim).collect();
        Levers {
            adam: !off.contains(&"adam"),
            nll: !off.contains(&"nll"),
            linear: !off.contains(&"linear"),
            conv: !off.contains(&"conv"),
            spectral: !off.contains(&"spectral"),
            batch_norm: !off.contains(&"batchnorm"),
        }
    });
    match OVERRIDE.with(std::cell::Cell::get) {
        Some(local) => Levers {
            adam: global.adam && local.adam,
            nll: global.nll && local.nll,
            linear: global.linear && local.linear,
            conv: global.conv && local.conv,
            spectral: global.spectral && local.spectral,
            batch_norm: global.batch_norm && local.batch_norm,
        },
        None => global,
    }
}

thread_local! {
    static OVERRIDE: std::cell::Cell<Option<Levers>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with only the kernels `local` keeps (and the process allows) on this thread: the
/// fallbacks' tests run burn's composition on flex in the same build.
pub fn with_levers<T>(local: Levers, f: impl FnOnce() -> T) -> T {
    let before = OVERRIDE.with(|o| o.replace(Some(local)));
    struct Restore(Option<Levers>);
    impl Drop for Restore {
        fn drop(&mut self) {
            OVERRIDE.with(|o| o.set(self.0));
        }
    }
    let _restore = Restore(before);
    f()
}

impl Levers {
    /// Every kernel off.
    pub const NONE: Levers = Levers {
        adam: false,
        nll: false,
        linear: false,
        conv: false,
        spectral: false,
        batch_norm: false,
    };
}

/// Bernoulli negative log-likelihood with logits, summed over pixels, per sample:
/// `sum_j softplus(l_j) - x_j l_j` (equal to `(1 - x) l - log sigmoid(l)`).
///
/// # Shapes
///   logits, x `[batch, pixels]` -> `[batch]`
pub fn bernoulli_nll(logits: Tensor<2>, x: Tensor<2>) -> Tensor<1> {
    if levers().nll && flex::on_flex(&logits) && flex::on_flex(&x) {
        let out = Dispatch::bernoulli_nll(logits.into_dispatch(), x.into_dispatch());
        Tensor::from_dispatch(out)
    } else {
        bernoulli_nll_composed(logits, x)
    }
}

/// The same quantity from burn's tensor operations (every backend).
pub fn bernoulli_nll_composed(logits: Tensor<2>, x: Tensor<2>) -> Tensor<1> {
    let one_minus_x = x.neg().add_scalar(1.0);
    (logits.clone() * one_minus_x - log_sigmoid(logits))
        .sum_dim(1)
        .squeeze_dim(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        crate::to_vec(t)
    }

    fn data(device: &Device, rows: usize, cols: usize, scale: f32) -> (Tensor<2>, Tensor<2>) {
        let l: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 37 % 101) as f32 / 50.0 - 1.0) * scale)
            .collect();
        let x: Vec<f32> = (0..rows * cols)
            .map(|i| (i * 13 % 7) as f32 / 6.0)
            .collect();
        (
            Tensor::from_data(TensorData::new(l, [rows, cols]), device),
            Tensor::from_data(TensorData::new(x, [rows, cols]), device),
        )
    }

    #[test]
    fn value_and_gradient_match_the_composed_form() {
        // Large enough to take the parallel path, with logits far into both tails.
        for (rows, cols, scale) in [(3, 5, 1.0), (64, 784, 30.0)] {
            let device = Device::flex().autodiff();
            let (l, x) = data(&device, rows, cols, scale);
            let (l, x) = (l.require_grad(), x.require_grad());
            let fused = bernoulli_nll(l.clone(), x.clone());
            let composed = bernoulli_nll_composed(l.clone(), x.clone());
            let (vf, vc) = (values(fused.clone()), values(composed.clone()));
            for (a, b) in vf.iter().zip(&vc) {
                assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{a} vs {b}");
            }
            // Weight the rows differently so the per-row upstream gradient matters.
            let w = Tensor::<1>::from_data(
                TensorData::new(
                    (0..rows).map(|i| i as f32 + 0.5).collect::<Vec<_>>(),
                    [rows],
                ),
                &device,
            );
            let gf = (fused * w.clone()).sum().backward();
            let gc = (composed * w).sum().backward();
            for (name, t) in [("logits", &l), ("targets", &x)] {
                let (a, b) = (
                    values(t.grad(&gf).expect("grad")),
                    values(t.grad(&gc).expect("grad")),
                );
                let worst = a
                    .iter()
                    .zip(&b)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                assert!(worst < 1e-3, "{name} gradient differs by {worst}");
            }
        }
    }

    /// A layer with uneven weights, and an input batch that needs its gradient.
    fn layer_and_input(device: &Device, rows: usize) -> (burn::nn::Linear, Tensor<2>) {
        let layer = burn::nn::LinearConfig::new(70, 300).init(device);
        let x: Vec<f32> = (0..rows * 70)
            .map(|i| ((i * 29 % 83) as f32 / 41.0 - 1.0) * 1.5)
            .collect();
        let x = Tensor::from_data(TensorData::new(x, [rows, 70]), device).require_grad();
        (layer, x)
    }

    fn worst(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn dense_layer_matches_burns_linear_for_every_activation() {
        // 64 rows take the banded parallel product; 3 rows the serial one.
        for rows in [3, 64] {
            for act in [
                Activation::Identity,
                Activation::Relu,
                Activation::LeakyRelu(0.2),
                Activation::Sigmoid,
            ] {
                let device = Device::flex().autodiff();
                let (layer, x) = layer_and_input(&device, rows);
                let fused = linear(&layer, x.clone(), act);
                let composed = act.apply(layer.forward(x.clone()));
                let (vf, vc) = (values(fused.clone()), values(composed.clone()));
                assert!(worst(&vf, &vc) < 1e-4, "{act:?}: values differ");
                let w = Tensor::<2>::from_data(
                    TensorData::new(
                        (0..rows * 300)
                            .map(|i| (i % 7) as f32 - 3.0)
                            .collect::<Vec<_>>(),
                        [rows, 300],
                    ),
                    &device,
                );
                let gf = (fused * w.clone()).sum().backward();
                let gc = (composed * w).sum().backward();
                let bias = layer.bias.as_ref().expect("bias").val();
                let pairs = [
                    ("x", x.grad(&gf).map(values), x.grad(&gc).map(values)),
                    (
                        "weight",
                        layer.weight.val().grad(&gf).map(values),
                        layer.weight.val().grad(&gc).map(values),
                    ),
                    (
                        "bias",
                        bias.grad(&gf).map(values),
                        bias.grad(&gc).map(values),
                    ),
                ];
                for (name, a, b) in pairs {
                    let (a, b) = (a.expect("grad"), b.expect("grad"));
                    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                    assert!(
                        worst(&a, &b) < 1e-4 * scale,
                        "{act:?}: {name} gradient differs"
                    );
                }
            }
        }
    }

    /// An uneven matrix `[rows, cols]`.
    fn uneven(device: &Device, rows: usize, cols: usize, seed: usize) -> Tensor<2> {
        let v: Vec<f32> = (0..rows * cols)
            .map(|i| (((i + seed) * 37 % 101) as f32 / 50.0 - 1.0) * 0.3)
            .collect();
        Tensor::from_data(TensorData::new(v, [rows, cols]), device)
    }

    #[test]
    fn fused_power_iteration_converges_to_the_largest_singular_value() {
        // diag(3, 2, 1) padded with a zero row: sigma is 3, u the first axis.
        let device = Device::flex();
        let mut w = vec![0.0f32; 4 * 3];
        for (i, s) in [3.0, 2.0, 1.0].into_iter().enumerate() {
            w[i * 3 + i] = s;
        }
        let w = Tensor::<2>::from_data(TensorData::new(w, [4, 3]), &device);
        let mut u = Tensor::<1>::ones([3], &device) / 3f32.sqrt();
        let mut sigma = 0.0;
        for _ in 0..60 {
            let (scaled, next) = spectral_normalise(w.clone(), u).expect("on flex");
            sigma = 3.0 / values(scaled)[0];
            u = next;
        }
        assert!((sigma - 3.0).abs() < 1e-4, "sigma {sigma}");
        let u = values(u);
        assert!(
            (u[0].abs() - 1.0).abs() < 1e-4 && u[1].abs() < 1e-2,
            "{u:?}"
        );
    }

    #[test]
    fn batch_norm_matches_burns_module_in_value_gradients_and_running_statistics() {
        // Odd sizes, one row (zero variance), and the generator's widths.
        for (rows, features) in [(3, 5), (1, 4), (128, 512)] {
            for act in [
                Activation::Identity,
                Activation::Relu,
                Activation::LeakyRelu(0.2),
            ] {
                let run = |levers: Levers| {
                    with_levers(levers, || {
                        let device = Device::flex().autodiff();
                        let mut norm = burn::nn::BatchNormConfig::new(features).init(&device);
                        norm.gamma = burn::module::Param::from_tensor(
                            uneven(&device, 1, features, 3)
                                .reshape([features])
                                .add_scalar(1.0),
                        );
                        norm.beta = burn::module::Param::from_tensor(
                            uneven(&device, 1, features, 7).reshape([features]),
                        );
                        let x = (uneven(&device, rows, features, 1) * 4.0)
                            .add_scalar(0.5)
                            .require_grad();
                        let y = batch_norm(&norm, x.clone(), act);
                        let w = uneven(&device, rows, features, 11);
                        let grads = (y.clone() * w).sum().backward();
                        let grad = |t: Tensor<1>| values(t.grad(&grads).expect("a gradient"));
                        [
                            values(y),
                            values(x.grad(&grads).expect("a gradient")),
                            grad(norm.gamma.val()),
                            grad(norm.beta.val()),
                            values(norm.running_mean.value_sync()),
                            values(norm.running_var.value_sync()),
                        ]
                    })
                };
                let all = Levers {
                    batch_norm: true,
                    ..Levers::NONE
                };
                let (fused, composed) = (run(all), run(Levers::NONE));
                let names = [
                    "values",
                    "x",
                    "gamma",
                    "beta",
                    "running mean",
                    "running var",
                ];
                for ((name, f), c) in names.iter().zip(&fused).zip(&composed) {
                    let scale = c.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                    assert!(
                        worst(f, c) < 2e-4 * scale,
                        "{rows}x{features} {act:?}: {name} differs by {}",
                        worst(f, c)
                    );
                }
            }
        }
    }

    #[test]
    fn products_split_by_columns_match_burns_matmul() {
        // A transposed right operand large enough for the column bands, with odd widths, in
        // pools of two and three threads (uneven bands).
        for threads in [2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a pool");
            for (m, n, k) in [(128, 784, 512), (33, 301, 127), (64, 97, 300)] {
                let device = Device::flex();
                let a = uneven(&device, m, k, 1);
                let stored = uneven(&device, n, k, 2);
                let fused = pool.install(|| {
                    Tensor::<2>::from_dispatch(Dispatch::gemm(
                        a.clone().into_dispatch(),
                        stored.clone().into_dispatch(),
                        false,
                        true,
                    ))
                });
                let composed = a.clone().matmul(stored.clone().transpose());
                let (f, c) = (values(fused), values(composed));
                let scale = c.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                assert!(
                    worst(&f, &c) < 1e-5 * scale * (k as f32).sqrt(),
                    "{m}x{n}x{k} on {threads} threads"
                );
            }
        }
        // Outputs are not zeroed before the product writes them: an empty inner dimension
        // still gives zeros.
        let device = Device::flex();
        let empty = Tensor::<2>::from_dispatch(Dispatch::gemm(
            Tensor::<2>::zeros([5, 0], &device).into_dispatch(),
            Tensor::<2>::zeros([0, 7], &device).into_dispatch(),
            false,
            false,
        ));
        assert_eq!(values(empty), vec![0.0; 35]);
    }

    #[test]
    fn dense_layer_reads_transposed_and_flipped_views() {
        let device = Device::flex();
        let layer = burn::nn::LinearConfig::new(70, 300).init(&device);
        let base: Vec<f32> = (0..70 * 5)
            .map(|i| ((i * 13 % 29) as f32 - 14.0) / 7.0)
            .collect();
        let stored = Tensor::<2>::from_data(TensorData::new(base, [70, 5]), &device);
        for x in [stored.clone().transpose(), stored.transpose().flip([0, 1])] {
            let fused = values(linear(&layer, x.clone(), Activation::Relu));
            let composed = values(Activation::Relu.apply(layer.forward(x)));
            assert!(worst(&fused, &composed) < 1e-4);
        }
    }

    #[test]
    fn closed_form_at_zero_logits_is_ln_2_per_pixel() {
        let device = Device::flex();
        let l = Tensor::<2>::zeros([2, 10], &device);
        let x = Tensor::<2>::ones([2, 10], &device);
        for v in values(bernoulli_nll(l, x)) {
            assert!((v - 10.0 * std::f32::consts::LN_2).abs() < 1e-5);
        }
    }

    #[test]
    fn the_composed_path_gives_the_same_values() {
        let (l, x) = data(&Device::flex(), 4, 6, 3.0);
        let composed = with_levers(Levers::NONE, || bernoulli_nll(l.clone(), x.clone()));
        let (a, b) = (values(composed), values(bernoulli_nll(l, x)));
        assert!(a.iter().zip(&b).all(|(a, b)| (a - b).abs() < 1e-4));
    }
}
