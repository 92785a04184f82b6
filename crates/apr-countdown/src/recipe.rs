//! The solver recipes of the training data (the official scripts'
//! settings: beams drawn per problem), and the trace record of a problem
//! under a recipe.

use crate::apr::{apr_log, AprParams};
use crate::error::{Error, Result};
use crate::heuristic::Heuristic;
use crate::json::write_log_record;
use crate::log::SearchLog;
use crate::problem::Problem;
use crate::record::{ProblemRecord, RunMeta, TraceRecord};
use crate::rng::{derive_seed, Rng};
use crate::search::{MoveOrder, Pruning};
use crate::sosp::{sosp_log, SospParams};
use serde::{Deserialize, Serialize};

/// The reference recipe for SoS+ data: beam uniform in `min_beam..=max_beam`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SospRecipe {
    /// Smallest beam.
    pub min_beam: usize,
    /// Largest beam.
    pub max_beam: usize,
    /// Probability that an expansion is promising.
    pub promising: f64,
    /// Heuristic.
    pub heuristic: Heuristic,
    /// Successor pruning.
    pub pruning: Pruning,
    /// Order of the kept successors.
    #[serde(default, skip_serializing_if = "MoveOrder::is_shuffled")]
    pub order: MoveOrder,
}

impl Default for SospRecipe {
    fn default() -> Self {
        SospRecipe {
            min_beam: 1,
            max_beam: 5,
            promising: 0.5,
            heuristic: Heuristic::Mult,
            pruning: Pruning::Beam,
            order: MoveOrder::Shuffled,
        }
    }
}

/// The reference recipe for APR data: beam uniform in `min_beam..=max_beam`,
/// child beam uniform in `beam..=max_sub_beam` (or `max_sub_beam` when it is
/// not above the beam).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AprRecipe {
    /// Smallest beam.
    pub min_beam: usize,
    /// Largest beam.
    pub max_beam: usize,
    /// Largest child beam.
    pub max_sub_beam: usize,
    /// Probability that an eligible expansion spawns.
    pub promising: f64,
    /// Heuristic.
    pub heuristic: Heuristic,
    /// Successor pruning.
    pub pruning: Pruning,
    /// Order of the kept successors.
    #[serde(default, skip_serializing_if = "MoveOrder::is_shuffled")]
    pub order: MoveOrder,
    /// Threads at levels below this may spawn (1: the reference).
    pub max_spawn_depth: u32,
}

impl Default for AprRecipe {
    fn default() -> Self {
        AprRecipe {
            min_beam: 1,
            max_beam: 10,
            max_sub_beam: 15,
            promising: 0.9,
            heuristic: Heuristic::Mult,
            pruning: Pruning::Beam,
            order: MoveOrder::Shuffled,
            max_spawn_depth: 1,
        }
    }
}

fn check_beams(min: usize, max: usize) -> Result<()> {
    if min == 0 || min > max {
        return Err(Error::Config(format!(
            "beam range must be 1 <= min <= max, got {min}..={max}"
        )));
    }
    Ok(())
}

fn check_p(p: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::Config(format!(
            "promising probability must be in [0, 1], got {p}"
        )));
    }
    Ok(())
}

/// Stream ids that keep the solvers' randomness apart.
const SOSP_STREAM: u64 = 0x534f_5350;
const APR_STREAM: u64 = 0x4150_5200;

impl SospRecipe {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        check_beams(self.min_beam, self.max_beam)?;
        check_p(self.promising)
    }

    /// Draws the parameters of one search.
    pub fn draw(&self, rng: &mut Rng) -> SospParams {
        SospParams {
            beam: rng.range_inclusive(self.min_beam as u64, self.max_beam as u64) as usize,
            promising: self.promising,
            heuristic: self.heuristic,
            pruning: self.pruning,
            order: self.order,
        }
    }

    fn run(&self, problem: &Problem, seed: u64, index: u64) -> (RunMeta, SearchLog) {
        let mut rng = Rng::new(derive_seed(seed, SOSP_STREAM, index));
        let params = self.draw(&mut rng);
        let log = sosp_log(problem, &params, &mut rng);
        let meta = RunMeta {
            search_type: format!("sosp_{}", params.beam),
            beam: params.beam,
            sub_beam: None,
            heuristic: self.heuristic,
            promising: self.promising,
        };
        (meta, log)
    }
}

impl AprRecipe {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        check_beams(self.min_beam, self.max_beam)?;
        if self.max_sub_beam == 0 {
            return Err(Error::Config("max_sub_beam must be at least 1".into()));
        }
        check_p(self.promising)
    }

    /// Draws the parameters of one search.
    pub fn draw(&self, rng: &mut Rng) -> AprParams {
        let beam = rng.range_inclusive(self.min_beam as u64, self.max_beam as u64) as usize;
        let sub_beam = if self.max_sub_beam > beam {
            rng.range_inclusive(beam as u64, self.max_sub_beam as u64) as usize
        } else {
            self.max_sub_beam
        };
        AprParams {
            beam,
            sub_beam,
            promising: self.promising,
            heuristic: self.heuristic,
            pruning: self.pruning,
            order: self.order,
            max_spawn_depth: self.max_spawn_depth,
        }
    }

    fn run(&self, problem: &Problem, seed: u64, index: u64) -> (RunMeta, SearchLog) {
        let mut rng = Rng::new(derive_seed(seed, APR_STREAM, index));
        let params = self.draw(&mut rng);
        let log = apr_log(problem, &params, &mut rng);
        let meta = RunMeta {
            search_type: format!("apr_{}", params.beam),
            beam: params.beam,
            sub_beam: Some(params.sub_beam),
            heuristic: self.heuristic,
            promising: self.promising,
        };
        (meta, log)
    }
}

/// Either solver's recipe, for code that writes traces of both.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recipe {
    /// APR traces.
    Apr(AprRecipe),
    /// SoS+ traces.
    Sosp(SospRecipe),
}

impl Recipe {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        match self {
            Recipe::Apr(r) => r.validate(),
            Recipe::Sosp(r) => r.validate(),
        }
    }

    fn run(&self, problem: &Problem, seed: u64, index: u64) -> (RunMeta, SearchLog) {
        match self {
            Recipe::Apr(r) => r.run(problem, seed, index),
            Recipe::Sosp(r) => r.run(problem, seed, index),
        }
    }

    /// The trace record of problem `index` of a file, under master `seed`.
    pub fn record(
        &self,
        p: &ProblemRecord,
        problem: &Problem,
        seed: u64,
        index: u64,
    ) -> TraceRecord {
        let (meta, log) = self.run(problem, seed, index);
        TraceRecord::from_log(p, &log, meta, true)
    }

    /// Appends the JSON line of [`record`](Self::record) (the same bytes),
    /// rendered straight from the solver's log.
    pub fn write_record(
        &self,
        p: &ProblemRecord,
        problem: &Problem,
        seed: u64,
        index: u64,
        out: &mut Vec<u8>,
    ) {
        let (meta, log) = self.run(problem, seed, index);
        let with_dict = matches!(self, Recipe::Apr(_));
        write_log_record(
            TraceRecord::from_log(p, &log, meta, false),
            &log,
            with_dict,
            out,
        );
    }

    /// `APR` or `SoS+`.
    pub fn solver_name(&self) -> &'static str {
        match self {
            Recipe::Apr(_) => "APR",
            Recipe::Sosp(_) => "SoS+",
        }
    }
}
