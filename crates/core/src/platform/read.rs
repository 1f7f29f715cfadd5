//! Reading tensors back without blocking: where a device's reads are asynchronous (WebGPU in a
//! browser, whose buffers are mapped only after the page hands control back to the browser),
//! a read is started, polled once per turn, and taken when it is ready; the turn that started
//! it goes on or ends meanwhile. On a CPU backend the first poll answers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use burn::tensor::{ExecutionError, Tensor, TensorData};
use web_time::{Duration, Instant};

type ReadFuture = Pin<Box<dyn Future<Output = Result<TensorData, ExecutionError>> + Send>>;

/// A tensor on its way back to the host, as row-major floats.
pub struct PendingRead {
    future: Option<ReadFuture>,
    result: Option<Result<Vec<f32>, String>>,
    started: Instant,
}

impl PendingRead {
    /// Starts reading `tensor` (polled once here: the read is submitted at its first poll).
    pub fn of(tensor: Tensor<1>) -> Self {
        let mut read = Self {
            future: Some(Box::pin(tensor.into_data_async())),
            result: None,
            started: Instant::now(),
        };
        read.poll();
        read
    }

    /// Looks again; whether the values are here.
    pub fn poll(&mut self) -> bool {
        if let Some(future) = &mut self.future {
            let mut cx = Context::from_waker(Waker::noop());
            if let Poll::Ready(data) = future.as_mut().poll(&mut cx) {
                self.future = None;
                self.result = Some(data.map_err(|e| format!("{e:?}")).and_then(|d| {
                    d.convert::<f32>()
                        .try_into_vec::<f32>()
                        .map_err(|e| format!("{e:?}"))
                }));
            }
        }
        self.result.is_some()
    }

    /// The values, once they are here (taken once).
    pub fn take(&mut self) -> Option<Result<Vec<f32>, String>> {
        self.result.take()
    }

    /// How long ago the read started.
    pub fn waited(&self) -> Duration {
        self.started.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpu_read_is_ready_at_once() {
        let device = burn::tensor::Device::flex();
        let t = Tensor::<1>::from_floats([1.0, 2.5, -3.0], &device);
        let mut read = PendingRead::of(t);
        assert!(read.poll());
        assert_eq!(read.take(), Some(Ok(vec![1.0, 2.5, -3.0])));
        assert_eq!(read.take(), None, "taken once");
    }
}
