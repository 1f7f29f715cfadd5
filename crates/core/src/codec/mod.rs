//! File formats written and read by hand, knowing nothing of models or views: NumPy's `.npy`.

pub mod npy;
