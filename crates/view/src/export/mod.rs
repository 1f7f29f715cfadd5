//! Exports: PNG images of every view (rendered on the CPU with `image`, no GPU or window
//! needed), CSV tables.

pub mod canvas;
pub mod csv;
pub mod folder;
pub mod latents;
pub mod svg;
pub mod views;
