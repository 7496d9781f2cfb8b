//! The one fixed-order sum: 8 interleaved partial sums ("lanes"), so that the loops
//! vectorize, combined in a fixed order, so that a sum has the same bits whatever the
//! memory layout, the instruction set (with AVX2 or without) or the thread count. The
//! losses and the gradient norm use it.
//!
//! For terms `t_0 .. t_{n-1}` and `full = n - n mod 8`: lane `k` adds `t_k, t_{k+8}, ...`
//! (`i < full`) in order, starting from zero; the tail adds `t_full .. t_{n-1}` in order,
//! starting from zero; the sum is
//! `((l_0 + l_1) + (l_2 + l_3)) + ((l_4 + l_5) + (l_6 + l_7)) + tail`.
//! The three entry points differ only in where the terms come from; for the same terms
//! they give the same bits.

use std::ops::Range;

use crate::float::Float;

/// The number of partial sums.
const LANES: usize = 8;

/// `sum_{i < n} term(i)`, in the order of the module docs, calling `term` once per index in
/// increasing order.
#[inline(always)]
pub(crate) fn lane_sum<T: Float>(n: usize, term: impl FnMut(usize) -> T) -> T {
    let mut sum = Lanes::new();
    sum.add(n, term);
    sum.total()
}

/// `sum_i f(x[i])`, in the order of the module docs: the slice form of [`lane_sum`], which
/// vectorizes without bounds checks (say, `f(g) = g * g` for a squared norm).
#[inline(always)]
pub(crate) fn lane_sum_slice<T: Float>(x: &[T], f: impl Fn(T) -> T) -> T {
    let mut sum = Lanes::new();
    sum.add_slice(x, f);
    sum.total()
}

/// `sum_{i < n} t_i`, in the order of the module docs, where `fill(start..end, terms)`
/// writes `t_start .. t_{end-1}` into `terms` (`end - start` of them, at most 64), for
/// consecutive ranges from 0 to `n`. For terms computed from several slices, or that also
/// write an output: written as a plain map, `fill` vectorizes, and so does the sum of the
/// stack buffer it fills. Mark a `fill` closure that does real work `#[inline(always)]`:
/// the compiler may leave it a call otherwise, and then it neither vectorizes nor runs in
/// the caller's SIMD twin.
#[inline(always)]
pub(crate) fn lane_sum_buffered<T: Float>(
    n: usize,
    mut fill: impl FnMut(Range<usize>, &mut [T]),
) -> T {
    const BLOCK: usize = 64; // a multiple of LANES: every block but the last fills whole lanes
    let mut sum = Lanes::new();
    let mut buffer = [T::zero(); BLOCK];
    for start in (0..n).step_by(BLOCK) {
        let end = (start + BLOCK).min(n);
        let terms = &mut buffer[..end - start];
        fill(start..end, terms);
        sum.add_slice(terms, |t| t);
    }
    sum.total()
}

/// `[dot(x, ys[0]), ..., dot(x, ys[N - 1])]`, each `sum_i x_i y_i` in the order of the
/// module docs (the bits of `lane_sum(n, |i| x[i] * ys[k][i])`), computed side by side: one
/// sum's lanes wait on their own additions, so N independent sums keep the adder busy N
/// times as long. Each `ys[k]` holds at least `x.len()` values.
///
/// # Panics
/// If some `ys[k]` is shorter than `x` (an internal invariant).
#[inline(always)]
pub(crate) fn lane_dots<T: Float, const N: usize>(x: &[T], ys: [&[T]; N]) -> [T; N] {
    let n = x.len();
    let ys = ys.map(|y| &y[..n]);
    let mut sums = [(); N].map(|()| Lanes::new());
    let full = n / LANES * LANES;
    for start in (0..full).step_by(LANES) {
        let xs = &x[start..start + LANES];
        for (sum, y) in sums.iter_mut().zip(&ys) {
            let y = &y[start..start + LANES];
            for ((acc, &a), &b) in sum.acc.iter_mut().zip(xs).zip(y) {
                *acc += a * b;
            }
        }
    }
    for (sum, y) in sums.iter_mut().zip(&ys) {
        for i in full..n {
            sum.tail += x[i] * y[i];
        }
    }
    sums.map(|sum| sum.total())
}

/// The partial sums: the lanes and the tail.
struct Lanes<T> {
    acc: [T; LANES],
    tail: T,
}

impl<T: Float> Lanes<T> {
    #[inline(always)]
    fn new() -> Self {
        Lanes {
            acc: [T::zero(); LANES],
            tail: T::zero(),
        }
    }

    /// Adds `term(0) .. term(n - 1)`: groups of 8 to the lanes, the rest to the tail.
    #[inline(always)]
    fn add(&mut self, n: usize, mut term: impl FnMut(usize) -> T) {
        let full = n / LANES * LANES;
        for start in (0..full).step_by(LANES) {
            for (lane, acc) in self.acc.iter_mut().enumerate() {
                *acc += term(start + lane);
            }
        }
        for i in full..n {
            self.tail += term(i);
        }
    }

    /// Adds `f(x[i])`: groups of 8 to the lanes, the rest to the tail. Only the last batch
    /// of terms may have a rest (its length not a multiple of 8).
    #[inline(always)]
    fn add_slice(&mut self, x: &[T], f: impl Fn(T) -> T) {
        let mut groups = x.chunks_exact(LANES);
        for group in &mut groups {
            for (acc, &v) in self.acc.iter_mut().zip(group) {
                *acc += f(v);
            }
        }
        for &v in groups.remainder() {
            self.tail += f(v);
        }
    }

    /// The lanes combined in the fixed order, then the tail.
    #[inline(always)]
    fn total(&self) -> T {
        let a = &self.acc;
        ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])) + self.tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The order of the module docs, written out term by term.
    fn reference(t: &[f32]) -> f32 {
        let full = t.len() / 8 * 8;
        let mut l = [0.0f32; 8];
        for (i, &v) in t[..full].iter().enumerate() {
            l[i % 8] += v;
        }
        let tail = t[full..].iter().fold(0.0f32, |s, &v| s + v);
        ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7])) + tail
    }

    /// The three entry points add in the documented order: the reference's bits, for
    /// lengths around the lane and block edges, on terms whose sum depends on the order.
    #[test]
    fn every_form_adds_in_the_documented_order() {
        for n in [0, 1, 7, 8, 9, 63, 64, 65, 127, 128, 200, 1001] {
            let t: Vec<f32> = (0..n)
                .map(|i| ((i * 7919) % 1000) as f32 * if i % 3 == 0 { 10.0 } else { 1e-3 })
                .collect();
            let expected = reference(&t).to_bits();
            if n == 1001 {
                let in_sequence = t.iter().fold(0.0f32, |s, &v| s + v);
                assert_ne!(
                    expected,
                    in_sequence.to_bits(),
                    "the terms tell orders apart"
                );
            }
            assert_eq!(
                lane_sum(n, |i| t[i]).to_bits(),
                expected,
                "lane_sum, n = {n}"
            );
            assert_eq!(
                lane_sum_slice(&t, |v| v).to_bits(),
                expected,
                "slice, n = {n}"
            );
            let buffered = lane_sum_buffered(n, |range, terms: &mut [f32]| {
                terms.copy_from_slice(&t[range]);
            });
            assert_eq!(buffered.to_bits(), expected, "buffered, n = {n}");
            // Dots with t: the second factor 1 makes the products the terms themselves;
            // the factor 2 (exact) doubles them, and the sum with them.
            let (ones, twos) = (vec![1.0f32; n], vec![2.0f32; n]);
            let [a, b] = lane_dots(&t, [&ones, &twos]);
            assert_eq!(a.to_bits(), expected, "dots, n = {n}");
            assert_eq!(
                b.to_bits(),
                (2.0 * reference(&t)).to_bits(),
                "dots, n = {n}"
            );
        }
    }
}
