//! Latent Atlas: a desktop lab for generative autoencoders.
//!
//! The library holds everything but the window: datasets ([`data`]), models ([`model`]), the
//! training loop ([`train`]), the training thread ([`worker`]), latent-space geometry and
//! decoding ([`explore`]), image and table exports ([`export`]), the device choice
//! ([`backend`]), training on another machine ([`remote`]) and the command line ([`cli`]).

#![recursion_limit = "256"]

pub mod app;
pub mod backend;
pub mod bench;
pub mod cli;
pub mod data;
pub mod evaluator;
pub mod explore;
pub mod export;
pub mod fsio;
pub mod fused;
pub mod gui;
pub mod model;
pub mod remote;
pub mod reproduce;
pub mod rng;
pub mod run;
pub mod scene;
pub mod train;
pub mod worker;
