//! The kernels under burn's autodiff decorator: the forward pass on the inner backend, and
//! the hand-written backward passes (the `_backward` kernels) registered as its nodes.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, TensorMetadata};

use super::{Curve, FusedOps};
use crate::conv::ConvGeom;

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
        curve: Curve,
        slope: f32,
        keep: f32,
        seed: u32,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Linear;

        impl<B: FusedOps> Backward<B, 3> for Linear {
            /// The input, the weight, the output and the activation (curve, slope, keep).
            type State = (
                FloatTensor<B>,
                FloatTensor<B>,
                FloatTensor<B>,
                (Curve, f32, f32),
            );

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_w, node_b] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x, w, y, (curve, slope, keep)) = ops.state;
                let g = B::activation_backward(y, grad, curve, slope, keep);
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
                    curve,
                    slope,
                    keep,
                    seed,
                );
                let act = (curve, slope, keep);
                prep.finish(
                    (x.into_primitive(), weight.into_primitive(), y.clone(), act),
                    y,
                )
            }
            OpsKind::UnTracked(prep) => prep.finish(B::dense(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
                curve,
                slope,
                keep,
                seed,
            )),
        }
    }

    fn activation_backward(
        y: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        curve: Curve,
        slope: f32,
        keep: f32,
    ) -> FloatTensor<Self> {
        <FloatTensor<Self>>::new(B::activation_backward(
            y.into_primitive(),
            grad.into_primitive(),
            curve,
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
                let g = B::activation_backward(y, grad, Curve::Piecewise, slope, 1.0);
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
