//! Access to the flex backend's buffers, for the fused CPU kernels.

use burn::backend::flex::FlexTensor;
use burn::backend::{BackendTensor, DispatchTensorKind, Flex};
use burn::tensor::{DType, Tensor};

/// The flex float tensor under `t`, if `t` lives on flex (and is not an autodiff tensor).
fn flex_ref(kind: &DispatchTensorKind) -> Option<&FlexTensor> {
    match kind {
        DispatchTensorKind::Flex(BackendTensor::Float(f)) => Some(f),
        _ => None,
    }
}

/// Whether `f` is `f32` stored contiguously from the start of its own buffer, so its storage
/// is exactly its elements in order.
pub fn plain(f: &FlexTensor) -> bool {
    let n = f.layout().num_elements();
    f.dtype() == DType::F32
        && f.layout().contiguous_offsets() == Some((0, n))
        && f.bytes().len() == n * std::mem::size_of::<f32>()
}

/// Whether `t` is a plain contiguous `f32` flex tensor (without autodiff).
pub fn is_plain_f32<const D: usize>(t: &Tensor<D>) -> bool {
    let dispatch = t.clone().into_dispatch();
    flex_ref(&dispatch.kind).is_some_and(plain)
}

/// The flex tensor under `t`.
///
/// # Panics
/// When `t` is not a plain `f32` flex tensor (callers check with [`is_plain_f32`]).
pub fn into_flex<const D: usize>(t: Tensor<D>) -> FlexTensor {
    assert!(is_plain_f32(&t), "a plain f32 flex tensor");
    t.try_into_primitive::<Flex>()
        .expect("a plain flex tensor converts to its primitive")
}

/// The elements of a plain `f32` tensor.
pub fn contiguous_f32(f: &FlexTensor) -> Option<&[f32]> {
    plain(f).then(|| f.storage::<f32>())
}

/// The elements of a plain `f32` tensor, mutable; a shared buffer is copied first.
///
/// # Panics
/// When `f` is not plain `f32` (callers check with [`is_plain_f32`]).
pub fn f32_mut(f: &mut FlexTensor) -> &mut [f32] {
    assert!(plain(f), "a plain f32 flex tensor");
    f.storage_mut::<f32>()
}

/// Whether `t` is an `f32` tensor on flex, with or without autodiff (the fused kernels' case).
pub fn on_flex<const D: usize>(t: &Tensor<D>) -> bool {
    if t.dtype() != DType::F32 {
        return false;
    }
    let dispatch = t.clone().into_dispatch();
    match dispatch.kind {
        DispatchTensorKind::Flex(BackendTensor::Float(_)) => true,
        DispatchTensorKind::Autodiff(inner) => matches!(*inner, DispatchTensorKind::Flex(_)),
        _ => false,
    }
}
