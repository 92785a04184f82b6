//! The divergence guard of a training run: a step whose loss or gradient
//! norm is not finite, or a checkpoint whose weights are not, stops the
//! run with [`Error::Diverged`] before anything is saved, so the last good
//! checkpoint stays the one a resume starts from.

use crate::error::{Error, Result};
use apr_model::Llama;
use burn::tensor::backend::Backend;
use std::path::PathBuf;

/// Tracks the last checkpoint written, to name it when a run stops.
#[derive(Clone, Debug)]
pub struct Guard {
    state_dir: PathBuf,
    last_saved: Option<usize>,
}

impl Guard {
    /// A guard for a run whose state lives in `state_dir`, resumed from
    /// the checkpoint of `resumed_at` (`None` for a fresh run).
    pub fn new(state_dir: PathBuf, resumed_at: Option<usize>) -> Guard {
        Guard {
            state_dir,
            last_saved: resumed_at,
        }
    }

    fn kept(&self) -> String {
        match self.last_saved {
            Some(s) => format!(
                "the checkpoint of step {s} in {} is kept",
                self.state_dir.display()
            ),
            None => "no checkpoint had been written".into(),
        }
    }

    /// Refuses step `step` (1-based) when its loss or gradient norm is not
    /// finite.
    pub fn step(&self, step: usize, loss: f64, grad_norm: f64) -> Result<()> {
        let what = if !loss.is_finite() {
            format!("the loss is {loss}")
        } else if !grad_norm.is_finite() {
            format!("the gradient norm is {grad_norm}")
        } else {
            return Ok(());
        };
        Err(Error::Diverged {
            step,
            what,
            kept: self.kept(),
        })
    }

    /// Refuses to checkpoint step `step` when a weight is not finite.
    pub fn weights<B: Backend>(&self, step: usize, model: &Llama<B>) -> Result<()> {
        apr_model::checkpoint::check_finite(model).map_err(|e| Error::Diverged {
            step,
            what: e.to_string(),
            kept: self.kept(),
        })
    }

    /// Records that the checkpoint of `step` was written.
    pub fn saved(&mut self, step: usize) {
        self.last_saved = Some(step);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_finite_loss_or_norm_stops_naming_the_kept_checkpoint() {
        let mut g = Guard::new(PathBuf::from("run/state"), None);
        g.step(1, 2.5, 0.3).unwrap();
        let e = g.step(2, f64::NAN, 0.3).unwrap_err().to_string();
        assert!(e.contains("step 2: the loss is NaN"), "{e}");
        assert!(e.contains("no checkpoint had been written"), "{e}");
        g.saved(4);
        let e = g.step(5, 1.0, f64::INFINITY).unwrap_err().to_string();
        assert!(e.contains("the gradient norm is inf"), "{e}");
        assert!(
            e.contains("checkpoint of step 4 in run/state is kept"),
            "{e}"
        );
    }
}
