//! A curve that keeps a whole run in bounded memory: when full, old points are thinned two to
//! one (averaged), always keeping the very first point, so the start is never dropped. And the
//! log of the steps' metrics, cheap to copy for an export and bounded too.

use std::sync::Arc;

use latent_atlas_core::train::StepMetrics;

/// Rows per sealed chunk of a [`RowLog`].
const ROW_CHUNK: usize = 4096;

/// The most rows a [`RowLog`] holds: 32 chunks.
pub const MAX_ROWS: usize = 32 * ROW_CHUNK;

/// The training steps' metrics (for `metrics.csv`) in sealed, shared chunks: a clone copies at
/// most one chunk's rows, however long the run, so an export's copy of the state costs the
/// window little. Every row is kept up to [`MAX_ROWS`]; then every other row is dropped and
/// from there on only every second step is kept (then every fourth, ...), so a run of any
/// length stays covered from its first step in at most `MAX_ROWS` rows.
#[derive(Clone, Debug)]
pub struct RowLog {
    sealed: Vec<Arc<Vec<StepMetrics>>>,
    tail: Vec<StepMetrics>,
    /// Keep one row in this many.
    stride: u64,
    /// Rows offered since the log was cleared.
    offered: u64,
}

impl Default for RowLog {
    fn default() -> Self {
        Self {
            sealed: Vec::new(),
            tail: Vec::new(),
            stride: 1,
            offered: 0,
        }
    }
}

impl RowLog {
    /// Appends a row (or skips it, once the log is thinned).
    pub fn push(&mut self, row: StepMetrics) {
        let keep = self.offered.is_multiple_of(self.stride);
        self.offered += 1;
        if !keep {
            return;
        }
        self.tail.push(row);
        if self.tail.len() == ROW_CHUNK {
            self.sealed.push(Arc::new(std::mem::take(&mut self.tail)));
            if self.len() >= MAX_ROWS {
                self.thin();
            }
        }
    }

    /// Drops every other row and halves the rate at which rows are kept.
    fn thin(&mut self) {
        let kept: Vec<StepMetrics> = self.iter().step_by(2).cloned().collect();
        self.sealed = kept
            .chunks(ROW_CHUNK)
            .map(|c| Arc::new(c.to_vec()))
            .collect();
        self.tail = match self.sealed.last().map(|c| c.len()) {
            Some(n) if n < ROW_CHUNK => self
                .sealed
                .pop()
                .map(|c| Arc::try_unwrap(c).unwrap_or_else(|c| (*c).clone()))
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        self.stride *= 2;
    }

    /// One row is kept in this many steps (1 until the log first fills).
    pub fn stride(&self) -> u64 {
        self.stride
    }

    /// Forgets every row.
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.sealed.len() * ROW_CHUNK + self.tail.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &StepMetrics> + Clone {
        self.sealed.iter().flat_map(|c| c.iter()).chain(&self.tail)
    }
}

/// Points `(step, value)` of one series.
#[derive(Clone, Debug, Default)]
pub struct Series {
    points: Vec<[f64; 2]>,
    capacity: usize,
}

impl Series {
    /// An empty series holding at most `capacity` points (at least 16).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            points: Vec::new(),
            capacity: capacity.max(16),
        }
    }

    /// Appends a point, thinning the older half when full.
    pub fn push(&mut self, x: f64, y: f64) {
        if !y.is_finite() {
            return;
        }
        self.points.push([x, y]);
        if self.points.len() > self.capacity {
            let keep_recent = self.capacity / 2;
            let split = self.points.len() - keep_recent;
            let mut thinned = vec![self.points[0]];
            for pair in self.points[1..split].chunks(2) {
                let n = pair.len() as f64;
                thinned.push([
                    pair.iter().map(|p| p[0]).sum::<f64>() / n,
                    pair.iter().map(|p| p[1]).sum::<f64>() / n,
                ]);
            }
            thinned.extend_from_slice(&self.points[split..]);
            self.points = thinned;
        }
    }

    /// The points, oldest first.
    pub fn points(&self) -> &[[f64; 2]] {
        &self.points
    }

    /// The newest value.
    pub fn last(&self) -> Option<f64> {
        self.points.last().map(|p| p[1])
    }

    /// Number of points held.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether it holds no point.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// An exponential moving average of the points (weight `alpha` for the newest).
    pub fn smoothed(&self, alpha: f64) -> Vec<[f64; 2]> {
        let mut out = Vec::with_capacity(self.points.len());
        let mut acc = None;
        for p in &self.points {
            let v = match acc {
                None => p[1],
                Some(a) => a + alpha * (p[1] - a),
            };
            acc = Some(v);
            out.push([p[0], v]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_row_log_keeps_every_row_in_order_across_chunks() {
        let row = |step: u64| StepMetrics {
            step,
            epoch: 1,
            epoch_progress: 0.0,
            reconstruction: 0.0,
            kl: 0.0,
            total: 0.0,
            kl_weight: 1.0,
            kl_per_dim: Vec::new(),
            extra: Vec::new(),
        };
        let mut log = RowLog::default();
        let n = 2 * ROW_CHUNK + 7;
        for step in 0..n as u64 {
            log.push(row(step));
        }
        let copy = log.clone();
        assert_eq!(copy.len(), n);
        assert!(copy.iter().map(|r| r.step).eq(0..n as u64));
        log.clear();
        assert!(log.is_empty() && copy.len() == n);
    }

    #[test]
    fn the_row_log_stays_bounded_and_evenly_spaced_over_a_million_steps() {
        let mut log = RowLog::default();
        for step in 1..=1_000_000u64 {
            log.push(StepMetrics {
                step,
                epoch: 1,
                epoch_progress: 0.0,
                reconstruction: 1.0,
                kl: 1.0,
                total: 2.0,
                kl_weight: 1.0,
                kl_per_dim: vec![0.5, 0.5],
                extra: Vec::new(),
            });
            assert!(log.len() <= MAX_ROWS);
        }
        let steps: Vec<u64> = log.iter().map(|r| r.step).collect();
        assert_eq!(steps[0], 1, "the first step is kept");
        let stride = log.stride();
        assert!(stride >= 8, "a million rows thinned to {}", steps.len());
        assert!(
            steps.windows(2).all(|w| w[1] - w[0] == stride),
            "rows one stride apart"
        );
        assert!(1_000_000 - steps.last().unwrap() < stride);
    }

    #[test]
    fn keeps_the_start_and_stays_bounded() {
        let mut s = Series::with_capacity(100);
        for i in 0..10_000 {
            s.push(i as f64, i as f64);
        }
        assert!(s.len() <= 100);
        assert_eq!(s.points()[0], [0.0, 0.0]);
        assert_eq!(s.last(), Some(9999.0));
        assert!(
            s.points().windows(2).all(|w| w[0][0] < w[1][0]),
            "x stays ordered"
        );
    }

    #[test]
    fn smoothing_follows_the_data() {
        let mut s = Series::with_capacity(100);
        for i in 0..50 {
            s.push(i as f64, 10.0);
        }
        assert!(s.smoothed(0.1).iter().all(|p| (p[1] - 10.0).abs() < 1e-9));
    }
}
