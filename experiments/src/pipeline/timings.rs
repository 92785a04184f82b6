//! `stages.json`: the seconds each stage took when it ran, kept beside the
//! stage outputs so that a report regenerated later (every stage cached)
//! still shows them.

use crate::error::{Error, Result};
use apr_model::checkpoint::write_atomic;
use std::path::Path;

const FILE: &str = "stages.json";

/// The recorded (stage, seconds) pairs, in the order the stages first ran;
/// empty when none were recorded.
pub(crate) fn read(dir: &Path) -> Result<Vec<(String, f64)>> {
    crate::jsonl::read_json_or_default(&dir.join(FILE))
}

/// Records that `stage` took `seconds` (replacing an earlier record of it).
pub(crate) fn record(dir: &Path, stage: &str, seconds: f64) -> Result<()> {
    let mut all = read(dir)?;
    match all.iter_mut().find(|(s, _)| s == stage) {
        Some(e) => e.1 = seconds,
        None => all.push((stage.to_string(), seconds)),
    }
    let bytes = serde_json::to_vec_pretty(&all).map_err(|e| Error::Config(e.to_string()))?;
    Ok(write_atomic(&dir.join(FILE), &bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_replace_and_keep_order() {
        let d = tempfile::tempdir().unwrap();
        assert!(read(d.path()).unwrap().is_empty());
        record(d.path(), "apr-sft", 10.0).unwrap();
        record(d.path(), "sosp-sft", 20.0).unwrap();
        record(d.path(), "apr-sft", 12.5).unwrap();
        assert_eq!(
            read(d.path()).unwrap(),
            vec![
                ("apr-sft".to_string(), 12.5),
                ("sosp-sft".to_string(), 20.0)
            ]
        );
        std::fs::write(d.path().join(FILE), "not json").unwrap();
        assert!(read(d.path()).is_err());
    }
}
