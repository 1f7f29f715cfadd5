//! The fused kernels' tests that need the engine: spectral normalisation as the model family
//! holds it, and dropout on the device's random stream, which the engine serialises.

use burn::tensor::{Device, Tensor, TensorData};
use latent_atlas_core::fused::{Activation, Levers, linear_dropout, with_levers};

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    latent_atlas_core::fused::to_vec(t)
}

fn worst(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

fn layer_and_input(device: &Device, rows: usize) -> (burn::nn::Linear, Tensor<2>) {
    let layer = burn::nn::LinearConfig::new(70, 300).init(device);
    let x: Vec<f32> = (0..rows * 70)
        .map(|i| ((i * 29 % 83) as f32 / 41.0 - 1.0) * 1.5)
        .collect();
    let x = Tensor::from_data(TensorData::new(x, [rows, 70]), device).require_grad();
    (layer, x)
}

/// An uneven matrix `[rows, cols]`.
fn uneven(device: &Device, rows: usize, cols: usize, seed: usize) -> Tensor<2> {
    let v: Vec<f32> = (0..rows * cols)
        .map(|i| (((i + seed) * 37 % 101) as f32 / 50.0 - 1.0) * 0.3)
        .collect();
    Tensor::from_data(TensorData::new(v, [rows, cols]), device)
}

#[test]
fn spectral_normalisation_matches_the_composed_step_in_value_gradient_and_estimate() {
    use latent_atlas_core::model::adversarial::SpectralNorm;
    // Odd sizes; the large one takes the parallel bands.
    for (rows, cols) in [(3, 5), (7, 1), (784, 512)] {
        let run = |levers: Levers| {
            with_levers(levers, || {
                let device = Device::flex().autodiff();
                let w = uneven(&device, rows, cols, 1).require_grad();
                let sn = SpectralNorm::new(cols, &device);
                let g = uneven(&device, rows, cols, 5);
                let scaled = sn.normalise(w.clone());
                let grads = (scaled.clone() * g).sum().backward();
                let dw = values(w.grad(&grads).expect("a gradient"));
                (values(scaled), dw, values(sn.u.value()))
            })
        };
        let all = Levers {
            spectral: true,
            ..Levers::NONE
        };
        let (fv, fg, fu) = run(all);
        let (cv, cg, cu) = run(Levers::NONE);
        let scale = |v: &[f32]| v.iter().fold(1e-6f32, |m, x| m.max(x.abs()));
        assert!(worst(&fv, &cv) < 1e-5 * scale(&cv), "{rows}x{cols}: values");
        assert!(
            worst(&fg, &cg) < 1e-4 * scale(&cg),
            "{rows}x{cols}: gradient"
        );
        assert!(
            worst(&fu, &cu) < 1e-5,
            "{rows}x{cols}: the new estimate of u"
        );
    }
}

#[test]
fn dropout_keeps_its_share_scales_survivors_and_routes_their_gradient() {
    // The device's random stream is shared by every test thread.
    let _stream = latent_atlas_core::backend::device_rng_lock(&Device::flex());
    let device = Device::flex().autodiff();
    let (layer, x) = layer_and_input(&device, 64);
    latent_atlas_core::backend::initialise_now(&layer);
    let dropout = burn::nn::DropoutConfig::new(0.3).init();
    let act = Activation::LeakyRelu(0.2);
    device.seed(5);
    let y = linear_dropout(&layer, x.clone(), act, &dropout);
    let plain = values(act.apply(layer.forward(x.clone())).detach());
    let dropped = values(y.clone().detach());
    let zeros = dropped.iter().filter(|v| **v == 0.0).count() as f32 / dropped.len() as f32;
    assert!((zeros - 0.3).abs() < 0.02, "dropped share {zeros}");
    for (d, p) in dropped.iter().zip(&plain) {
        assert!(*d == 0.0 || (d - p / 0.7).abs() < 1e-4 * p.abs().max(1.0));
    }
    // The gradient equals that of the same mask applied by hand.
    let mask: Vec<f32> = dropped
        .iter()
        .map(|&d| if d == 0.0 { 0.0 } else { 1.0 / 0.7 })
        .collect();
    let mask = Tensor::<2>::from_data(TensorData::new(mask, [64, 300]), &device);
    let by_hand = act.apply(layer.forward(x.clone())) * mask;
    let (gf, gh) = (y.sum().backward(), by_hand.sum().backward());
    let (a, b) = (
        values(x.grad(&gf).expect("grad")),
        values(x.grad(&gh).expect("grad")),
    );
    assert!(worst(&a, &b) < 1e-3, "input gradient differs");
    // A seeded device repeats the mask; without autodiff (inference) nothing is dropped.
    device.seed(5);
    let again = values(linear_dropout(&layer, x.clone(), act, &dropout).detach());
    assert!(again == dropped, "the same seed gave another mask");
    let inference = Device::flex();
    let layer = burn::nn::LinearConfig::new(70, 300).init(&inference);
    let x = Tensor::<2>::ones([8, 70], &inference);
    let y = values(linear_dropout(&layer, x.clone(), act, &dropout));
    assert_eq!(y, values(act.apply(layer.forward(x))));
}
