//! Latent Atlas's views as plain data, and the painters that need no window: the latent plane's
//! [`scene`] (with the samples grid's points), a training [`run`] folded from the worker's
//! events, and every [`export`] (PNG, SVG and GIF views on a CPU canvas, CSV tables, NumPy
//! arrays, the run folder). The window (`latent-atlas-app`) and the command line draw from
//! the same data.

pub mod export;
pub mod run;
pub mod scene;
