use super::*;
use burn::backend::Dispatch;
use burn::tensor::{Device, Tensor, TensorData};

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
            Activation::Tanh,
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
