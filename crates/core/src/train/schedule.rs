//! A long run's schedule: a validation split held out of the training set, the learning rate
//! decayed when the validation loss stops falling, and training stopped (with the best weights
//! put back) when it has stopped falling through every decay.

use serde::{Deserialize, Serialize};

/// How a long run is paced by its validation loss. Off (the default) when `validation` is 0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Schedule {
    /// Training images held out to validate on after each epoch: the last ones of the
    /// training split, which training then never sees (0: no validation, no schedule).
    pub validation: usize,
    /// Epochs without a new best validation loss that make a plateau.
    pub patience: usize,
    /// Factor on the learning rate at each plateau, in (0, 1] (1: stop at the first plateau).
    pub lr_decay: f64,
    /// Plateaus met with a decay; the next one stops training.
    pub max_decays: usize,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            validation: 0,
            patience: 10,
            lr_decay: 0.5,
            max_decays: 3,
        }
    }
}

impl Schedule {
    /// Whether a validation split is held out (and so the schedule runs).
    pub fn is_on(&self) -> bool {
        self.validation > 0
    }

    /// Why these settings cannot run, for a training split of `train_len` images and batches
    /// of `batch_size`.
    pub fn check(&self, train_len: usize, batch_size: usize) -> Result<(), String> {
        if !self.is_on() {
            return Ok(());
        }
        if self.validation + batch_size.max(1) > train_len {
            return Err(format!(
                "holding out {} validation images leaves fewer than one batch of {} of the {} training images",
                self.validation, batch_size, train_len
            ));
        }
        Ok(())
    }

    /// Why these settings are invalid whatever the data.
    pub fn validate(&self) -> Result<(), String> {
        if !self.is_on() {
            return Ok(());
        }
        if self.patience == 0 || self.patience > 10_000 {
            return Err(format!(
                "patience must be 1 to 10000 epochs, not {}",
                self.patience
            ));
        }
        if !(self.lr_decay > 0.0 && self.lr_decay <= 1.0) {
            return Err(format!(
                "the learning-rate decay must be in (0, 1], not {}",
                self.lr_decay
            ));
        }
        if self.max_decays > 100 {
            return Err(format!("at most 100 decays, not {}", self.max_decays));
        }
        Ok(())
    }
}

/// The learning rate's course over the epochs (besides the validation plateaus' decays).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LrSchedule {
    /// The configured rate throughout.
    #[default]
    Constant,
    /// Burda et al. (2016), section 5: stage `i = 0..7` lasts `3^i` epochs at `10^(-i/7)`
    /// times the configured rate (1e-3 there), 3,280 epochs in all; the last stage's rate
    /// holds beyond them.
    Burda,
}

impl LrSchedule {
    /// The epochs of Burda et al.'s whole schedule.
    pub const BURDA_EPOCHS: usize = 3280;

    /// The stage of epoch `epoch` (counted from 0) in Burda et al.'s schedule.
    pub fn burda_stage(epoch: usize) -> usize {
        let mut end = 0;
        for i in 0..8 {
            end += 3usize.pow(i as u32);
            if epoch < end {
                return i;
            }
        }
        7
    }

    /// The factor on the configured rate during epoch `epoch` (counted from 0).
    pub fn factor(self, epoch: usize) -> f64 {
        match self {
            LrSchedule::Constant => 1.0,
            LrSchedule::Burda => 10f64.powf(-(Self::burda_stage(epoch) as f64) / 7.0),
        }
    }
}

/// What the schedule decided after an epoch's validation loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Verdict {
    /// A new best loss: the weights are worth keeping.
    Best,
    /// No new best, and no plateau yet.
    Wait,
    /// A plateau: the learning rate is now `lr_scale` times the configured one.
    Decay {
        /// The new factor on the configured learning rate.
        lr_scale: f64,
    },
    /// A plateau after every decay: stop and put back the best weights.
    Stop {
        /// The epoch whose weights were best.
        best_epoch: usize,
    },
}

/// The schedule's running state (saved with a run, so that a resumed run keeps its best
/// loss, its patience left and its decays).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plateau {
    schedule: Schedule,
    /// The best validation loss and its epoch.
    best: Option<(f32, usize)>,
    /// Epochs since the best (or since the last decay).
    waited: usize,
    decays: usize,
    /// The factor on the configured learning rate.
    pub lr_scale: f64,
    /// Training has stopped early.
    pub stopped: bool,
}

impl Plateau {
    /// A fresh schedule.
    pub fn new(schedule: Schedule) -> Self {
        Self {
            schedule,
            best: None,
            waited: 0,
            decays: 0,
            lr_scale: 1.0,
            stopped: false,
        }
    }

    /// The best validation loss so far and its epoch.
    pub fn best(&self) -> Option<(f32, usize)> {
        self.best
    }

    /// Takes epoch `epoch`'s validation loss. A non-finite loss is never a best.
    pub fn observe(&mut self, epoch: usize, loss: f32) -> Verdict {
        if self.stopped {
            return Verdict::Stop {
                best_epoch: self.best.map_or(epoch, |b| b.1),
            };
        }
        if loss.is_finite() && self.best.is_none_or(|(b, _)| loss < b) {
            self.best = Some((loss, epoch));
            self.waited = 0;
            return Verdict::Best;
        }
        self.waited += 1;
        if self.waited < self.schedule.patience {
            return Verdict::Wait;
        }
        self.waited = 0;
        if self.decays < self.schedule.max_decays && self.schedule.lr_decay < 1.0 {
            self.decays += 1;
            self.lr_scale *= self.schedule.lr_decay;
            return Verdict::Decay {
                lr_scale: self.lr_scale,
            };
        }
        self.stopped = true;
        Verdict::Stop {
            best_epoch: self.best.map_or(epoch, |b| b.1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(patience: usize, lr_decay: f64, max_decays: usize) -> Schedule {
        Schedule {
            validation: 100,
            patience,
            lr_decay,
            max_decays,
        }
    }

    #[test]
    fn burdas_schedule_lasts_3_to_the_i_epochs_per_stage() {
        let s = LrSchedule::Burda;
        let stages: Vec<usize> = (0..LrSchedule::BURDA_EPOCHS)
            .map(LrSchedule::burda_stage)
            .collect();
        for i in 0..8 {
            let len = stages.iter().filter(|&&st| st == i).count();
            assert_eq!(len, 3usize.pow(i as u32), "stage {i}");
        }
        assert!(stages.windows(2).all(|w| w[0] <= w[1]), "stages only go up");
        assert_eq!(s.factor(0), 1.0);
        assert!((s.factor(1) - 10f64.powf(-1.0 / 7.0)).abs() < 1e-12);
        assert!((s.factor(3) - 10f64.powf(-1.0 / 7.0)).abs() < 1e-12);
        assert!((s.factor(4) - 10f64.powf(-2.0 / 7.0)).abs() < 1e-12);
        assert!((s.factor(3279) - 0.1).abs() < 1e-12);
        assert!(
            (s.factor(10_000) - 0.1).abs() < 1e-12,
            "the last rate holds"
        );
        assert_eq!(LrSchedule::Constant.factor(3000), 1.0);
    }

    #[test]
    fn a_falling_loss_is_always_best() {
        let mut p = Plateau::new(schedule(2, 0.5, 1));
        for (e, l) in [10.0, 9.0, 8.5, 8.4].into_iter().enumerate() {
            assert_eq!(p.observe(e + 1, l), Verdict::Best);
        }
        assert_eq!(p.best(), Some((8.4, 4)));
        assert_eq!(p.lr_scale, 1.0);
    }

    #[test]
    fn plateaus_decay_then_stop_with_the_best_epoch() {
        let mut p = Plateau::new(schedule(2, 0.5, 2));
        assert_eq!(p.observe(1, 5.0), Verdict::Best);
        assert_eq!(p.observe(2, 5.5), Verdict::Wait);
        assert_eq!(p.observe(3, 5.0), Verdict::Decay { lr_scale: 0.5 });
        assert_eq!(p.observe(4, 4.0), Verdict::Best);
        assert_eq!(p.observe(5, 4.1), Verdict::Wait);
        assert_eq!(p.observe(6, 4.2), Verdict::Decay { lr_scale: 0.25 });
        assert_eq!(p.observe(7, 4.0), Verdict::Wait);
        assert_eq!(p.observe(8, 4.3), Verdict::Stop { best_epoch: 4 });
        assert!(p.stopped);
        // Once stopped, it stays stopped.
        assert_eq!(p.observe(9, 1.0), Verdict::Stop { best_epoch: 4 });
    }

    #[test]
    fn no_decay_means_early_stopping_at_the_first_plateau() {
        let mut p = Plateau::new(schedule(1, 1.0, 3));
        assert_eq!(p.observe(1, 3.0), Verdict::Best);
        assert_eq!(p.observe(2, f32::NAN), Verdict::Stop { best_epoch: 1 });
    }

    #[test]
    fn settings_are_checked() {
        assert!(Schedule::default().validate().is_ok());
        assert!(schedule(0, 0.5, 1).validate().is_err());
        assert!(schedule(3, 0.0, 1).validate().is_err());
        assert!(schedule(3, 1.5, 1).validate().is_err());
        assert!(
            schedule(3, 0.5, 1)
                .check(100, 10)
                .is_err_and(|e| e.contains("validation"))
        );
        assert!(schedule(3, 0.5, 1).check(110, 10).is_ok());
        assert!(Schedule::default().check(1, 64).is_ok());
    }
}
