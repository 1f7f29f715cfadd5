//! Latent Atlas: a lab for generative autoencoders, on the desktop and in a browser tab.
//!
//! The library holds everything but the window: datasets ([`data`]), models ([`model`]), the
//! training loop ([`train`]), the training thread ([`worker`]), latent-space geometry and
//! decoding ([`explore`]), image and table exports ([`export`]), the device choice
//! ([`backend`]), what it asks of the platform ([`platform`]), and, on the desktops only,
//! training on another machine (`remote`), the window's launcher (`gui`) and the command line
//! (`cli`, `bench`, `reproduce`). The browser's entry point is the `web/` crate.

#![recursion_limit = "256"]

pub mod app;
pub mod archive;
pub mod backend;
#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
#[cfg(not(target_arch = "wasm32"))]
pub mod cli;
pub mod data;
pub mod evaluator;
pub mod explore;
pub mod export;
pub mod fsio;
pub mod fused;
#[cfg(not(target_arch = "wasm32"))]
pub mod gui;
pub mod model;
pub mod platform;
#[cfg(not(target_arch = "wasm32"))]
pub mod remote;
#[cfg(not(target_arch = "wasm32"))]
pub mod reproduce;
pub mod rng;
pub mod run;
pub mod scene;
pub mod train;
pub mod worker;
