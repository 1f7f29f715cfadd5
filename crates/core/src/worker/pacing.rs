//! How the driver paces itself: how often it takes a snapshot, how many steps share one
//! readback from a far device, and the recent throughput it reports.

use web_time::{Duration, Instant};

use super::guarded;
use crate::backend::Backend;

/// Spaces snapshots so that taking them costs at most a thirtieth of training time: at least
/// [`super::driver::SNAPSHOT_EVERY`] steps apart, and at least 29 times the last one's duration.
#[derive(Clone, Copy, Debug)]
pub(super) struct SnapshotPacer {
    pub last: Instant,
    pub cost: Duration,
}

impl Default for SnapshotPacer {
    fn default() -> Self {
        Self {
            last: Instant::now(),
            cost: Duration::ZERO,
        }
    }
}

impl SnapshotPacer {
    pub(super) fn due(&self) -> bool {
        self.last.elapsed() >= self.cost * 29
    }
}

/// How many steps share one readback. On the local CPU, one each (a readback costs nothing
/// there, and a bad loss is then caught before it reaches the weights). On a far device (a
/// remote server, a GPU) each readback is a round trip, so steps are batched until one round
/// trip is under 5% of their time: `k >= 19 rtt / c` for a step computing in `c`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Readback {
    /// The round trip of a one-value readback (`None`: steps read back one by one).
    round_trip: Option<Duration>,
    /// Steps per readback now.
    pub steps: usize,
}

/// Steps per readback where reads are asynchronous: each read costs at least one hand-back to
/// the browser.
const ASYNC_STEPS: usize = 16;

/// The most steps one readback may cover.
const MAX_STEPS_PER_READBACK: usize = 64;

impl Readback {
    /// One step per readback.
    fn each_step() -> Self {
        Self {
            round_trip: None,
            steps: 1,
        }
    }

    /// Per step on the local CPU; on a far device (one that keeps the images), measured, or per
    /// step when even the measurement fails.
    pub(super) fn for_backend(backend: &Backend) -> Self {
        if backend.reads_async {
            // No round trip can be timed without waiting on it: a fixed number of steps.
            return Self {
                round_trip: None,
                steps: ASYNC_STEPS,
            };
        }
        match backend.images_on_device {
            true => guarded(|| Self::measured(&backend.device)).unwrap_or(Self::each_step()),
            false => Self::each_step(),
        }
    }

    /// For a far `device`: its round trip measured (the fastest of five one-value reads).
    fn measured(device: &burn::tensor::Device) -> Self {
        let round_trip = (0..5)
            .map(|_| {
                let t = Instant::now();
                let _ = crate::data::batch::to_vec(burn::tensor::Tensor::<1>::zeros([1], device));
                t.elapsed()
            })
            .min();
        Self {
            round_trip,
            steps: 1,
        }
    }

    /// Chooses the next batch of steps from the last: `elapsed` for `done` steps.
    pub(super) fn observe(&mut self, elapsed: Duration, done: usize) {
        let Some(rtt) = self.round_trip else { return };
        if done == 0 {
            return;
        }
        let per_step = elapsed.as_secs_f64() / done as f64;
        let compute = (per_step - rtt.as_secs_f64() / done as f64).max(1e-6);
        let k = (19.0 * rtt.as_secs_f64() / compute).ceil();
        self.steps = (k as usize).clamp(1, MAX_STEPS_PER_READBACK);
    }
}

/// Samples per second over the last few seconds.
#[derive(Default)]
pub(super) struct Throughput {
    window: std::collections::VecDeque<(Instant, usize)>,
}

impl Throughput {
    pub(super) fn record(&mut self, samples: usize) -> f32 {
        let now = Instant::now();
        self.window.push_back((now, samples));
        while self.window.len() > 2 && now.duration_since(self.window[0].0) > Duration::from_secs(3)
        {
            self.window.pop_front();
        }
        let span = now.duration_since(self.window[0].0).as_secs_f32();
        let count: usize = self.window.iter().skip(1).map(|w| w.1).sum();
        if span > 0.0 { count as f32 / span } else { 0.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_per_readback_keep_the_round_trip_under_five_percent() {
        let mut r = Readback {
            round_trip: Some(Duration::from_millis(2)),
            steps: 1,
        };
        // One step of 10 ms computing plus the 2 ms round trip.
        r.observe(Duration::from_millis(12), 1);
        assert_eq!(r.steps, 4, "19 x 2 / 10 = 3.8");
        // Four steps: 40 ms computing, one 2 ms trip, 4.8% of the time.
        let rtt = 2.0;
        let total = 4.0 * 10.0 + rtt;
        assert!(rtt / total < 0.05);
        r.observe(Duration::from_millis(42), 4);
        assert_eq!(r.steps, 4, "the same steps again");
        // A slow link with fast steps is capped.
        r.round_trip = Some(Duration::from_millis(100));
        r.observe(Duration::from_millis(101), 1);
        assert_eq!(r.steps, MAX_STEPS_PER_READBACK);
        let mut local = Readback::each_step();
        local.observe(Duration::from_millis(12), 1);
        assert_eq!(local.steps, 1, "the local CPU reads every step");
    }

    #[test]
    fn snapshots_wait_for_29_times_their_cost() {
        let cost = Duration::from_millis(10);
        let recent = SnapshotPacer {
            last: Instant::now() - Duration::from_millis(100),
            cost,
        };
        assert!(!recent.due(), "after 10 times the cost");
        let old = SnapshotPacer {
            last: Instant::now() - Duration::from_millis(300),
            cost,
        };
        assert!(old.due(), "after 30 times the cost");
        assert!(
            SnapshotPacer::default().due(),
            "the first snapshot has no cost to wait for"
        );
    }
}
