//! One way to run long work beside the caller: on a thread of its own where the platform has
//! threads, or a slice at a time when its holder turns it (between a browser page's frames,
//! where there are none). The work is written once, as steps ([`Work`]); [`Runner`] decides
//! where they run. The training loop, the end-of-epoch evaluation, the evaluator's scoring and
//! the window's exports all run through it.

use std::thread::JoinHandle;
use web_time::{Duration, Instant};

/// What one step of [`Work`] did.
#[derive(Debug, PartialEq)]
pub enum Step<T> {
    /// Some work, and there may be more right away.
    Worked,
    /// Nothing to do until something arrives (a command, a request).
    Idle,
    /// Waiting on the device (a read under way): the holder should hand control back (a
    /// page's reads complete only then) and turn it again soon.
    Waiting,
    /// The work is over, with its outcome.
    Done(T),
}

/// Work done a step at a time. A step should be short (milliseconds) when `wait` is false: a
/// page's frame waits for it.
pub trait Work: Send + 'static {
    /// What the work ends with.
    type Output: Send + 'static;

    /// Does the next step. With `wait` (on a thread of its own) an idle step may block for a
    /// while until something arrives; without it, it returns [`Step::Idle`] at once.
    fn step(&mut self, wait: bool) -> Step<Self::Output>;

    /// Runs the work to its end on its own thread: [`run_steps`], unless the work first needs
    /// its thread set up (a thread pool to run in, a lower priority).
    fn run(self) -> Self::Output
    where
        Self: Sized,
    {
        run_steps(self)
    }
}

/// Turns `work` until it is done, letting it wait when idle.
pub fn run_steps<W: Work>(mut work: W) -> W::Output {
    loop {
        match work.step(true) {
            Step::Done(out) => return out,
            // A thread waiting on a device read looks again a moment later.
            Step::Waiting => std::thread::sleep(Duration::from_micros(200)),
            Step::Worked | Step::Idle => {}
        }
    }
}

/// A panic's message, for the user.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Work under way: on its thread, or turned by whoever holds it ([`Runner::turn`]).
pub struct Runner<T> {
    name: String,
    state: State<T>,
}

enum State<T> {
    Thread(JoinHandle<T>),
    Turned {
        work: Box<dyn Work<Output = T>>,
        /// Whether the last turn ended with work left to do at once.
        busy: bool,
    },
    Finished(T),
    Taken,
}

impl<T: Send + 'static> Runner<T> {
    /// Starts `work` on a thread named `name` where the platform has threads; elsewhere it
    /// waits to be turned ([`Runner::turn`]). Fails only when the platform refuses a thread.
    pub fn start(name: &str, work: impl Work<Output = T>) -> std::io::Result<Self> {
        if !super::HAS_THREADS {
            return Ok(Self::turned(name, work));
        }
        let handle = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || work.run())?;
        Ok(Self {
            name: name.to_owned(),
            state: State::Thread(handle),
        })
    }

    /// `work` without a thread, on any platform: nothing happens but in [`Runner::turn`].
    pub fn turned(name: &str, work: impl Work<Output = T>) -> Self {
        Self {
            name: name.to_owned(),
            state: State::Turned {
                work: Box::new(work),
                busy: true,
            },
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the work runs on a thread of its own (else [`Runner::turn`] moves it).
    pub fn on_thread(&self) -> bool {
        matches!(self.state, State::Thread(_))
    }

    /// Turns work that has no thread for about `budget`: step after step until the budget is
    /// spent (a step is never cut short, so one slow step overruns it), the work is idle, or it
    /// is done. Returns whether it has more to do at once, so the caller knows to come back
    /// soon. Work on a thread is left alone (`false`).
    pub fn turn(&mut self, budget: Duration) -> bool {
        let State::Turned { work, busy } = &mut self.state else {
            return false;
        };
        let start = Instant::now();
        loop {
            match work.step(false) {
                Step::Worked if start.elapsed() < budget => {}
                Step::Worked => {
                    *busy = true;
                    return true;
                }
                Step::Idle => {
                    *busy = false;
                    return false;
                }
                Step::Waiting => {
                    *busy = true;
                    return true;
                }
                Step::Done(out) => {
                    self.state = State::Finished(out);
                    return false;
                }
            }
        }
    }

    /// Whether turning it now would do something: work without a thread that was busy at its
    /// last turn, or has been [`Runner::poke`]d since.
    pub fn wants_turn(&self) -> bool {
        matches!(self.state, State::Turned { busy: true, .. })
    }

    /// Tells work without a thread that something arrived for it (it is turned again even
    /// though it was idle).
    pub fn poke(&mut self) {
        if let State::Turned { busy, .. } = &mut self.state {
            *busy = true;
        }
    }

    /// Whether the work is over (its outcome may still be waiting in [`Runner::try_take`]).
    pub fn is_finished(&self) -> bool {
        match &self.state {
            State::Thread(handle) => handle.is_finished(),
            State::Turned { .. } => false,
            State::Finished(_) | State::Taken => true,
        }
    }

    /// The outcome, once the work is over (`None` while it runs, and after it was taken); a
    /// panic on its thread comes back as an error naming the work.
    pub fn try_take(&mut self) -> Option<Result<T, String>> {
        if !self.is_finished() {
            return None;
        }
        self.take()
    }

    /// Waits for work on a thread to end and takes its outcome. Work without a thread that is
    /// not over yet is dropped unfinished (`None`).
    pub fn join(&mut self) -> Option<Result<T, String>> {
        if let State::Turned { .. } = self.state {
            self.state = State::Taken;
            return None;
        }
        self.take()
    }

    /// [`Runner::join`], waiting at most `deadline` for work on a thread: past it the thread
    /// is left to end by itself (whatever it holds stays with it), and the answer says so.
    pub fn join_within(&mut self, deadline: Duration) -> Option<Result<T, String>> {
        if let State::Thread(handle) = &self.state {
            let start = Instant::now();
            while !handle.is_finished() {
                if start.elapsed() >= deadline {
                    self.state = State::Taken;
                    return Some(Err(format!(
                        "{} did not stop within {} s; it was left to end by itself",
                        self.name,
                        deadline.as_secs_f32()
                    )));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        self.join()
    }

    fn take(&mut self) -> Option<Result<T, String>> {
        match std::mem::replace(&mut self.state, State::Taken) {
            State::Thread(handle) => Some(handle.join().map_err(|panic| {
                let why = panic_message(panic.as_ref());
                format!("{} stopped with an internal error: {why}", self.name)
            })),
            State::Finished(out) => Some(Ok(out)),
            other @ State::Turned { .. } => {
                self.state = other;
                None
            }
            State::Taken => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::{Receiver, TryRecvError, channel};

    /// Sums the numbers it is sent until it is sent 0.
    struct Sum {
        numbers: Receiver<u64>,
        total: u64,
    }

    impl Work for Sum {
        type Output = u64;

        fn step(&mut self, wait: bool) -> Step<u64> {
            let next = match wait {
                true => self.numbers.recv().map_err(|_| TryRecvError::Disconnected),
                false => self.numbers.try_recv(),
            };
            match next {
                Ok(0) | Err(TryRecvError::Disconnected) => Step::Done(self.total),
                Ok(n) => {
                    self.total += n;
                    Step::Worked
                }
                Err(TryRecvError::Empty) => Step::Idle,
            }
        }
    }

    #[test]
    fn the_same_work_runs_on_a_thread_or_turned_by_its_holder() {
        // On a thread: it ends by itself.
        let (send, numbers) = channel();
        let mut runner = Runner::start("sum", Sum { numbers, total: 0 }).unwrap();
        assert!(runner.on_thread());
        for n in [1, 2, 3, 0] {
            send.send(n).unwrap();
        }
        assert_eq!(runner.join(), Some(Ok(6)));
        assert_eq!(runner.join(), None, "an outcome is taken once");

        // Turned: nothing happens between turns, and an idle turn asks for no more.
        let (send, numbers) = channel();
        let mut runner = Runner::turned("sum", Sum { numbers, total: 0 });
        assert!(!runner.on_thread() && runner.wants_turn());
        send.send(4).unwrap();
        assert!(
            !runner.turn(Duration::from_secs(1)),
            "idle after one number"
        );
        assert!(!runner.wants_turn() && runner.try_take().is_none());
        send.send(5).unwrap();
        runner.poke();
        assert!(runner.wants_turn());
        // A budget of nothing still takes a step, then says there may be more.
        send.send(1).unwrap();
        assert!(runner.turn(Duration::ZERO));
        send.send(0).unwrap();
        assert!(!runner.turn(Duration::from_secs(1)));
        assert!(runner.is_finished());
        assert_eq!(runner.try_take(), Some(Ok(10)));
    }

    #[test]
    fn a_panic_on_the_thread_comes_back_as_an_error_naming_the_work() {
        struct Panics;
        impl Work for Panics {
            type Output = ();
            fn step(&mut self, _wait: bool) -> Step<()> {
                panic!("deliberately")
            }
        }
        let mut runner = Runner::start("the export", Panics).unwrap();
        let e = runner.join().unwrap().unwrap_err();
        assert!(
            e.contains("the export") && e.contains("deliberately"),
            "{e}"
        );
    }

    #[test]
    fn a_thread_that_does_not_stop_is_left_after_the_deadline() {
        let (send, numbers) = channel::<u64>();
        let mut runner = Runner::start("the stuck work", Sum { numbers, total: 0 }).unwrap();
        let start = Instant::now();
        let e = runner
            .join_within(Duration::from_millis(100))
            .unwrap()
            .unwrap_err();
        assert!(
            e.contains("the stuck work") && e.contains("did not stop"),
            "{e}"
        );
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(runner.is_finished() && runner.join().is_none());
        // Work that ends in time gives its outcome.
        drop(send);
        let (send, numbers) = channel();
        let mut runner = Runner::start("sum", Sum { numbers, total: 0 }).unwrap();
        send.send(7).unwrap();
        send.send(0).unwrap();
        assert_eq!(runner.join_within(Duration::from_secs(30)), Some(Ok(7)));
    }

    #[test]
    fn unfinished_work_without_a_thread_is_dropped_on_join() {
        let (_send, numbers) = channel();
        let mut runner = Runner::turned("sum", Sum { numbers, total: 0 });
        assert_eq!(runner.join(), None);
        assert!(runner.is_finished());
    }
}
