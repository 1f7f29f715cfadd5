//! A matrix product of our own for wgpu devices backed by a CPU (software adapters:
//! SwiftShader in a browser, lavapipe on a desktop).
//!
//! cubecl's products are written for GPUs: tiles staged through shared memory between
//! barriers, or one output per invocation. A software adapter runs each workgroup as a loop on
//! one CPU thread, its invocations four to a SIMD register, so shared memory and barriers cost
//! it far more than they save, and one output per invocation reloads every input once per
//! output. This kernel gives each invocation a block of `ROWS x COLS` outputs held in
//! registers: each step along the shared dimension loads `ROWS + COLS` values for
//! `ROWS * COLS` products, with no shared memory and no barrier. Neighbouring invocations
//! take neighbouring columns, so their loads of the right operand are consecutive in memory.
//!
//! It is a burn backend extension ([`GpuOps`]) on cubecl's backend, lazy under fusion (a
//! custom operation in fusion's stream), and differentiable under autodiff (both gradients are
//! the same kernel on transposed views). [`matmul`] is the tensor API; [`set_software_adapter`]
//! says whether the wgpu device the process opened is a software one, the only case in which
//! [`dense_product`] takes this kernel (on a real GPU, cubecl's tuned products are faster).

use std::sync::atomic::{AtomicBool, Ordering};

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, BackendTensor, Dispatch, DispatchTensorKind, backend_extension};
use burn::tensor::{DType, Shape, Tensor};
use burn_cubecl::CubeBackend;

/// Outputs per invocation along the rows.
const ROWS: usize = 4;
/// Outputs per invocation along the columns.
const COLS: usize = 4;
/// Invocations per workgroup along the columns and the rows.
const GROUP: (u32, u32) = (16, 4);

/// The extension's kernel.
#[backend_extension(Cube, Fusion, Autodiff)]
pub trait GpuOps: Backend {
    /// `op(a) op(b)` for 2-D `f32` tensors, `op` the transpose where asked (read through the
    /// strides: no copy).
    #[fusion(dtype = a, shape = product_shape(a, b, *transpose_a, *transpose_b))]
    fn gpu_matmul(
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        transpose_a: bool,
        transpose_b: bool,
    ) -> FloatTensor<Self>;
}

/// The shape of `op(a) op(b)`.
fn product_shape(a: &Shape, b: &Shape, transpose_a: bool, transpose_b: bool) -> Shape {
    let m = if transpose_a { a[1] } else { a[0] };
    let n = if transpose_b { b[0] } else { b[1] };
    Shape::new([m, n])
}

/// The kernel, in cubecl's language (its `Tensor` is not burn's).
mod kernel {
    use burn_cubecl::kernel::untile;
    use burn_cubecl::ops::numeric::empty_device_dtype;
    use burn_cubecl::tensor::CubeTensor;
    use cubecl::prelude::*;

    use super::{COLS, GROUP, ROWS, product_shape};

    /// One invocation's `ROWS x COLS` block of `op(a) op(b)`: rows `y * ROWS + r`, columns
    /// `x + c * groups` (neighbouring invocations, neighbouring columns). Reads past the edge
    /// are clamped onto the last row or column and their products never written.
    #[cube(launch_unchecked)]
    fn blocked_matmul(
        a: &Tensor<f32>,
        b: &Tensor<f32>,
        out: &mut Tensor<f32>,
        #[comptime] transpose_a: bool,
        #[comptime] transpose_b: bool,
    ) {
        let m = out.shape(0);
        let n = out.shape(1);
        let mut depth = a.shape(1);
        let mut a_row = a.stride(0);
        let mut a_step = a.stride(1);
        if transpose_a {
            depth = a.shape(0);
            a_row = a.stride(1);
            a_step = a.stride(0);
        }
        let mut b_step = b.stride(0);
        let mut b_col = b.stride(1);
        if transpose_b {
            b_step = b.stride(1);
            b_col = b.stride(0);
        }
        let groups = n.div_ceil(COLS);
        let x = ABSOLUTE_POS_X as usize;
        let row0 = ABSOLUTE_POS_Y as usize * ROWS;
        if x >= groups || row0 >= m {
            terminate!();
        }

        let mut a_at = Array::<usize>::new(ROWS);
        #[unroll]
        for r in 0..ROWS {
            a_at[r] = min(row0 + r, m - 1) * a_row;
        }
        let mut b_at = Array::<usize>::new(COLS);
        #[unroll]
        for c in 0..COLS {
            b_at[c] = min(x + c * groups, n - 1) * b_col;
        }
        let mut acc = Array::<f32>::new(ROWS * COLS);
        #[unroll]
        for i in 0..ROWS * COLS {
            acc[i] = 0.0;
        }
        let mut av = Array::<f32>::new(ROWS);
        let mut bv = Array::<f32>::new(COLS);
        for k in 0..depth {
            #[unroll]
            for r in 0..ROWS {
                av[r] = a[a_at[r] + k * a_step];
            }
            #[unroll]
            for c in 0..COLS {
                bv[c] = b[b_at[c] + k * b_step];
            }
            #[unroll]
            for r in 0..ROWS {
                #[unroll]
                for c in 0..COLS {
                    acc[r * COLS + c] += av[r] * bv[c];
                }
            }
        }

        let out_row = out.stride(0);
        let out_col = out.stride(1);
        #[unroll]
        for r in 0..ROWS {
            #[unroll]
            for c in 0..COLS {
                let row = row0 + r;
                let col = x + c * groups;
                if row < m && col < n {
                    out[row * out_row + col * out_col] = acc[r * COLS + c];
                }
            }
        }
    }

    /// Launches [`blocked_matmul`] on cubecl's tensors.
    pub(super) fn launch(
        a: CubeTensor,
        b: CubeTensor,
        transpose_a: bool,
        transpose_b: bool,
    ) -> CubeTensor {
        let (a, b) = (untile(a), untile(b));
        let shape = product_shape(a.meta.shape(), b.meta.shape(), transpose_a, transpose_b);
        let (m, n) = (shape[0], shape[1]);
        let out = empty_device_dtype(a.client.clone(), a.device.clone(), shape, a.dtype);
        if m == 0 || n == 0 {
            return out;
        }
        let groups = n.div_ceil(COLS) as u32;
        let row_groups = m.div_ceil(ROWS) as u32;
        let count = CubeCount::new_2d(groups.div_ceil(GROUP.0), row_groups.div_ceil(GROUP.1));
        let client = out.client.clone();
        // Safety: every read is clamped inside its operand and every write checked against the
        // output's shape.
        unsafe {
            blocked_matmul::launch_unchecked(
                &client,
                count,
                CubeDim::new_2d(GROUP.0, GROUP.1),
                a.into_tensor_arg(),
                b.into_tensor_arg(),
                out.clone().into_tensor_arg(),
                transpose_a,
                transpose_b,
            );
        }
        out
    }
}

impl GpuOps for CubeBackend {
    fn gpu_matmul(
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        transpose_a: bool,
        transpose_b: bool,
    ) -> FloatTensor<Self> {
        kernel::launch(a, b, transpose_a, transpose_b)
    }
}

impl<B: GpuOps, C: CheckpointStrategy> GpuOps for Autodiff<B, C> {
    fn gpu_matmul(
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        transpose_a: bool,
        transpose_b: bool,
    ) -> FloatTensor<Self> {
        /// `C = op(A) op(B)`; each gradient is one more product on transposed views.
        #[derive(Debug)]
        struct Product;

        impl<B: GpuOps> Backward<B, 2> for Product {
            /// Both operands and the transposes.
            type State = (FloatTensor<B>, FloatTensor<B>, bool, bool);

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node_a, node_b] = ops.parents;
                let g = grads.consume::<B>(&ops.node);
                let (a, b, ta, tb) = ops.state;
                if let Some(node) = node_a {
                    // d op(A) = G op(B)^T, and dA its transpose where A was transposed.
                    let grad = match (ta, tb) {
                        (false, false) => B::gpu_matmul(g.clone(), b.clone(), false, true),
                        (false, true) => B::gpu_matmul(g.clone(), b.clone(), false, false),
                        (true, false) => B::gpu_matmul(b.clone(), g.clone(), false, true),
                        (true, true) => B::gpu_matmul(b.clone(), g.clone(), true, true),
                    };
                    grads.register::<B>(node.id, grad);
                }
                if let Some(node) = node_b {
                    // d op(B) = op(A)^T G, and dB its transpose where B was transposed.
                    let grad = match (ta, tb) {
                        (false, false) => B::gpu_matmul(a, g, true, false),
                        (false, true) => B::gpu_matmul(g, a, true, false),
                        (true, false) => B::gpu_matmul(a, g, false, false),
                        (true, true) => B::gpu_matmul(g, a, true, true),
                    };
                    grads.register::<B>(node.id, grad);
                }
            }
        }

        match Product
            .prepare::<C>([a.node(), b.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let out = B::gpu_matmul(
                    a.primitive().clone(),
                    b.primitive().clone(),
                    transpose_a,
                    transpose_b,
                );
                let state = (
                    a.into_primitive(),
                    b.into_primitive(),
                    transpose_a,
                    transpose_b,
                );
                prep.finish(state, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::gpu_matmul(
                a.into_primitive(),
                b.into_primitive(),
                transpose_a,
                transpose_b,
            )),
        }
    }
}

static SOFTWARE_ADAPTER: AtomicBool = AtomicBool::new(false);

/// Records whether the wgpu device this process opened runs on a CPU (a software adapter):
/// only there does [`dense_product`] take [`matmul`].
pub fn set_software_adapter(software: bool) {
    SOFTWARE_ADAPTER.store(software, Ordering::Relaxed);
}

/// Whether `t` is an `f32` tensor on a cubecl device (with or without autodiff): one
/// [`matmul`] takes.
pub fn on_cube<const D: usize>(t: &Tensor<D>) -> bool {
    if t.dtype() != DType::F32 {
        return false;
    }
    match t.clone().into_dispatch().kind {
        DispatchTensorKind::Cube(BackendTensor::Float(_)) => true,
        // Under autodiff the cubecl tensor is autodiff's own (`BackendTensor::Autodiff`).
        DispatchTensorKind::Autodiff(inner) => matches!(*inner, DispatchTensorKind::Cube(_)),
        _ => false,
    }
}

/// `op(a) op(b)` through [`blocked_matmul`], for `f32` tensors on a cubecl device; burn's
/// product for any other tensor.
pub fn matmul(a: Tensor<2>, b: Tensor<2>, transpose_a: bool, transpose_b: bool) -> Tensor<2> {
    if on_cube(&a) && on_cube(&b) {
        let out = Dispatch::gpu_matmul(
            a.into_dispatch(),
            b.into_dispatch(),
            transpose_a,
            transpose_b,
        );
        return Tensor::from_dispatch(out);
    }
    let a = if transpose_a { a.transpose() } else { a };
    let b = if transpose_b { b.transpose() } else { b };
    a.matmul(b)
}

/// `x w + b` for a dense layer through [`matmul`], where the device is a software adapter
/// ([`set_software_adapter`]) and `x` lives on it with its weights; `None` otherwise.
pub fn dense_product(
    x: &Tensor<2>,
    weight: &Tensor<2>,
    bias: Option<&Tensor<1>>,
) -> Option<Tensor<2>> {
    if !(crate::levers().linear
        && SOFTWARE_ADAPTER.load(Ordering::Relaxed)
        && on_cube(x)
        && on_cube(weight))
    {
        return None;
    }
    let y = matmul(x.clone(), weight.clone(), false, false);
    Some(match bias {
        Some(b) => y + b.clone().unsqueeze_dim(0),
        None => y,
    })
}
