//! The move rules of Countdown.

use apr_trace::{Num, NumList, Op, OpKind};
use smallvec::SmallVec;

/// The results of combining `a` (earlier in the list) and `b`, in the
/// reference's order: `a+b`, `a*b`, then larger minus smaller, then the exact
/// division of larger by smaller when the smaller is not 0 and divides it.
/// Additions and products that overflow `u64` are left out.
pub fn combine(a: Num, b: Num) -> SmallVec<[Op; 4]> {
    let mut v = SmallVec::new();
    if let Some(op) = Op::new(a, OpKind::Add, b) {
        v.push(op);
    }
    if let Some(op) = Op::new(a, OpKind::Mul, b) {
        v.push(op);
    }
    let (hi, lo) = if a <= b { (b, a) } else { (a, b) };
    v.push(Op {
        lhs: hi,
        kind: OpKind::Sub,
        rhs: lo,
        result: hi - lo,
    });
    if lo != 0 && hi % lo == 0 {
        v.push(Op {
            lhs: hi,
            kind: OpKind::Div,
            rhs: lo,
            result: hi / lo,
        });
    }
    v
}

/// The list after combining positions `i < j` into `result`: the other
/// numbers in order, then the result.
pub fn apply_move(nums: &[Num], i: usize, j: usize, result: Num) -> NumList {
    let mut out = NumList::with_capacity(nums.len() - 1);
    for (k, &n) in nums.iter().enumerate() {
        if k != i && k != j {
            out.push(n);
        }
    }
    out.push(result);
    out
}

/// Every move from `nums` in the reference's order: pairs `(i, j)`, `i < j`,
/// in lexicographic order, then [`combine`]'s order.
pub fn successors(nums: &[Num]) -> impl Iterator<Item = (usize, usize, Op)> + '_ {
    let n = nums.len();
    (0..n).flat_map(move |i| {
        (i + 1..n).flat_map(move |j| {
            combine(nums[i], nums[j])
                .into_iter()
                .map(move |op| (i, j, op))
        })
    })
}

/// Removes one occurrence of each operand of `op` from `nums` and appends
/// its result; `None` if an operand is missing. Multiset semantics, used by
/// the verifier.
pub fn apply_op_multiset(nums: &[Num], op: &Op) -> Option<NumList> {
    let mut out: NumList = nums.iter().copied().collect();
    for operand in [op.lhs, op.rhs] {
        let k = out.iter().position(|&n| n == operand)?;
        out.remove(k);
    }
    out.push(op.result);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(a: Num, b: Num) -> Vec<String> {
        combine(a, b).iter().map(Op::to_string).collect()
    }

    #[test]
    fn combine_matches_reference_order() {
        assert_eq!(strs(3, 12), ["3+12=15", "3*12=36", "12-3=9", "12/3=4"]);
        assert_eq!(strs(12, 5), ["12+5=17", "12*5=60", "12-5=7"]);
        assert_eq!(strs(7, 7), ["7+7=14", "7*7=49", "7-7=0", "7/7=1"]);
        assert_eq!(strs(0, 5), ["0+5=5", "0*5=0", "5-0=5"]);
        assert_eq!(strs(5, 0), ["5+0=5", "5*0=0", "5-0=5"]);
    }

    #[test]
    fn successors_of_three_numbers() {
        let s: Vec<_> = successors(&[2, 3, 4]).collect();
        // pairs (0,1), (0,2), (1,2): 3 + 4 (4/2) + 3 moves
        assert_eq!(s.len(), 10);
        assert_eq!((s[0].0, s[0].1), (0, 1));
        assert_eq!(apply_move(&[2, 3, 4], 0, 2, 8).as_slice(), &[3, 8]);
    }

    #[test]
    fn multiset_apply() {
        let op = Op::new(5, OpKind::Add, 5).unwrap();
        assert_eq!(
            apply_op_multiset(&[5, 3, 5], &op).unwrap().as_slice(),
            &[3, 10]
        );
        assert_eq!(apply_op_multiset(&[5, 3], &op), None);
    }
}
