//! `a b + c` rounded once, as an FMA instruction computes it, on every CPU: the portable
//! micro-kernel's multiply-add, so that it gives the bits of the AVX2 + FMA kernel
//! (`kernel.rs`) on a CPU without FMA.
//!
//! Where the target has an FMA instruction at compile time (aarch64; x86 built with the
//! `fma` target feature), `mul_add` is that instruction. Elsewhere (x86-64 as built by
//! default):
//! - `f32`: in `f64`, the product exact and the sum rounded once, then rounded to `f32`,
//!   which is the fused result except in rare cases that are detected and redone exactly
//!   ([`FusedMulAdd::fused_row`], [`fused_f32`]). No calls, and it vectorizes, but a
//!   portable product costs about 15 times what it did with a separate multiply and add
//!   (256 x 784 x 128, one thread, this machine: 24-29 ms instead of 1.6; the AVX2 + FMA
//!   kernel takes 0.55).
//! - `f64`: `mul_add`, std's correctly rounded `fma`: a call per element, to the instruction
//!   when the CPU has it, else to software (85-92 ms instead of 6-7 on the product above,
//!   with the instruction).

/// `a b + c` with one rounding, to nearest even: IEEE 754 `fusedMultiplyAdd`.
pub(super) trait FusedMulAdd: Copy {
    /// `self * b + c`, rounded once.
    fn fused_mul_add(self, b: Self, c: Self) -> Self;

    /// One step of a tile row: `acc[j] = a b[j] + acc[j]`, each rounded once.
    #[inline(always)]
    fn fused_row<const N: usize>(a: Self, b: &[Self; N], acc: &mut [Self; N]) {
        for (acc, &b) in acc.iter_mut().zip(b) {
            *acc = a.fused_mul_add(b, *acc);
        }
    }
}

impl FusedMulAdd for f32 {
    #[inline(always)]
    fn fused_mul_add(self, b: f32, c: f32) -> f32 {
        if NATIVE_FMA {
            self.mul_add(b, c)
        } else {
            fused_f32(self, b, c)
        }
    }

    /// Without an FMA instruction: each `s = a b[j] + acc[j]` in `f64` (the product exact,
    /// the sum rounded once) rounded to `f32` is already `a b[j] + acc[j]` rounded once,
    /// unless `s` is one of the values where rounding twice can go wrong (see
    /// [`rounds_twice_wrong`]); the row is then redone with [`fused_f32`] (rare). Half the
    /// time of [`fused_f32`] on every element.
    #[inline(always)]
    fn fused_row<const N: usize>(a: f32, b: &[f32; N], acc: &mut [f32; N]) {
        if NATIVE_FMA {
            for (acc, &b) in acc.iter_mut().zip(b) {
                *acc = a.mul_add(b, *acc);
            }
            return;
        }
        let mut next = [0.0f32; N];
        let mut doubtful = [0u32; N];
        for j in 0..N {
            let s = f64::from(a) * f64::from(b[j]) + f64::from(acc[j]);
            next[j] = s as f32;
            doubtful[j] = rounds_twice_wrong(s);
        }
        if doubtful.iter().fold(0, |any, &d| any | d) != 0 {
            for j in 0..N {
                next[j] = fused_f32(a, b[j], acc[j]);
            }
        }
        *acc = next;
    }
}

impl FusedMulAdd for f64 {
    #[inline(always)]
    fn fused_mul_add(self, b: f64, c: f64) -> f64 {
        self.mul_add(b, c)
    }
}

/// Whether `mul_add` compiles to an FMA instruction on this target.
const NATIVE_FMA: bool = cfg!(any(
    target_arch = "aarch64",
    all(
        any(target_arch = "x86", target_arch = "x86_64"),
        target_feature = "fma"
    )
));

/// Whether `s`, an exact `f32` product plus an `f32` rounded once to `f64`, may round to
/// another `f32` than the exact sum (`1`) or not (`0`): only if `s` is halfway between two
/// `f32` (a midpoint).
///
/// Each midpoint `m` (between two `f32`, or between `f32::MAX` and the overflow) is an `f64`
/// number, and rounding to nearest is monotonic, so `s` lies on the same side of `m` as the
/// exact sum, or on `m`: when `s` is no midpoint, it falls between the same two midpoints as
/// the exact sum and rounds to the same `f32`. Midpoints in `f32`'s normal range carry 25
/// significant bits: the low 29 of `s`'s 52 stored bits are `1` and then 28 zeros. Below
/// `2^-126` (`f32`'s subnormals) there are fewer bits and the midpoints have other
/// patterns, so every such `s` but zero counts (`s == 0` only for an exact zero: a nonzero
/// sum is a multiple of `2^-298`, so its high 32 bits are not all zero either). Written on
/// the two 32-bit halves of `s` so that it vectorizes with SSE2.
#[inline(always)]
fn rounds_twice_wrong(s: f64) -> u32 {
    let bits = s.to_bits();
    let (low, high) = (bits as u32, (bits >> 32) as u32 & 0x7fff_ffff);
    let midpoint = low & 0x1fff_ffff == 0x1000_0000;
    let tiny = high.wrapping_sub(1) < 0x3810_0000 - 1; // 0 < |s| < 2^-126 (0x3810_0000_..)
    u32::from(midpoint | tiny)
}

/// `a b + c` rounded once to `f32`, without an FMA instruction.
///
/// The product of two `f32` is exact in `f64` (24 + 24 significant bits, at most 53), and
/// `p + c` is `s + e` exactly, with `s` the `f64` sum and `e` its error (Knuth's TwoSum,
/// exact in round-to-nearest). Rounding `s` to odd (when `e != 0`, to whichever neighbour
/// of the exact sum has an odd last bit) keeps a trace of the discarded bits, so that
/// rounding that to `f32` to nearest gives the exact sum rounded once: round to odd in a
/// format of at least `p + 2` bits, then to nearest in `p` bits, is rounding to nearest once
/// (53 >= 24 + 2; Boldo and Melquiond, "Emulation of a FMA and correctly rounded sums:
/// proved algorithms using rounding to odd", IEEE Trans. Computers 57(4), 2008). No
/// branches: the compiler vectorizes it. Infinite and NaN sums pass through unchanged.
#[inline(always)]
fn fused_f32(a: f32, b: f32, c: f32) -> f32 {
    let p = f64::from(a) * f64::from(b); // exact
    let c = f64::from(c);
    let s = p + c;
    let virtual_c = s - p;
    // s + e == p + c exactly.
    let e = (p - (s - virtual_c)) + (c - virtual_c);
    // To odd: `s` rounded toward zero, then the last bit set if inexact. `s` is rounded to
    // nearest: it is the value toward zero unless `e` has the other sign, then one step
    // below it in magnitude (`s` is not zero when `e` is not).
    let bits = s.to_bits();
    let inexact = u64::from(e.abs() > 0.0); // false for a NaN `e` (`s` infinite or NaN)
    let rounded_away = (e.to_bits() ^ bits) >> 63; // `e` and `s` of opposite signs
    f64::from_bits((bits - (inexact & rounded_away)) | inexact) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A random `f32`: sign, exponent in `[lo, hi]` (subnormals and zeros when `lo` is low
    /// enough) and a significand with `bits` random leading bits, so that products and sums
    /// often land exactly on or next to halfway cases.
    fn value(rng: &mut ChaCha8Rng, lo: i32, hi: i32, bits: u32) -> f32 {
        let significand =
            1.0 + f64::from(rng.random_range(0..1u32 << bits)) / f64::from(1u32 << bits);
        let sign = if rng.random() { -1.0 } else { 1.0 };
        (sign * significand * 2f64.powi(rng.random_range(lo..=hi))) as f32
    }

    /// Both emulations (one element, and a one-element row) against `f32::mul_add`, which
    /// std rounds correctly (here with the CPU's FMA instruction).
    fn assert_rounded_once(a: f32, b: f32, c: f32) {
        let want = a.mul_add(b, c);
        let mut row = [c];
        f32::fused_row(a, &[b], &mut row);
        for (got, how) in [(fused_f32(a, b, c), "fused_f32"), (row[0], "fused_row")] {
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{how}({a:e}, {b:e}, {c:e}): {got:e} ({:#x}), correctly rounded {want:e} ({:#x})",
                got.to_bits(),
                want.to_bits()
            );
        }
    }

    /// To the bit, on random operands of every magnitude (subnormal results, overflow), on
    /// short significands (exact ties), on exact cancellation (`c = -a b`, signed zeros),
    /// and on zero, infinite and NaN operands.
    #[test]
    fn emulated_f32_fma_is_rounded_once() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..1_000_000 {
            let bits = rng.random_range(1..=24);
            let a = value(&mut rng, -75, 64, bits);
            let b = value(&mut rng, -75, 64, bits);
            let c = match rng.random_range(0..4) {
                0 => -(a * b),
                1 => value(&mut rng, -150, 127, bits),
                _ => {
                    // Near `-a b`, so that the sum cancels some bits.
                    let p = f64::from(a) * f64::from(b);
                    (-p * (1.0 + f64::from(value(&mut rng, -30, -1, bits)))) as f32
                }
            };
            assert_rounded_once(a, b, c);
        }
        let specials = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            f32::MIN_POSITIVE,
            1e-45,
            -1e-45,
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            3.0e38,
            1.5,
            0.1,
        ];
        for &a in &specials {
            for &b in &specials {
                for &c in &specials {
                    assert_rounded_once(a, b, c);
                }
            }
        }
    }

    /// Operands whose sum, rounded to `f64`, lands exactly halfway between two `f32` while
    /// the exact sum does not: rounding that `f64` to `f32` goes the wrong way (the trap the
    /// emulations avoid), in `f32`'s normal range and in its subnormal range.
    fn double_rounding_traps(rng: &mut ChaCha8Rng) -> Vec<[f32; 3]> {
        let mut cases = Vec::new();
        for _ in 0..10_000 {
            // Normal range: `a b` an odd 25-bit integer times a power of two (a midpoint)
            // and `c` below half an `f64` unit of it.
            let x = 2 * rng.random_range(1u32 << 10..1 << 12) + 1;
            let y = 2 * ((1u32 << 24) / x / 2 + rng.random_range(0..8)) + 1;
            let (ea, eb) = (rng.random_range(-40..20), rng.random_range(-40..20));
            let a = (f64::from(x) * 2f64.powi(ea)) as f32;
            let b = (f64::from(y) * 2f64.powi(eb)) as f32;
            let c = (2f64.powi(ea + eb - rng.random_range(35..60))) as f32;
            let sign = if rng.random() { -1.0 } else { 1.0 };
            cases.push([a * sign, b, c * if rng.random() { -1.0 } else { 1.0 }]);
            // Subnormal range: `a b = 2^-150 + 2^-185` ((2^23 + 2896)(2^23 - 2895) is
            // 2^46 + 2^11), `c` a multiple of 2^-149 near 2^-130, whose f64 unit is
            // 2^-182: the f64 sum is the midpoint `c + 2^-150`.
            let a = (f64::from((1u32 << 23) + 2896) * 2f64.powi(-98)) as f32;
            let b = (f64::from((1u32 << 23) - 2895) * 2f64.powi(-98)) as f32;
            let c = (f64::from(rng.random_range(1u32 << 17..1 << 23)) * 2f64.powi(-149)) as f32;
            cases.push([a * sign, b, c * sign]);
        }
        cases
    }

    #[test]
    fn emulated_f32_fma_avoids_double_rounding() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let cases = double_rounding_traps(&mut rng);
        let mut naive_wrong = [0, 0];
        for (i, &[a, b, c]) in cases.iter().enumerate() {
            let naive = (f64::from(a) * f64::from(b) + f64::from(c)) as f32;
            naive_wrong[i % 2] += usize::from(naive.to_bits() != a.mul_add(b, c).to_bits());
            assert_rounded_once(a, b, c);
        }
        // The cases are traps: rounding twice gets most of them wrong (those with `c` on
        // the side of the midpoint away from the tie's even neighbour: about half).
        assert!(naive_wrong.iter().all(|&n| n > 3_000), "{naive_wrong:?}");
    }

    /// A whole row with one trap among ordinary elements: the row is redone exactly, and
    /// every element comes out rounded once.
    #[test]
    fn a_row_with_one_trap_is_rounded_once() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for [a, trap_b, trap_c] in double_rounding_traps(&mut rng).into_iter().take(2_000) {
            let mut b: [f32; 16] = std::array::from_fn(|_| value(&mut rng, -20, 20, 24));
            let mut acc: [f32; 16] = std::array::from_fn(|_| value(&mut rng, -20, 20, 24));
            let at = rng.random_range(0..16);
            (b[at], acc[at]) = (trap_b, trap_c);
            let want: Vec<u32> = (0..16).map(|j| a.mul_add(b[j], acc[j]).to_bits()).collect();
            f32::fused_row(a, &b, &mut acc);
            assert_eq!(
                acc.map(f32::to_bits).to_vec(),
                want,
                "a = {a:e}, trap at {at}"
            );
        }
    }
}
