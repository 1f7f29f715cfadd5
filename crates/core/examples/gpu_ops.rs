//! Times single operations on the wgpu device (a diagnostic): each runs `REPS` times and is
//! read back once, so the figure is the device's time per operation. Usage:
//! `cargo run --release -p latent-atlas-core --features gpu --example gpu_ops`
//! (`LATENT_ATLAS_SOFTWARE_GPU=1` for a software adapter).
use std::time::Instant;

use burn::tensor::{Distribution, Tensor};

const REPS: usize = 20;

fn main() {
    let backend = latent_atlas_core::backend::wgpu(true).expect("a wgpu adapter");
    println!("device: {}", backend.description);
    let d = backend.device;
    let rand = |shape: [usize; 2]| Tensor::<2>::random(shape, Distribution::Default, &d);
    let sync = |t: Tensor<2>| {
        let _ = t.sum().into_data();
    };
    // Each result is added to the last, so that none is dropped unread (burn's fusion skips
    // work nobody reads); "add" alone gives that addition's share.
    let time = |name: &str, f: &dyn Fn() -> Tensor<2>| {
        sync(f());
        let start = Instant::now();
        let mut acc = f();
        for _ in 1..REPS {
            acc = acc + f();
        }
        sync(acc);
        println!(
            "{name:<40} {:>9.2} ms",
            start.elapsed().as_secs_f64() * 1e3 / REPS as f64
        );
    };
    let (x, w1, w2) = (rand([100, 784]), rand([784, 512]), rand([512, 256]));
    let (h1, g1) = (rand([100, 512]), rand([100, 512]));
    time("matmul 100x784 @ 784x512", &|| x.clone().matmul(w1.clone()));
    time("matmul 100x512 @ 512x256", &|| {
        h1.clone().matmul(w2.clone())
    });
    time("matmul 100x512 @ (784x512)^T", &|| {
        g1.clone().matmul(w1.clone().transpose())
    });
    time("matmul (100x784)^T @ 100x512", &|| {
        x.clone().transpose().matmul(g1.clone())
    });
    // The dense layers' product on a software adapter (`latent_atlas_kernels::gpu`).
    use latent_atlas_kernels::gpu::matmul;
    println!(
        "takes the blocked kernel: {}",
        latent_atlas_kernels::gpu::on_cube(&x)
    );
    let ours = matmul(x.clone(), w1.clone(), false, false);
    let burns = x.clone().matmul(w1.clone());
    let diff = (ours - burns.clone()).abs().max().into_scalar::<f32>();
    let size = burns.abs().max().into_scalar::<f32>();
    println!("blocked against burn's product: largest difference {diff:e} (largest value {size})");
    time("blocked 100x784 @ 784x512", &|| {
        matmul(x.clone(), w1.clone(), false, false)
    });
    time("blocked 100x512 @ 512x256", &|| {
        matmul(h1.clone(), w2.clone(), false, false)
    });
    time("blocked 100x512 @ (784x512)^T", &|| {
        matmul(g1.clone(), w1.clone(), false, true)
    });
    time("blocked (100x784)^T @ 100x512", &|| {
        matmul(x.clone(), g1.clone(), true, false)
    });
    time("add 100x784", &|| x.clone() + 1.0);
    time("add 100x512", &|| h1.clone() + 1.0);
    time("add 784x512", &|| w1.clone() + 1.0);
    time("mul-add 100x512 (fused)", &|| {
        (h1.clone() * g1.clone() + 1.0).tanh()
    });
    time("relu 784x512", &|| {
        burn::tensor::activation::relu(w1.clone())
    });
    time("sum rows 100x784", &|| x.clone().sum_dim(1));
}
