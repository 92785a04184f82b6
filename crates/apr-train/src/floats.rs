//! Range checks of a config's floats: every one must be finite and inside
//! the range where training means something, so that `lr = inf` or
//! `beta1 = 1` is a config error rather than a run of NaN weights.

use crate::error::{Error, Result};

/// The [`AdamFloats`] of an SFT or GRPO optimiser section (both name the
/// fields alike), so the list of shared floats is written once.
macro_rules! adam_floats {
    ($o:expr) => {
        $crate::floats::AdamFloats {
            lr: $o.lr,
            weight_decay: $o.weight_decay,
            beta1: $o.beta1,
            beta2: $o.beta2,
            eps: $o.eps,
            grad_clip: $o.grad_clip,
            time_limit_minutes: $o.time_limit_minutes,
        }
    };
}
pub(crate) use adam_floats;

/// The optimiser floats that SFT and GRPO share.
pub(crate) struct AdamFloats {
    pub lr: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub grad_clip: f64,
    pub time_limit_minutes: Option<f64>,
}

/// An error naming `name = v` unless `v` is finite and `ok` (the range
/// test, described by `range` in the message).
pub(crate) fn check(name: &str, v: f64, ok: bool, range: &str) -> Result<()> {
    if v.is_finite() && ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "{name} = {v}: must be finite and {range}"
        )))
    }
}

impl AdamFloats {
    /// Checks each float against its range.
    pub(crate) fn validate(&self) -> Result<()> {
        let s = self;
        check("lr", s.lr, s.lr > 0.0 && s.lr <= 1.0, "in (0, 1]")?;
        check(
            "weight_decay",
            s.weight_decay,
            (0.0..=1.0).contains(&s.weight_decay),
            "in [0, 1]",
        )?;
        check("beta1", s.beta1, (0.0..1.0).contains(&s.beta1), "in [0, 1)")?;
        check("beta2", s.beta2, (0.0..1.0).contains(&s.beta2), "in [0, 1)")?;
        check("eps", s.eps, s.eps > 0.0 && s.eps <= 1.0, "in (0, 1]")?;
        check(
            "grad_clip",
            s.grad_clip,
            s.grad_clip >= 0.0,
            ">= 0 (0: none)",
        )?;
        if let Some(t) = s.time_limit_minutes {
            check("time_limit_minutes", t, t > 0.0, "positive")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> AdamFloats {
        AdamFloats {
            lr: 2e-3,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            grad_clip: 1.0,
            time_limit_minutes: None,
        }
    }

    #[test]
    fn every_float_is_checked_for_finiteness_and_range() {
        assert!(ok().validate().is_ok());
        type Set = fn(&mut AdamFloats);
        let bad: [(&str, Set); 12] = [
            ("lr", |f| f.lr = f64::INFINITY),
            ("lr", |f| f.lr = 1e30),
            ("lr", |f| f.lr = 0.0),
            ("weight_decay", |f| f.weight_decay = f64::NAN),
            ("weight_decay", |f| f.weight_decay = -0.1),
            ("beta1", |f| f.beta1 = 1.0),
            ("beta2", |f| f.beta2 = f64::NAN),
            ("eps", |f| f.eps = -1e-8),
            ("grad_clip", |f| f.grad_clip = f64::NAN),
            ("grad_clip", |f| f.grad_clip = -1.0),
            ("time_limit_minutes", |f| {
                f.time_limit_minutes = Some(f64::NAN)
            }),
            ("time_limit_minutes", |f| f.time_limit_minutes = Some(-5.0)),
        ];
        for (name, set) in bad {
            let mut f = ok();
            set(&mut f);
            let e = f.validate().unwrap_err().to_string();
            assert!(e.contains(name), "{name}: {e}");
        }
    }
}
