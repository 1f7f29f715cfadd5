//! Integration tests, linked into one binary: each test binary links the whole burn and egui
//! stack, so one binary instead of five saves minutes of linking and gigabytes of disk.

#[path = "../../examples/support/mod.rs"]
mod support;

mod backend;
mod cli;
mod conv;
mod families;
#[cfg(feature = "gpu")]
mod gpu;
#[cfg(feature = "remote")]
mod remote;
mod training;
mod ui;
mod worker;
