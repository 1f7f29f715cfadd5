//! `latent-atlas reproduce`: re-runs each comparison the documentation makes, over several
//! seeds, and writes one table (markdown and CSV) with every seed's value, the mean and spread,
//! and a verdict per claim. Runs shared by several claims are trained once per seed.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::backend::BackendChoice;
use crate::fsio::atomic_write;
use crate::model::adversarial::AliLoss;
use crate::run::RunView;
use crate::train::{ModelKind, TrainConfig};

/// `latent-atlas reproduce`.
#[derive(Args, Debug)]
pub struct ReproduceArgs {
    /// Seeds per claim (0, 1, ...).
    #[arg(long, default_value_t = 3)]
    pub seeds: u64,
    /// Epochs per run: the budget. The documented figures are at 10.
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Dataset.
    #[arg(long, default_value = "mnist")]
    pub dataset: String,
    /// Compute backend: cpu, gpu, auto, flex, ndarray or remote:ws://HOST:PORT.
    #[arg(long, default_value = "cpu")]
    pub backend: BackendChoice,
    /// Folder for `claims.md` and `claims.csv` (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Only the claims whose text contains this (ignoring case), e.g. `GAN`.
    #[arg(long)]
    pub only: Option<String>,
}

impl ReproduceArgs {
    /// The claims this run re-runs.
    fn claims(&self) -> Vec<&'static Claim> {
        let only = self.only.as_deref().map(str::to_lowercase);
        CLAIMS
            .iter()
            .filter(|c| {
                only.as_ref()
                    .is_none_or(|o| c.text.to_lowercase().contains(o))
            })
            .collect()
    }
}

/// One training run of a claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Run {
    Ae,
    Vae,
    Cvae,
    Vae16Beta4,
    BnVae16Beta4,
    FVae,
    Gan,
    GanWithoutRegulariser,
    Aae,
    AliDerivedGaussian,
    AliMinimaxGaussian,
    /// d = 50, dynamically binarised, trained on the ELBO.
    Vae50,
    /// d = 50, dynamically binarised, trained on the importance-weighted bound (K = 5).
    Iw50,
}

impl Run {
    fn label(self) -> &'static str {
        match self {
            Run::Ae => "AE",
            Run::Vae => "VAE",
            Run::Cvae => "CVAE",
            Run::Vae16Beta4 => "VAE, d = 16, beta = 4",
            Run::BnVae16Beta4 => "BN-VAE, d = 16, beta = 4",
            Run::FVae => "f-VAE",
            Run::Gan => "GAN, lambda = 5",
            Run::GanWithoutRegulariser => "GAN, lambda = 0",
            Run::Aae => "AAE",
            Run::AliDerivedGaussian => "ALI derived, Gaussian encoder",
            Run::AliMinimaxGaussian => "ALI minimax, Gaussian encoder",
            Run::Vae50 => "VAE, d = 50, binarised, ELBO",
            Run::Iw50 => "VAE, d = 50, binarised, IW bound K = 5",
        }
    }

    fn config(self, base: &TrainConfig) -> TrainConfig {
        let mut c = base.clone();
        let family = match self {
            Run::Ae => ModelKind::Ae,
            Run::Vae | Run::Vae16Beta4 | Run::Vae50 | Run::Iw50 => ModelKind::Vae,
            Run::Cvae => ModelKind::Cvae,
            Run::BnVae16Beta4 => ModelKind::BnVae,
            Run::FVae => ModelKind::FVae,
            Run::Gan | Run::GanWithoutRegulariser => ModelKind::Gan,
            Run::Aae => ModelKind::Aae,
            Run::AliDerivedGaussian | Run::AliMinimaxGaussian => ModelKind::Ali,
        };
        c.set_model(family);
        match self {
            Run::Vae16Beta4 | Run::BnVae16Beta4 => {
                c.latent_dim = 16;
                c.hyper.beta = 4.0;
            }
            Run::GanWithoutRegulariser => c.adversarial.lambda = 0.0,
            Run::AliDerivedGaussian => {
                c.adversarial.ali_loss = AliLoss::Derived;
                c.adversarial.ali_gaussian_encoder = true;
            }
            Run::AliMinimaxGaussian => {
                c.adversarial.ali_loss = AliLoss::Minimax;
                c.adversarial.ali_gaussian_encoder = true;
            }
            Run::Vae50 | Run::Iw50 => {
                c.latent_dim = 50;
                c.binarize = true;
                c.hyper.iw_samples = if self == Run::Iw50 { 5 } else { 1 };
                // The claim is read off the test likelihood: K = 100 on 1,000 test images.
                c.nll_samples = 100;
                c.nll_images = 1000;
            }
            _ => {}
        }
        c
    }
}

/// What is read off a finished run.
#[derive(Clone, Copy, Debug)]
enum Metric {
    /// The last test hole share, in percent.
    HoleShare,
    /// The last score's class-conditional accuracy, in percent.
    ClassAccuracy,
    /// Burda's active units at the last epoch.
    ActiveUnits,
    /// The last test negative ELBO, in nats.
    NegElbo,
    /// The last test importance-sampled negative log-likelihood, in nats.
    Nll,
    /// The last score's class entropy, in nats.
    ClassEntropy,
    /// 1 if the run stopped early (diverged), else 0.
    Diverged,
}

impl Metric {
    fn name(self) -> &'static str {
        match self {
            Metric::HoleShare => "hole share (%)",
            Metric::ClassAccuracy => "class-conditional accuracy (%)",
            Metric::ActiveUnits => "active units (Burda)",
            Metric::NegElbo => "test negative ELBO (nats)",
            Metric::Nll => "test NLL, importance-sampled (nats)",
            Metric::ClassEntropy => "class entropy at T = 1 (nats)",
            Metric::Diverged => "diverged (1) or not (0)",
        }
    }

    fn read(self, outcome: &Outcome) -> Option<f64> {
        let test = outcome.run.tests.last();
        let score = outcome.run.scores.last();
        match self {
            Metric::HoleShare => test?.hole_share.map(|h| 100.0 * h as f64),
            Metric::ClassAccuracy => score?.class_accuracy.map(|a| 100.0 * a as f64),
            Metric::ActiveUnits => test?.active_units().map(|u| u as f64),
            Metric::NegElbo => test?.neg_elbo.map(f64::from),
            Metric::Nll => test?.nll.map(f64::from),
            Metric::ClassEntropy => score.map(|s| s.entropy as f64),
            Metric::Diverged => Some(f64::from(u8::from(outcome.error.is_some()))),
        }
    }
}

/// How a claim is judged from the per-seed values of its runs (in the claim's order).
#[derive(Clone, Copy, Debug)]
enum Verdict {
    /// The first run's value is below the second's in every seed.
    FirstLower,
    /// The first run's value is above the second's in every seed.
    FirstHigher,
    /// The single run's mean is above the threshold.
    Above(f64),
}

struct Claim {
    text: &'static str,
    runs: &'static [Run],
    metric: Metric,
    verdict: Verdict,
}

const CLAIMS: &[Claim] = &[
    Claim {
        text: "The VAE leaves fewer holes in the prior than the AE",
        runs: &[Run::Vae, Run::Ae],
        metric: Metric::HoleShare,
        verdict: Verdict::FirstLower,
    },
    Claim {
        text: "The CVAE's class-conditional samples are classified as their class (above 80%)",
        runs: &[Run::Cvae],
        metric: Metric::ClassAccuracy,
        verdict: Verdict::Above(80.0),
    },
    Claim {
        text: "At d = 16, beta = 4 the BN-VAE keeps more units active (Burda's test) than the VAE",
        runs: &[Run::BnVae16Beta4, Run::Vae16Beta4],
        metric: Metric::ActiveUnits,
        verdict: Verdict::FirstHigher,
    },
    Claim {
        text: "Under the same (Bernoulli) likelihood the f-VAE's bound is below the VAE's",
        runs: &[Run::FVae, Run::Vae],
        metric: Metric::NegElbo,
        verdict: Verdict::FirstLower,
    },
    Claim {
        text: "The default GAN's samples cover the digits (class entropy above 2.0 of 2.303)",
        runs: &[Run::Gan],
        metric: Metric::ClassEntropy,
        verdict: Verdict::Above(2.0),
    },
    Claim {
        text: "The old-generator regulariser keeps the GAN's samples more varied",
        runs: &[Run::Gan, Run::GanWithoutRegulariser],
        metric: Metric::ClassEntropy,
        verdict: Verdict::FirstHigher,
    },
    Claim {
        text: "The AAE's codes leave more of the prior uncovered than the VAE's posteriors",
        runs: &[Run::Aae, Run::Vae],
        metric: Metric::HoleShare,
        verdict: Verdict::FirstHigher,
    },
    Claim {
        text: "With a Gaussian encoder, ALI's derived loss diverges where the minimax form trains",
        runs: &[Run::AliDerivedGaussian, Run::AliMinimaxGaussian],
        metric: Metric::Diverged,
        verdict: Verdict::FirstHigher,
    },
    Claim {
        text: "The importance-weighted objective (K = 5) reaches a better test NLL than the ELBO at the same budget (d = 50, binarised)",
        runs: &[Run::Iw50, Run::Vae50],
        metric: Metric::Nll,
        verdict: Verdict::FirstLower,
    },
];

/// A finished run: its folded events and why it stopped early, if it did.
struct Outcome {
    run: RunView,
    error: Option<String>,
}

/// Mean and sample standard deviation.
fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// Whether the claim holds on `values[run][seed]` (`None`: a value is missing).
fn judge(verdict: Verdict, values: &[Vec<Option<f64>>]) -> Option<bool> {
    let seeds = values.first()?.len();
    let pair = |i: usize| Some((values.first()?[i]?, values.get(1)?[i]?));
    match verdict {
        Verdict::FirstLower => (0..seeds)
            .map(|i| pair(i).map(|(a, b)| a < b))
            .collect::<Option<Vec<_>>>()
            .map(|v| v.iter().all(|&x| x)),
        Verdict::FirstHigher => (0..seeds)
            .map(|i| pair(i).map(|(a, b)| a > b))
            .collect::<Option<Vec<_>>>()
            .map(|v| v.iter().all(|&x| x)),
        Verdict::Above(t) => {
            let v: Option<Vec<f64>> = values.first()?.iter().copied().collect();
            Some(mean_sd(&v?).0 > t)
        }
    }
}

/// Runs every claim and writes the table.
pub fn run(args: &ReproduceArgs) -> anyhow::Result<()> {
    if args.seeds == 0 || args.epochs == 0 {
        anyhow::bail!("--seeds and --epochs must be at least 1");
    }
    let claims = args.claims();
    if claims.is_empty() {
        anyhow::bail!(
            "--only {:?}: no claim's text contains it",
            args.only.as_deref().unwrap_or_default()
        );
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.out.display()))?;
    let mut runs: Vec<Run> = Vec::new();
    for c in &claims {
        for r in c.runs {
            if !runs.contains(r) {
                runs.push(*r);
            }
        }
    }
    let bar = ProgressBar::new((runs.len() as u64) * args.seeds);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} runs  {msg}  [{elapsed} < {eta}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut outcomes: HashMap<(Run, u64), Outcome> = HashMap::new();
    for seed in 0..args.seeds {
        for &r in &runs {
            bar.set_message(format!("{}, seed {seed}", r.label()));
            let base = TrainConfig {
                dataset: args.dataset.clone(),
                epochs: args.epochs,
                seed,
                nll_samples: 0,
                ..TrainConfig::default()
            };
            let (run, result) =
                crate::cli::drive::run_quietly(r.config(&base), args.backend.clone(), 1000);
            let error = result.err().map(|e| format!("{e:#}"));
            if let Some(e) = &error {
                bar.suspend(|| eprintln!("{}, seed {seed}: stopped: {e}", r.label()));
            }
            outcomes.insert((r, seed), Outcome { run, error });
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let (md, csv) = table(args, &claims, &outcomes);
    atomic_write(&args.out.join("claims.md"), md.as_bytes())?;
    atomic_write(&args.out.join("claims.csv"), csv.as_bytes())?;
    print!("{md}");
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

fn table(
    args: &ReproduceArgs,
    claims: &[&Claim],
    outcomes: &HashMap<(Run, u64), Outcome>,
) -> (String, String) {
    let seeds: Vec<u64> = (0..args.seeds).collect();
    let only = match &args.only {
        Some(o) => format!(" --only {o}"),
        None => String::new(),
    };
    let mut md = format!(
        "Claims re-run with {} seed(s), {} epoch(s) per run, on {} (`latent-atlas reproduce --seeds {} --epochs {}{only}`).\n\n\
         | claim | run | metric | per seed | mean +- sd | verdict |\n|---|---|---|---|---|---|\n",
        args.seeds, args.epochs, args.dataset, args.seeds, args.epochs
    );
    let mut csv = String::from("claim,run,metric,seed,value,mean,sd,verdict\n");
    for c in claims {
        let values: Vec<Vec<Option<f64>>> = c
            .runs
            .iter()
            .map(|r| {
                seeds
                    .iter()
                    .map(|s| outcomes.get(&(*r, *s)).and_then(|o| c.metric.read(o)))
                    .collect()
            })
            .collect();
        let verdict = match judge(c.verdict, &values) {
            Some(true) => "holds",
            Some(false) => "does not hold",
            None => "undecided (missing values)",
        };
        for (r, v) in c.runs.iter().zip(&values) {
            let known: Vec<f64> = v.iter().flatten().copied().collect();
            let (mean, sd) = mean_sd(&known);
            let per_seed: Vec<String> = v
                .iter()
                .map(|x| x.map_or("-".to_owned(), |x| format!("{x:.2}")))
                .collect();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {mean:.2} +- {sd:.2} | {verdict} |",
                c.text,
                r.label(),
                c.metric.name(),
                per_seed.join(", ")
            );
            for (s, x) in seeds.iter().zip(v) {
                let _ = writeln!(
                    csv,
                    "\"{}\",\"{}\",\"{}\",{s},{},{mean},{sd},{verdict}",
                    c.text,
                    r.label(),
                    c.metric.name(),
                    x.map_or(String::new(), |x| x.to_string())
                );
            }
        }
    }
    (md, csv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_need_every_seed_and_say_when_values_are_missing() {
        let lower = vec![vec![Some(1.0), Some(2.0)], vec![Some(3.0), Some(4.0)]];
        assert_eq!(judge(Verdict::FirstLower, &lower), Some(true));
        assert_eq!(judge(Verdict::FirstHigher, &lower), Some(false));
        let mixed = vec![vec![Some(1.0), Some(5.0)], vec![Some(3.0), Some(4.0)]];
        assert_eq!(
            judge(Verdict::FirstLower, &mixed),
            Some(false),
            "one seed against"
        );
        let missing = vec![vec![Some(1.0), None], vec![Some(3.0), Some(4.0)]];
        assert_eq!(judge(Verdict::FirstLower, &missing), None);
        assert_eq!(
            judge(Verdict::Above(50.0), &[vec![Some(60.0), Some(45.0)]]),
            Some(true)
        );
        let (m, sd) = mean_sd(&[1.0, 3.0]);
        assert!((m - 2.0).abs() < 1e-12 && (sd - 2f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn only_picks_claims_by_their_text() {
        let args = |only: Option<&str>| ReproduceArgs {
            seeds: 1,
            epochs: 1,
            dataset: "mnist".into(),
            backend: BackendChoice::Cpu,
            out: PathBuf::from("unused"),
            only: only.map(str::to_owned),
        };
        assert_eq!(args(None).claims().len(), CLAIMS.len());
        let gan = args(Some("gan")).claims();
        assert_eq!(gan.len(), 2, "the GAN's target and its regulariser");
        assert!(gan.iter().all(|c| c.runs.contains(&Run::Gan)));
        assert!(args(Some("no such claim")).claims().is_empty());
        let err = run(&args(Some("no such claim"))).unwrap_err().to_string();
        assert!(err.contains("no claim"), "{err}");
    }
}
