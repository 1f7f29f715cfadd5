//! Training: the custom loop (Adam, KL warm-up), test metrics, snapshots and checkpoints.
//! No threads and no UI here; the worker and the command line drive a [`Trainer`].

pub mod catalogue;
pub mod checkpoint;
pub mod config;
pub mod metrics;
pub mod safetensors;
pub mod schedule;
pub mod snapshot;
pub mod trainer;

pub use catalogue::{AdversarialParams, Draws, FamilyInfo, ModelKind, PosteriorShape};
pub use config::{HiddenActivation, HyperParams, MAX_PROBE, TrainConfig};
pub use metrics::{StepMetrics, TestMetrics};
pub use schedule::Schedule;
pub use snapshot::{ImportanceDraws, Snapshot};
pub use trainer::{Evaluation, EvaluationSteps, NEG_ELBO, TrainError, Trainer};
