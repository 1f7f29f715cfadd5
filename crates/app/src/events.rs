//! Folding the workers' events into the state, within a time budget per frame.

use web_time::{Duration, Instant};

use super::LatentAtlasApp;
use latent_atlas_core::worker::{Command, Event, RunState};

/// Time allowed per frame for folding worker events.
const EVENT_BUDGET: Duration = Duration::from_millis(10);

impl LatentAtlasApp {
    /// Folds pending worker events into the state, within a time budget.
    pub fn poll_worker(&mut self) {
        let Some(worker) = &self.worker else { return };
        let start = Instant::now();
        let mut run_files = None;
        while start.elapsed() < EVENT_BUDGET {
            let Some(event) = worker.try_recv() else {
                break;
            };
            // A run saved as files (in a browser): bundled with the views, then downloaded.
            if let Event::RunFiles(files) = event {
                run_files = Some(files);
                continue;
            }
            let ready = matches!(event, Event::Ready { .. });
            let failed = matches!(event, Event::Failed(_));
            self.state.apply(event);
            if ready {
                // A new run: the plane fits its first snapshot.
                self.views.plane.reset = true;
            }
            if ready {
                self.dataset_before = None;
            }
            // A refused dataset leaves the settings naming the one still trained on.
            if failed
                && self.start_when_ready
                && let Some((dataset, upload)) = self.dataset_before.take()
            {
                self.views.draft.dataset_path = dataset.clone();
                let config = &mut self.state.settings.config;
                (config.dataset, config.upload) = (dataset, upload);
            }
            if ready && std::mem::take(&mut self.start_when_ready) {
                worker.send(Command::Start);
            }
            if ready && let Some((train, tests)) = self.pending_history.take() {
                self.state.main.restore(train, tests);
            }
            if failed {
                self.start_when_ready = false;
                self.pending_history = None;
            }
        }
        if let Some(s) = worker.take_snapshot() {
            self.state.set_snapshot(s);
        }
        if let Some(files) = run_files {
            self.start_export(super::exporter::ExportJob::Run(files), Default::default());
        }
        self.poll_compare();
    }

    /// Folds the comparison run's events; it follows the main run's start and pause.
    pub(super) fn poll_compare(&mut self) {
        let (Some(worker), Some(compare)) = (&self.compare_worker, &mut self.state.compare) else {
            return;
        };
        let start = Instant::now();
        while start.elapsed() < EVENT_BUDGET {
            let Some(event) = worker.try_recv() else {
                break;
            };
            if matches!(event, Event::Ready { .. })
                && self.state.main.state == Some(RunState::Running)
            {
                worker.send(Command::Start);
            }
            compare.apply(event);
        }
        if let Some(s) = worker.take_snapshot() {
            compare.set_snapshot(s);
        }
    }
}
