//! Latent Atlas: a lab for generative autoencoders, on the desktop and in a browser tab.
//!
//! This crate is the program: the command line ([`cli`], [`bench`], [`reproduce`], [`serve`])
//! and the window's native launcher ([`gui`]). The work is done in the workspace's other
//! crates, re-exported here under their module names: the fused CPU kernels
//! (`latent-atlas-kernels`, as [`fused`]), the engine (`latent-atlas-core`: [`data`],
//! [`model`], [`train`], [`evaluator`], [`explore`], [`backend`], [`worker`], ...), the views
//! and their painters (`latent-atlas-view`: [`scene`], [`run`], [`export`]) and the window
//! (`latent-atlas-app`, as [`app`]). The browser's entry point is the `web/` crate.

#![recursion_limit = "256"]

pub use latent_atlas_app as app;
pub use latent_atlas_core::{
    archive, backend, codec, data, evaluator, explore, fsio, fused, model, platform, remote, rng,
    train, worker,
};
pub use latent_atlas_view::{export, run, scene};

pub mod bench;
pub mod cli;
pub mod gui;
pub mod reproduce;
pub mod serve;
