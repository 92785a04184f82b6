//! The two kinds of search a model writes, and what follows from the kind:
//! how a problem's root prompt starts and which conditioning prefix it
//! takes. The engine, the SFT sequence builder and the scorer all read the
//! prompt from here, so that the prompt a model is run with is by
//! construction a prefix of what it was trained on.

use crate::line::{Conditioning, Line, Trace};
use crate::types::{NodeId, Num};
use std::fmt;
use std::str::FromStr;

/// Adaptive parallel reasoning or serialized search (SoS+).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum TraceMode {
    /// APR: the root thread starts `Moving to Node #0` and may spawn.
    #[default]
    Apr,
    /// SoS+: one thread that starts directly with `Current State:` (as the
    /// official data and `eval_sosp.py` do).
    Sosp,
}

impl TraceMode {
    /// The name used in configs and on the command line (`apr`, `sosp`).
    pub fn name(self) -> &'static str {
        match self {
            TraceMode::Apr => "apr",
            TraceMode::Sosp => "sosp",
        }
    }

    /// The root prompt of a problem, every line `\n`-terminated (no
    /// conditioning prefix; see [`TraceMode::conditioning`]):
    /// APR `Moving to Node #0` + `Current State: T:[nums], Operations: []`,
    /// SoS+ the `Current State` line alone.
    pub fn root_prompt(self, target: Num, nums: &[Num]) -> String {
        let state = Line::CurrentState {
            target,
            nums: nums.iter().copied().collect(),
            ops: Default::default(),
        };
        let lines = match self {
            TraceMode::Apr => vec![Line::MovingTo { id: NodeId::root() }, state],
            TraceMode::Sosp => vec![state],
        };
        Trace::from_lines(lines).render()
    }

    /// The conditioning prefix of a root prompt with budget `b`: APR
    /// `Sub Call Budget: b ` (child threads), SoS+ `Token Budget: b `.
    pub fn conditioning(self, budget: u32) -> Conditioning {
        match self {
            TraceMode::Apr => Conditioning::SubCallBudget(budget),
            TraceMode::Sosp => Conditioning::TokenBudget(budget),
        }
    }
}

impl fmt::Display for TraceMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TraceMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "apr" => Ok(TraceMode::Apr),
            "sosp" => Ok(TraceMode::Sosp),
            _ => Err(format!("unknown mode `{s}` (apr or sosp)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_prompts_follow_the_official_eval_scripts() {
        assert_eq!(
            TraceMode::Apr.root_prompt(70, &[98, 3, 34, 65]),
            "Moving to Node #0\nCurrent State: 70:[98, 3, 34, 65], Operations: []\n"
        );
        assert_eq!(
            TraceMode::Sosp.root_prompt(70, &[98, 3, 34, 65]),
            "Current State: 70:[98, 3, 34, 65], Operations: []\n"
        );
        assert_eq!(
            TraceMode::Sosp.conditioning(512),
            Conditioning::TokenBudget(512)
        );
        assert_eq!("sosp".parse(), Ok(TraceMode::Sosp));
        assert!("single".parse::<TraceMode>().is_err());
    }
}
