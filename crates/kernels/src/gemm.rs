//! Matrix products on flex tensors through the gemm crate: the operand (data and strides, read
//! in place or transposed), and how a product splits its work between threads.

use burn::backend::flex::FlexTensor;
use burn::tensor::DType;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// The `[rows, cols]` of a flex tensor that the fused kernels take.
pub(crate) fn rows_cols(t: &FlexTensor) -> (usize, usize) {
    let shape = t.layout().shape();
    assert_eq!(shape.num_dims(), 2, "the fused kernels take [rows, cols]");
    (shape[0], shape[1])
}

/// A matrix operand of a product: its data and strides, possibly read transposed.
#[derive(Clone, Copy)]
pub(crate) struct Operand<'a> {
    data: &'a [f32],
    /// Offset of element (0, 0) in `data`.
    start: usize,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    row_stride: isize,
    col_stride: isize,
}

impl<'a> Operand<'a> {
    pub(crate) fn of(t: &'a FlexTensor, transpose: bool) -> Self {
        assert_eq!(t.dtype(), DType::F32, "the fused kernels take f32");
        let (rows, cols) = rows_cols(t);
        let strides = t.layout().strides();
        let (rs, cs) = (strides[0], strides[1]);
        let op = Self {
            data: t.storage::<f32>(),
            start: t.layout().start_offset(),
            rows,
            cols,
            row_stride: rs,
            col_stride: cs,
        };
        if transpose {
            Self {
                rows: cols,
                cols: rows,
                row_stride: cs,
                col_stride: rs,
                ..op
            }
        } else {
            op
        }
    }

    /// A row-major `[rows, cols]` matrix in `data`.
    pub(super) fn matrix(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert!(
            data.len() >= rows * cols,
            "gemm: matrix smaller than its shape"
        );
        Self {
            data,
            start: 0,
            rows,
            cols,
            row_stride: cols as isize,
            col_stride: 1,
        }
    }

    /// The transpose, as a view.
    pub(super) fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Rows `from..to` of this operand.
    fn rows(self, from: usize, to: usize) -> Self {
        Self {
            start: (self.start as isize + from as isize * self.row_stride) as usize,
            rows: to - from,
            ..self
        }
    }

    /// Columns `from..to` of this operand.
    fn cols(self, from: usize, to: usize) -> Self {
        Self {
            start: (self.start as isize + from as isize * self.col_stride) as usize,
            cols: to - from,
            ..self
        }
    }

    /// Whether the columns are the contiguous direction (a transposed view of a row-major
    /// matrix), which gemm packs one scalar load at a time when it is the right operand.
    fn column_major(&self) -> bool {
        self.row_stride == 1 && self.col_stride != 1 && self.cols > 1
    }
}

/// How the products split their work between threads (`LATENT_ATLAS_GEMM`, read once):
/// `rows` (default) gives each thread a band of output rows with a serial gemm in it;
/// `gemm` leaves it to the gemm crate's own parallel mode; `serial` uses one thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GemmThreads {
    Rows,
    Gemm,
    Serial,
}

fn gemm_threads() -> GemmThreads {
    static CHOICE: std::sync::OnceLock<GemmThreads> = std::sync::OnceLock::new();
    *CHOICE.get_or_init(|| match std::env::var("LATENT_ATLAS_GEMM").as_deref() {
        Ok("gemm") => GemmThreads::Gemm,
        Ok("serial") => GemmThreads::Serial,
        _ => GemmThreads::Rows,
    })
}

/// A pass over a band of a product's output rows, with the band's offset in the output.
type Epilogue<'a> = &'a (dyn Fn(&mut [f32], usize) + Sync);

/// Products below this many multiply-adds run on one thread.
const PARALLEL_MACS: usize = 1 << 20;

/// A new row-major `[a.rows, b.cols]` buffer `out = init + a b`, then `epilogue(out)`, where
/// `init` is a row repeated (a bias) or zero. Large products split the output rows into one band per
/// thread; each band does all three parts, so the work takes one parallel region. A bare
/// product whose right operand is column-major (`g W^T`, a layer's input gradient) splits its
/// columns instead, so that each thread packs only its share of that operand.
pub(crate) fn gemm_new(
    a: Operand<'_>,
    b: Operand<'_>,
    init: Option<&[f32]>,
    epilogue: Option<Epilogue<'_>>,
) -> Vec<f32> {
    let (m, n, k) = (a.rows, b.cols, a.cols);
    if let Some(row) = init {
        assert_eq!(row.len(), n, "gemm: one initial value per column");
    }
    // The output is written before it is read (the initial rows, or the product with
    // `accumulate` off, which gemm writes without reading), so it is never zeroed first.
    let mut buffer = Vec::<f32>::with_capacity(m * n);
    if m == 0 || n == 0 {
        return buffer;
    }
    let out = &mut buffer.spare_capacity_mut()[..m * n];
    let band_work = |chunk: &mut [MaybeUninit<f32>],
                     first_row: usize,
                     a: Operand<'_>,
                     parallelism: gemm::Parallelism| {
        if let Some(row) = init {
            for dst in chunk.chunks_exact_mut(n.max(1)) {
                dst.iter_mut().zip(row).for_each(|(d, &v)| {
                    d.write(v);
                });
            }
        }
        // SAFETY: the chunk holds whole rows of the output, its own to write.
        unsafe {
            gemm_strided(
                chunk.as_mut_ptr().cast(),
                n,
                a,
                b,
                init.is_some(),
                parallelism,
            )
        };
        // SAFETY: every value of the chunk has been written, by the initial rows or by the
        // product (gemm writes every output it does not accumulate onto).
        let chunk = unsafe { &mut *(chunk as *mut [MaybeUninit<f32>] as *mut [f32]) };
        if let Some(epilogue) = epilogue {
            epilogue(chunk, first_row * n);
        }
    };
    let threads = rayon::current_num_threads();
    let mode = if m * n * k < PARALLEL_MACS || threads < 2 {
        GemmThreads::Serial
    } else {
        gemm_threads()
    };
    match mode {
        // gemm packs a column-major right operand one scalar at a time, and in row bands
        // every thread packs all of it: in column bands each packs its own share. Only for
        // bare products (the bands are not contiguous for the bias and the epilogue).
        GemmThreads::Rows
            if init.is_none() && epilogue.is_none() && b.column_major() && n >= 32 * threads =>
        {
            let band = n.div_ceil(threads);
            let out_ptr = SharedOut(out.as_mut_ptr().cast());
            (0..n.div_ceil(band)).into_par_iter().for_each(|i| {
                let from = i * band;
                let to = (from + band).min(n);
                let out_ptr = &out_ptr;
                // SAFETY: each band writes only columns `from..to` of the `m x n` row-major
                // output, disjoint from every other band's, and `out` outlives the region.
                unsafe {
                    gemm_strided(
                        out_ptr.0.add(from),
                        n,
                        a,
                        b.cols(from, to),
                        false,
                        gemm::Parallelism::None,
                    )
                };
            });
        }
        GemmThreads::Rows if m >= 2 * threads => {
            let band = m.div_ceil(threads);
            out.par_chunks_mut(band * n)
                .enumerate()
                .for_each(|(i, chunk)| {
                    let from = i * band;
                    let to = (from + band).min(m);
                    band_work(chunk, from, a.rows(from, to), gemm::Parallelism::None);
                });
        }
        GemmThreads::Serial | GemmThreads::Rows => band_work(out, 0, a, gemm::Parallelism::None),
        #[cfg(not(target_arch = "wasm32"))]
        GemmThreads::Gemm => band_work(out, 0, a, gemm::Parallelism::Rayon(0)),
        // One thread in a browser.
        #[cfg(target_arch = "wasm32")]
        GemmThreads::Gemm => band_work(out, 0, a, gemm::Parallelism::None),
    }
    // SAFETY: the bands above wrote all m * n values.
    unsafe { buffer.set_len(m * n) };
    buffer
}

/// The output pointer shared by the bands of a column split.
struct SharedOut(*mut f32);

// SAFETY: the bands that share it write disjoint elements (see `gemm_new`).
unsafe impl Sync for SharedOut {}

pub(crate) fn gemm_serial(
    out: &mut [f32],
    a: Operand<'_>,
    b: Operand<'_>,
    accumulate: bool,
    parallelism: gemm::Parallelism,
) {
    let (m, n) = (a.rows, b.cols);
    assert!(out.len() >= m * n, "gemm: output smaller than its shape");
    // SAFETY: `out` holds the m x n row-major output (checked above), borrowed mutably.
    unsafe { gemm_strided(out.as_mut_ptr(), n, a, b, accumulate, parallelism) }
}

/// `out (+)= a b` into an output whose rows lie `row_stride` elements apart.
///
/// # Safety
/// `out` must be valid for writes at `i * row_stride + j` for every row `i < a.rows` and
/// column `j < b.cols`, with no other access to those elements meanwhile.
unsafe fn gemm_strided(
    out: *mut f32,
    row_stride: usize,
    a: Operand<'_>,
    b: Operand<'_>,
    accumulate: bool,
    parallelism: gemm::Parallelism,
) {
    let (m, n, k) = (a.rows, b.cols, a.cols);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                // SAFETY: row i's n elements are the caller's to write.
                unsafe { std::slice::from_raw_parts_mut(out.add(i * row_stride), n).fill(0.0) };
            }
        }
        return;
    }
    // Every element the strides reach lies inside each slice (checked before the raw call).
    let last = |o: &Operand<'_>| {
        o.start as isize
            + (o.rows as isize - 1) * o.row_stride
            + (o.cols as isize - 1) * o.col_stride
    };
    for o in [&a, &b] {
        assert!(
            o.row_stride >= 0 && o.col_stride >= 0,
            "gemm: negative strides"
        );
        assert!(
            (last(o) as usize) < o.data.len(),
            "gemm: operand out of bounds"
        );
    }
    // SAFETY: the operands' strides stay inside their slices (checked above), and the
    // output's elements are the caller's to write.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out,
            1,
            row_stride as isize,
            accumulate,
            a.data.as_ptr().add(a.start),
            a.col_stride,
            a.row_stride,
            b.data.as_ptr().add(b.start),
            b.col_stride,
            b.row_stride,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}
