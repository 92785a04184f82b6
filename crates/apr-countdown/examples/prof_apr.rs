use apr_countdown::*;
use std::collections::HashSet;
fn main() {
    let spec = ProblemSpec::default();
    let ex = HashSet::new();
    let probs: Vec<_> = (0..2000u64).map(|i| spec.problem(1, i, &ex).unwrap()).collect();
    let ar = AprRecipe::default();
    let t = std::time::Instant::now();
    for rep in 0..5 {
    for (i, p) in probs.iter().enumerate() { let mut rng = Rng::new(i as u64 + rep); let params = ar.draw(&mut rng); let o = apr(p, &params, &mut rng); std::hint::black_box(o); }
    }
    println!("apr {:.0}/s", 10000.0 / t.elapsed().as_secs_f64());
}
