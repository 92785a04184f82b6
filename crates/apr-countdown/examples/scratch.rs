use apr_countdown::*;
use std::collections::HashSet;
use std::time::Instant;
fn main() {
    let spec = ProblemSpec::default();
    let ex = HashSet::new();
    let n = 5000u64;
    let t = Instant::now();
    let probs: Vec<_> = (0..n).map(|i| spec.problem(1, i, &ex).unwrap()).collect();
    println!("problems only {:.0}/s", n as f64 / t.elapsed().as_secs_f64());
    let t = Instant::now();
    let mut solv = 0; let mut tries = 0;
    let mut rng = Rng::new(5);
    for _ in 0..n { tries += 1; let p = Problem{nums:(0..4).map(|_| rng.range_inclusive(1,99)).collect(), target: rng.range_inclusive(10,100)}; if p.is_solvable() {solv+=1;} }
    println!("dfs {:.0}/s solvable {}", n as f64 / t.elapsed().as_secs_f64(), solv as f64 / tries as f64);
    let ar = AprRecipe::default();
    let t = Instant::now();
    let mut lines = 0;
    for (i, p) in probs.iter().enumerate() { let mut rng = Rng::new(i as u64); let params = ar.draw(&mut rng); let o = apr(p, &params, &mut rng); lines += o.tree.all_calls().iter().map(|c| c.lines.len()).sum::<usize>(); }
    println!("apr solver only {:.0}/s lines/trace {}", n as f64 / t.elapsed().as_secs_f64(), lines / n as usize);
    let sr = SospRecipe::default();
    let t = Instant::now();
    for (i, p) in probs.iter().enumerate() { let mut rng = Rng::new(i as u64); let params = sr.draw(&mut rng); let _o = sosp(p, &params, &mut rng); }
    println!("sosp solver only {:.0}/s", n as f64 / t.elapsed().as_secs_f64());
}
