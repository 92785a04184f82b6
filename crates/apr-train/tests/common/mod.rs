//! Helpers shared by the SFT integration tests.

use apr_countdown::{ProblemRecord, ProblemSpec, Recipe, SospRecipe};
use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

/// Writes SoS+ traces of `n` default-spec problems (seed 5) to `path`.
pub fn write_traces(path: &Path, n: usize) {
    let spec = ProblemSpec::default();
    let recipe = Recipe::Sosp(SospRecipe::default());
    let mut f = std::fs::File::create(path).unwrap();
    for i in 0..n {
        let p = spec.problem(5, i as u64, &HashSet::new()).unwrap();
        let pr = ProblemRecord::new(&p).unwrap();
        let rec = recipe.record(&pr, &p, 5, i as u64);
        writeln!(f, "{}", serde_json::to_string(&rec).unwrap()).unwrap();
    }
}
