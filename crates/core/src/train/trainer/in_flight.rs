//! Steps whose values are read back later: a batch of optimisation steps is launched (its
//! updates queued on the device) and settled once its statistics arrive, so that one read
//! serves several steps and, where reads are asynchronous (WebGPU in a page), the page never
//! waits for one. Where they are, everything that reads the model (snapshots, evaluations,
//! saves) reads a CPU copy of it, refreshed by one read of all its parameters
//! ([`Trainer::start_copy`]).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor, TensorData};

use super::{KEEP_GOOD_EVERY, StepStats, TrainError, Trainer};
use crate::data::batch::to_vec;
use crate::model::Model;
use crate::platform::PendingRead;
use crate::train::StepMetrics;

/// Steps launched and not yet settled: their statistics (and the family's own values after
/// the last of them) as one tensor still on the device.
pub struct Launched {
    kind: LaunchedKind,
    /// Everything to read back, in one tensor.
    values: Tensor<1>,
}

enum LaunchedKind {
    /// Likelihood steps: each one's statistics, step number, epoch and share of the epoch,
    /// the first step's number, and the names of the family's values read after the last.
    Likelihood {
        steps: Vec<(StepStats, u64, usize, f32)>,
        first_step: u64,
        extras: Vec<&'static str>,
    },
    /// One adversarial step (counted when it settles).
    Adversarial,
}

impl Launched {
    /// Starts reading its values back (see [`PendingRead`]).
    pub fn read(&self) -> PendingRead {
        PendingRead::of(self.values.clone())
    }

    /// How many steps it holds.
    pub fn len(&self) -> usize {
        match &self.kind {
            LaunchedKind::Likelihood { steps, .. } => steps.len(),
            LaunchedKind::Adversarial => 1,
        }
    }

    /// Whether it holds no step (never: a launch takes at least one).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Trainer {
    /// Up to `k` optimisation steps (fewer before an epoch's last step, which is read on its
    /// own) with one readback for all of them: where each readback is a round trip (a remote
    /// server, a GPU), this keeps the link from pacing training. The updates go ahead before
    /// their losses are seen, so a non-finite one rolls back to the last copy whose every step
    /// was read as finite, and the family's own values are read for the last step only. `k <=
    /// 1`, an epoch's last step, and the adversarial families take one [`Self::step`].
    pub fn steps(&mut self, k: usize) -> Result<Vec<StepMetrics>, TrainError> {
        if k <= 1 || self.config.model.draws().adversarial || self.at_epochs_last_step() {
            return self.step().map(|m| vec![m]);
        }
        let launched = self.launch(k)?;
        let values = to_vec(launched.values.clone());
        self.settle(launched, &values)
    }

    fn at_epochs_last_step(&self) -> bool {
        self.batch_index + 1 >= self.order.batch_count()
    }

    /// Queues up to `k` steps on the device without reading anything back (an adversarial
    /// family's one step); [`Self::settle`] finishes them once [`Launched::read`] has their
    /// values. An epoch's last step is launched on its own, so that its epoch ends when it
    /// settles. Nothing else may step the model between the two.
    pub fn launch(&mut self, k: usize) -> Result<Launched, TrainError> {
        if self.config.model.draws().adversarial {
            let values = self.adversarial_launch()?;
            return Ok(Launched {
                kind: LaunchedKind::Adversarial,
                values,
            });
        }
        let first_step = self.step + 1;
        let mut steps = Vec::with_capacity(k.max(1));
        for _ in 0..k.max(1) {
            let last_of_epoch = self.at_epochs_last_step();
            if last_of_epoch && !steps.is_empty() {
                break;
            }
            let (loss, stats) = self.likelihood_terms()?;
            self.update(loss);
            let (epoch, progress) = self.advance(false);
            steps.push((stats, self.step, epoch, progress));
            if last_of_epoch {
                break;
            }
        }
        let mut all: Vec<Tensor<1>> = steps.iter().map(|(s, ..)| s.stats.clone()).collect();
        // The family's own values (the BN-VAE's, the f-VAE's) after the last update.
        let mut extras = Vec::new();
        for (name, value) in self.model.extra_values(self.config.likelihood) {
            extras.push(name);
            all.push(value);
        }
        Ok(Launched {
            kind: LaunchedKind::Likelihood {
                steps,
                first_step,
                extras,
            },
            values: Tensor::cat(all, 0),
        })
    }

    /// Finishes the steps of `launched` with their values read back: each step's metrics,
    /// or, when one was not finite, the error after rolling back to the last good copy (kept
    /// only where every step before it was read as finite).
    pub fn settle(
        &mut self,
        launched: Launched,
        values: &[f32],
    ) -> Result<Vec<StepMetrics>, TrainError> {
        let (steps, first_step, extras) = match launched.kind {
            LaunchedKind::Adversarial => return self.adversarial_settle(values).map(|m| vec![m]),
            LaunchedKind::Likelihood {
                steps,
                first_step,
                extras,
            } => (steps, first_step, extras),
        };
        let expected = steps.iter().map(|(s, ..)| s.len()).sum::<usize>() + extras.len();
        if values.len() != expected {
            return Err(TrainError::Config(format!(
                "{} values were read back for {} steps instead of {expected}",
                values.len(),
                steps.len()
            )));
        }
        let mut metrics = Vec::with_capacity(steps.len());
        let mut at = 0;
        for (stats, step, epoch, progress) in &steps {
            let m = stats.metrics(&values[at..at + stats.len()], *step, *epoch, *progress);
            at += stats.len();
            if !m.total.is_finite() {
                let (_, restored_step) = self.restore_last_good();
                return Err(TrainError::NonFinite {
                    step: *step,
                    value: m.total,
                    restored_step,
                });
            }
            metrics.push(m);
        }
        // Every step read back was finite: the model may be kept to roll back to.
        if (first_step..=self.step).any(|s| s.is_multiple_of(KEEP_GOOD_EVERY)) {
            self.last_good = (self.model.clone(), self.step);
        }
        if let Some(last) = metrics.last_mut() {
            let read = extras.iter().zip(&values[at..]);
            last.extra
                .extend(read.map(|(name, v)| ((*name).to_owned(), *v)));
        }
        Ok(metrics)
    }
}

/// The CPU copy of a model whose device reads asynchronously, and the model it copies (its
/// step, and how many resets the trainer had made then).
pub(super) struct Mirror {
    pub(super) model: Model,
    step: u64,
    resets: u64,
}

/// Every parameter of a model on its way back to the host, as one read.
pub struct PendingCopy {
    read: PendingRead,
    shapes: Vec<Vec<usize>>,
    step: u64,
    resets: u64,
}

impl PendingCopy {
    /// Looks again; whether the copy is here.
    pub fn poll(&mut self) -> bool {
        self.read.poll()
    }

    /// How long ago the copy started.
    pub fn waited(&self) -> web_time::Duration {
        self.read.waited()
    }

    /// The read under way, when the copy is no longer wanted.
    pub fn into_read(self) -> PendingRead {
        self.read
    }
}

/// The parameters in the order modules visit and map them: each one's shape, and all their
/// values flattened into one tensor.
struct Gather {
    shapes: Vec<Vec<usize>>,
    flat: Vec<Tensor<1>>,
}

impl ModuleVisitor for Gather {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val();
        self.shapes.push(t.dims().to_vec());
        let n = t.dims().iter().product::<usize>();
        self.flat.push(t.reshape([n]));
    }
}

/// Puts the values read back into a model of the same structure, in the same order.
struct Fill<'a> {
    shapes: &'a [Vec<usize>],
    values: &'a [f32],
    at: usize,
    index: usize,
    device: Device,
    error: Option<String>,
}

impl ModuleMapper for Fill<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(shape) = self.shapes.get(self.index) else {
            self.error = Some(format!(
                "more than the {} parameters read",
                self.shapes.len()
            ));
            return param;
        };
        self.index += 1;
        let n = shape.iter().product::<usize>();
        let Some(values) = self.values.get(self.at..self.at + n) else {
            self.error = Some("fewer values than the parameters need".into());
            return param;
        };
        self.at += n;
        if shape.len() != D {
            self.error = Some(format!(
                "a parameter of rank {} read as rank {D}",
                shape.len()
            ));
            return param;
        }
        let data = TensorData::new(values.to_vec(), shape.clone());
        Param::initialized(param.id, Tensor::from_data(data, &self.device))
    }
}

impl Trainer {
    /// Sets whether the device's reads are asynchronous (see [`Trainer::launch`] and
    /// [`Trainer::start_copy`]); a copy made before is dropped.
    pub fn set_async_reads(&mut self, on: bool) {
        self.reads_async = on;
        self.mirror = None;
    }

    /// Whether the device's reads are asynchronous.
    pub fn reads_async(&self) -> bool {
        self.reads_async
    }

    /// Whether the CPU copy is of the model as it is now (always, where reads are synchronous:
    /// there is no copy to keep).
    pub fn copy_is_fresh(&self) -> bool {
        !self.reads_async
            || self
                .mirror
                .as_ref()
                .is_some_and(|m| m.step == self.step && m.resets == self.resets)
    }

    /// Starts reading every parameter of the model as it is now, for a CPU copy that
    /// snapshots, evaluations and saves then read ([`Self::install_copy`]).
    pub fn start_copy(&self) -> PendingCopy {
        let mut gather = Gather {
            shapes: Vec::new(),
            flat: Vec::new(),
        };
        self.model.valid().visit(&mut gather);
        let values = match gather.flat.is_empty() {
            true => Tensor::zeros([0], &self.device.clone().without_autodiff()),
            false => Tensor::cat(gather.flat, 0),
        };
        PendingCopy {
            read: PendingRead::of(values),
            shapes: gather.shapes,
            step: self.step,
            resets: self.resets,
        }
    }

    /// Makes the copy read by `copy` the one inference reads, once it is here; an error says
    /// why the values could not be used (the copy made before stays).
    pub fn install_copy(&mut self, mut copy: PendingCopy) -> Result<(), String> {
        let values = match copy.read.take() {
            Some(v) => v?,
            None => return Err("the copy of the model has not arrived yet".into()),
        };
        let flex = Device::flex();
        let template = {
            let _rng = crate::backend::device_rng_lock(&flex);
            self.config
                .build_model(self.data.train.shape(), self.classes, &flex)
        };
        let mut fill = Fill {
            shapes: &copy.shapes,
            values: &values,
            at: 0,
            index: 0,
            device: flex,
            error: None,
        };
        let model = template.map(&mut fill);
        if let Some(e) = fill.error {
            return Err(format!("the copy of the model does not fit it: {e}"));
        }
        if fill.index != copy.shapes.len() || fill.at != values.len() {
            return Err(format!(
                "the copy of the model does not fit it: {} of {} parameters filled",
                fill.index,
                copy.shapes.len()
            ));
        }
        self.mirror = Some(Mirror {
            model,
            step: copy.step,
            resets: copy.resets,
        });
        Ok(())
    }

    /// Runs the schedule for an epoch that ended while reads were asynchronous, on the CPU
    /// copy of its model (which must be fresh); whether it changed the model (so that the copy
    /// is to be made again).
    pub fn follow_due_schedule(&mut self) -> bool {
        if !std::mem::take(&mut self.schedule_due) {
            return false;
        }
        let resets = self.resets;
        self.follow_schedule();
        self.resets != resets
    }
}
