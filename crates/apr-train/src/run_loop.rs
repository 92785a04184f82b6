//! The step loop around a trainer's own step, shared by the SFT and GRPO
//! trainers: time accounting and the time limit, a requested stop, the
//! metrics line, the progress bar, and checkpoints (divergence guard,
//! training state and model export, plots); after the loop, the export of
//! a run that took no step in this process, and `summary.json`.
//!
//! A trainer keeps what is its own (where a step's data comes from, the
//! step, validation). Its loop is
//!
//! ```text
//! while st.step < steps {
//!     ...the step; st.step += 1...
//!     let end = run.end_step(st.step);        // time, time limit, last step
//!     ...st.seconds = end.seconds; metrics row, validation when due...
//!     if !run.finish_step(&end, &row, msg, &model, &optim, &st)? { break }
//! }
//! run.finish(&model, |f, metrics| summary)
//! ```

use crate::error::Result;
use crate::guard::Guard;
use crate::sft::RunOptions;
use crate::snapshots;
use crate::state::{self, Metrics};
use apr_model::{checkpoint, Llama};
use burn::module::AutodiffModule;
use burn::optim::Optimizer;
use burn::tensor::backend::AutodiffBackend;
use indicatif::ProgressBar;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// When a run stops and checkpoints, from its config.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    /// Steps of the whole run.
    pub steps: usize,
    /// Stop once the run's seconds (all processes) reach this many
    /// minutes.
    pub time_limit_minutes: Option<f64>,
    /// Checkpoint every this many steps (0: only when forced: the last
    /// step, the time limit, a requested stop).
    pub checkpoint_every: usize,
    /// Keep the exports of the last this many checkpoints
    /// ([`crate::snapshots`]; 0: none).
    pub keep_exports: usize,
}

/// Writes a run's plots into its directory from its metrics.
pub type Plots = fn(&Path, &Metrics) -> Result<()>;

/// Where the step just taken stands.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepEnd {
    /// The step (1-based).
    pub step: usize,
    /// Seconds of training so far, earlier processes of the run included.
    pub seconds: f64,
    /// Whether the time limit is reached.
    pub time_up: bool,
    /// Whether the run ends with this step (its step count or the time
    /// limit): final validation and a checkpoint are due.
    pub last: bool,
}

/// How a run's loop ended, for its summary.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Finished {
    /// Whether the time limit stopped the run before its step count.
    pub stopped_on_time: bool,
    /// Seconds this process spent in the loop.
    pub seconds_here: f64,
}

/// The shared part of a run's step loop (see the module docs).
pub struct RunLoop {
    out: PathBuf,
    state_dir: PathBuf,
    schedule: Schedule,
    stop_after: Option<usize>,
    tokenizer_json: String,
    plots: Plots,
    metrics: Metrics,
    guard: Guard,
    bar: ProgressBar,
    start: Instant,
    seconds0: f64,
    steps_here: usize,
    stopped_on_time: bool,
}

/// The directory of a run's final model (Hugging Face layout).
pub fn model_dir(out: &Path) -> PathBuf {
    out.join("model")
}

impl RunLoop {
    /// The loop of the run in `out`, resumed at step `at.0` with `at.1`
    /// seconds behind it (0 and 0.0 for a fresh run), its metrics file and
    /// the tokenizer exported with every checkpoint. The clock starts now.
    pub fn new(
        out: &Path,
        opts: &RunOptions,
        schedule: Schedule,
        at: (usize, f64),
        metrics: Metrics,
        tokenizer_json: String,
        plots: Plots,
    ) -> RunLoop {
        let state_dir = out.join("state");
        RunLoop {
            out: out.to_path_buf(),
            guard: Guard::new(state_dir.clone(), (at.0 > 0).then_some(at.0)),
            state_dir,
            schedule,
            stop_after: opts.stop_after,
            tokenizer_json,
            plots,
            metrics,
            bar: state::progress(opts.progress, schedule.steps as u64, at.0 as u64),
            start: Instant::now(),
            seconds0: at.1,
            steps_here: 0,
            stopped_on_time: false,
        }
    }

    /// The divergence guard, for a trainer's per-update checks.
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// The run's metrics, all processes so far.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Appends a metrics line outside a step (the initial validation).
    pub fn log<R: Serialize>(&mut self, row: &R) -> Result<()> {
        self.metrics.push(row)
    }

    /// Seconds since this process's loop started.
    pub fn seconds_here(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Counts step `step` (1-based, just taken) as done in this process
    /// and says where it stands.
    pub fn end_step(&mut self, step: usize) -> StepEnd {
        self.steps_here += 1;
        let seconds = self.seconds0 + self.seconds_here();
        let time_up = self
            .schedule
            .time_limit_minutes
            .is_some_and(|t| seconds >= t * 60.0);
        StepEnd {
            step,
            seconds,
            time_up,
            last: step == self.schedule.steps || time_up,
        }
    }

    /// Ends the step `end`: appends `row` to the metrics, moves the
    /// progress bar, and when a checkpoint is due (schedule, last step,
    /// requested stop) checks the weights, saves `model`, `optim` and the
    /// position `state` with the model export, and redraws the plots.
    /// Returns whether the loop goes on (false on the time limit or a
    /// requested stop).
    pub fn finish_step<B, O, S, R>(
        &mut self,
        end: &StepEnd,
        row: &R,
        message: String,
        model: &Llama<B>,
        optim: &O,
        state: &S,
    ) -> Result<bool>
    where
        B: AutodiffBackend,
        O: Optimizer<Llama<B>, B>,
        S: Serialize,
        R: Serialize,
    {
        self.metrics.push(row)?;
        self.bar.set_position(end.step as u64);
        self.bar.set_message(message);
        let stop_here = self.stop_after.is_some_and(|k| self.steps_here >= k);
        let forced = end.last || stop_here;
        if state::checkpoint_due(end.step, self.schedule.checkpoint_every, forced) {
            self.guard.weights(end.step, model)?;
            if self.schedule.keep_exports > 0 {
                // Before the state: a kill in between redoes this step and
                // writes the same export again.
                let keep = self.schedule.keep_exports;
                let valid = model.valid();
                snapshots::save(&self.out, end.step, keep, &valid, &self.tokenizer_json)?;
            }
            let mdir = model_dir(&self.out);
            let rec = optim.to_record();
            state::save_run(
                &self.state_dir,
                &mdir,
                model,
                rec,
                state,
                &self.tokenizer_json,
            )?;
            self.guard.saved(end.step);
            (self.plots)(&self.out, &self.metrics)?;
        }
        if end.time_up {
            self.stopped_on_time = end.step < self.schedule.steps;
            return Ok(false);
        }
        Ok(!stop_here)
    }

    /// Ends the loop: clears the progress bar; exports `model` (and draws
    /// the plots) when no step ran in this process and the export is
    /// missing (every step loop ends with a checkpoint, which exports; a
    /// run resumed at its last step has none to take); writes the summary
    /// `summary` makes into `summary.json` and returns it.
    pub fn finish<B, S>(
        self,
        model: &Llama<B>,
        summary: impl FnOnce(&Finished, &Metrics) -> S,
    ) -> Result<S>
    where
        B: AutodiffBackend,
        S: Serialize,
    {
        self.bar.finish_and_clear();
        let mdir = model_dir(&self.out);
        if self.steps_here == 0 && !mdir.exists() {
            checkpoint::save(&model.valid(), &mdir, Some(&self.tokenizer_json))?;
            (self.plots)(&self.out, &self.metrics)?;
        }
        let f = Finished {
            stopped_on_time: self.stopped_on_time,
            seconds_here: self.seconds_here(),
        };
        let s = summary(&f, &self.metrics);
        state::write_json(&self.out.join("summary.json"), &s)?;
        Ok(s)
    }
}
