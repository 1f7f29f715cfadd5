//! Where a driver's events and snapshots go: the consumer's queue, the newest-snapshot slot,
//! and the waker that tells the consumer (the window, a command) to look.

use std::sync::Arc;
use std::sync::mpsc::SyncSender;

use super::{Event, Slot, Waker};
use crate::train::Snapshot;

/// Where events and snapshots go.
#[derive(Clone)]
pub struct Outbox {
    events: SyncSender<Event>,
    snapshots: Arc<Slot<Snapshot>>,
    waker: Waker,
    /// Whether a full queue waits for the consumer (a thread's), or drops the event: a driver
    /// turned by its own consumer would otherwise wait for itself.
    wait_when_full: bool,
}

impl Outbox {
    pub fn new(events: SyncSender<Event>, snapshots: Arc<Slot<Snapshot>>, waker: Waker) -> Self {
        Self {
            events,
            snapshots,
            waker,
            wait_when_full: true,
        }
    }

    /// The same, dropping events that find the queue full instead of waiting.
    pub fn never_waiting(self) -> Self {
        Self {
            wait_when_full: false,
            ..self
        }
    }

    /// Sends an event; `false` when the consumer is gone.
    pub fn send(&self, event: Event) -> bool {
        let ok = match self.wait_when_full {
            true => self.events.send(event).is_ok(),
            false => !matches!(
                self.events.try_send(event),
                Err(std::sync::mpsc::TrySendError::Disconnected(_))
            ),
        };
        (self.waker)();
        ok
    }

    pub fn snapshot(&self, snapshot: Snapshot) -> bool {
        let step = snapshot.step;
        self.snapshots.put(snapshot);
        self.send(Event::SnapshotReady { step })
    }
}
