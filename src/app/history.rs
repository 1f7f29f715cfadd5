//! A curve that keeps a whole run in bounded memory: when full, old points are thinned two to
//! one (averaged), always keeping the very first point, so the start is never dropped.

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
