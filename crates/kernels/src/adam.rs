//! Adam in one pass per parameter (Kingma & Ba 2015, with PyTorch's placement of epsilon).
//!
//! burn's `Adam` composes the update from about a dozen tensor operations, each a full pass
//! over the parameter that allocates its result: on the reference model (1.07 M parameters)
//! that is most of a step on two cores. [`FusedAdam`] implements burn's [`Optimizer`] hook
//! instead: on the flex backend it reads the gradient once and updates the first and second
//! moments and the weights in place, in parallel chunks. On any other backend, or for a tensor
//! that is not plain contiguous `f32`, it computes the same update from tensor operations.
//!
//! The state is burn's own [`AdamState`], so it records and moves between devices as burn's
//! Adam state does; only a reloaded state lands on the CPU first ([`FusedAdamState`]).

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::optim::{
    AdamState, AdaptiveMomentumState, LearningRate, ModuleOptimizer, Optimizer, RecordState,
    StateSink, StateSource,
};
use burn::tensor::{Device, Tensor};

use super::flex;
use super::math::{self, AdamScalars};

/// Adam's hyper-parameters. The update is PyTorch's:
/// `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`,
/// `p -= lr / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + eps)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FusedAdam {
    /// Decay of the first moment.
    pub beta_1: f32,
    /// Decay of the second moment.
    pub beta_2: f32,
    /// Added to the root of the second moment.
    pub epsilon: f32,
}

impl Default for FusedAdam {
    /// PyTorch's defaults.
    fn default() -> Self {
        Self {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-8,
        }
    }
}

impl FusedAdam {
    /// With the first moment's decay set (adversarial training takes 0.5).
    pub fn with_beta_1(self, beta_1: f32) -> Self {
        Self { beta_1, ..self }
    }

    /// A module optimiser stepping every parameter with this rule.
    pub fn init(self) -> ModuleOptimizer {
        ModuleOptimizer::from(self)
    }

    fn scalars(&self, lr: LearningRate, time: usize) -> AdamScalars {
        let t = time.min(i32::MAX as usize) as i32;
        let bc1 = 1.0 - f64::from(self.beta_1).powi(t);
        let bc2 = 1.0 - f64::from(self.beta_2).powi(t);
        AdamScalars {
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon,
            step_size: (lr / bc1) as f32,
            inv_bc2_sqrt: (1.0 / bc2.sqrt()) as f32,
        }
    }
}

/// Elements per parallel chunk: large enough that a task's overhead is small against it.
const CHUNK: usize = 1 << 17;

/// Updates `p`, `m` and `v` in place from `g` (all the same length).
fn update_slices(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], s: AdamScalars) {
    use rayon::prelude::*;
    if p.len() <= CHUNK {
        math::adam_slices(p, m, v, g, s);
    } else {
        p.par_chunks_mut(CHUNK)
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .zip(g.par_chunks(CHUNK))
            .for_each(|(((p, m), v), g)| math::adam_slices(p, m, v, g, s));
    }
}

/// The flex path: every tensor plain contiguous `f32` on flex, updated in place (a shared
/// weight buffer is copied once, as copy-on-write). Gives the tensors back when it does not
/// apply.
fn step_on_flex<const D: usize>(
    param: Tensor<D>,
    grad: Tensor<D>,
    m: Tensor<D>,
    v: Tensor<D>,
    s: AdamScalars,
) -> Result<(Tensor<D>, Tensor<D>, Tensor<D>), Box<[Tensor<D>; 4]>> {
    let tensors = [param, grad, m, v];
    if !tensors.iter().all(flex::is_plain_f32) {
        return Err(Box::new(tensors));
    }
    let [param, grad, m, v] = tensors.map(flex::into_flex);
    let (mut param, mut m, mut v): (FlexTensor, FlexTensor, FlexTensor) = (param, m, v);
    let g = flex::contiguous_f32(&grad).expect("checked above");
    update_slices(
        flex::f32_mut(&mut param),
        flex::f32_mut(&mut m),
        flex::f32_mut(&mut v),
        g,
        s,
    );
    Ok((
        Tensor::from_primitive::<Flex>(param),
        Tensor::from_primitive::<Flex>(m),
        Tensor::from_primitive::<Flex>(v),
    ))
}

/// The same update from tensor operations, for every other backend.
fn step_composed<const D: usize>(
    param: Tensor<D>,
    grad: Tensor<D>,
    m: Tensor<D>,
    v: Tensor<D>,
    s: AdamScalars,
) -> (Tensor<D>, Tensor<D>, Tensor<D>) {
    let m = m * s.beta_1 + grad.clone() * (1.0 - s.beta_1);
    let v = v * s.beta_2 + grad.square() * (1.0 - s.beta_2);
    let denom = (v.clone().sqrt() * s.inv_bc2_sqrt).add_scalar(s.epsilon);
    let param = param - m.clone() / denom * s.step_size;
    (param, m, v)
}

/// [`FusedAdam`]'s state for one parameter: burn's [`AdamState`], recorded under the same
/// names, but reloaded onto the CPU (flex) whatever burn's default device is. burn's
/// `ModuleOptimizer::load_record` builds every state on its default device (the GPU when
/// wgpu is compiled in), which would open a GPU on a machine that trains on its CPU (and
/// fails where it has none, or, in a page, before WebGPU is opened); from the CPU the state
/// moves to its parameter's device at the first step ([`Optimizer::to_device`]).
#[derive(Clone)]
pub struct FusedAdamState<const D: usize>(pub AdamState<D>);

impl<const D: usize> RecordState for FusedAdamState<D> {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        self.0.state_flatten(prefix, out);
    }

    fn state_unflatten(prefix: &str, src: &mut StateSource, _device: &Device) -> Option<Self> {
        AdamState::state_unflatten(prefix, src, &Device::flex()).map(Self)
    }
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = FusedAdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let (time, m, v) = match state {
            Some(FusedAdamState(state)) => (
                state.momentum.time + 1,
                state.momentum.moment_1,
                state.momentum.moment_2,
            ),
            None => (1, grad.zeros_like(), grad.zeros_like()),
        };
        let s = self.scalars(lr, time);
        let (param, m, v) = if super::levers().adam {
            match step_on_flex(tensor, grad, m, v, s) {
                Ok(done) => done,
                Err(tensors) => {
                    let [param, grad, m, v] = *tensors;
                    step_composed(param, grad, m, v, s)
                }
            }
        } else {
            step_composed(tensor, grad, m, v, s)
        };
        let momentum = AdaptiveMomentumState::new(time, m, v);
        (param, Some(FusedAdamState(AdamState::new(momentum))))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &Device) -> Self::State<D> {
        let m = &mut state.0.momentum;
        if &m.moment_1.device() != device {
            m.moment_1 = m.moment_1.clone().to_device(device);
            m.moment_2 = m.moment_2.clone().to_device(device);
            m.max_moment_2 = m.max_moment_2.take().map(|t| t.to_device(device));
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LinearConfig;
    use burn::optim::{AdamConfig, GradientsParams};
    use burn::tensor::TensorData;

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        crate::to_vec(t)
    }

    /// PyTorch's Adam written out in f64, for three steps of one scalar.
    fn reference(grads: &[f64], lr: f64, b1: f64, b2: f64, eps: f64, p0: f64) -> f64 {
        let (mut p, mut m, mut v) = (p0, 0.0, 0.0);
        for (t, &g) in grads.iter().enumerate() {
            let t = t as i32 + 1;
            m = b1 * m + (1.0 - b1) * g;
            v = b2 * v + (1.0 - b2) * g * g;
            let m_hat = m / (1.0 - b1.powi(t));
            let v_hat = v / (1.0 - b2.powi(t));
            p -= lr * m_hat / (v_hat.sqrt() + eps);
        }
        p
    }

    #[test]
    fn one_element_follows_pytorch_formula() {
        let adam = FusedAdam::default();
        let grads = [0.3, -1.2, 0.05];
        let (mut p, mut m, mut v) = (0.7f32, 0.0f32, 0.0f32);
        for (t, &g) in grads.iter().enumerate() {
            math::adam_update(&mut p, &mut m, &mut v, g as f32, adam.scalars(1e-2, t + 1));
        }
        let want = reference(&grads, 1e-2, 0.9, 0.999, 1e-8, 0.7);
        assert!((f64::from(p) - want).abs() < 1e-6, "{p} vs {want}");
    }

    /// Steps a layer with the fused optimiser and with burn's Adam on the same gradients.
    fn compare_with_burn(device: &Device) {
        let layer = LinearConfig::new(300, 200).init(&device.clone().autodiff());
        let mut fused = FusedAdam::default().init();
        let mut plain = AdamConfig::new().with_epsilon(1e-8).init();
        let start = values(layer.weight.val());
        let (mut a, mut b) = (layer.clone(), layer);
        for step in 0..4 {
            let x = Tensor::<2>::from_data(
                TensorData::new(
                    (0..600)
                        .map(|i| ((i * 7 + step * 13) % 17) as f32 / 8.0 - 1.0)
                        .collect::<Vec<_>>(),
                    [2, 300],
                ),
                &device.clone().autodiff(),
            );
            let ga =
                GradientsParams::from_grads(a.forward(x.clone()).square().sum().backward(), &a);
            let gb = GradientsParams::from_grads(b.forward(x).square().sum().backward(), &b);
            a = fused.step(1e-2, a, ga);
            b = plain.step(1e-2, b, gb);
        }
        let (wa, wb) = (values(a.weight.val()), values(b.weight.val()));
        let worst = wa
            .iter()
            .zip(&wb)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "largest weight difference {worst}");
        let (ba, bb) = (
            values(a.bias.expect("bias").val()),
            values(b.bias.expect("bias").val()),
        );
        assert!(ba.iter().zip(&bb).all(|(x, y)| (x - y).abs() < 1e-5));
        // The steps really moved the weights (a vacuous comparison would pass too).
        let moved = start
            .iter()
            .zip(&wa)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(moved > 1e-3, "the weights moved by {moved} only");
    }

    #[test]
    fn flex_matches_burns_adam() {
        compare_with_burn(&Device::flex());
    }

    #[test]
    fn composed_path_matches_burns_adam() {
        // With the kernel off on this thread, flex takes the composed path other backends take.
        super::super::with_levers(super::super::Levers::NONE, || {
            compare_with_burn(&Device::flex())
        });
    }

    #[test]
    fn shared_weights_are_copied_not_changed() {
        let device = Device::flex().autodiff();
        let layer = LinearConfig::new(4, 3).init(&device);
        let kept = layer.clone();
        let before = values(kept.weight.val());
        let x = Tensor::<2>::ones([1, 4], &device);
        let grads = GradientsParams::from_grads(layer.forward(x).sum().backward(), &layer);
        let stepped = FusedAdam::default().init().step(0.1, layer, grads);
        assert_eq!(values(kept.weight.val()), before, "the kept copy changed");
        assert_ne!(values(stepped.weight.val()), before, "the step did nothing");
    }
}
