//! `a b + c` rounded once, as an FMA instruction computes it, on every CPU: the portable
//! micro-kernel's multiply-add, so that it gives the bits of the AVX2 + FMA kernel
//! (`kernel.rs`) on a CPU without FMA.
//!
//! Where the target has an FMA instruction at compile time (aarch64; x86 built with the
//! `fma` target feature), `mul_add` is that instruction. Elsewhere:
//! - `f32`: computed in `f64`, exactly (see [`fused_f32`]): a dozen plain operations that
//!   vectorize, about 10 times a plain multiply and add, instead of a software `fmaf` call
//!   per element (`mul_add`);
//! - `f64`: `mul_add`, which is std's correctly rounded software `fma` (it uses the
//!   instruction when the CPU has one at run time), one call per element.

/// `a b + c` with one rounding, to nearest even: IEEE 754 `fusedMultiplyAdd`.
pub(super) trait FusedMulAdd: Copy {
    /// `self * b + c`, rounded once.
    fn fused_mul_add(self, b: Self, c: Self) -> Self;
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
    let e = (p - (s - virtual_c)) + (c - virtual_c); // s + e == p + c exactly
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

    /// `fused_f32` is `f32::mul_add` (correctly rounded, by std) to the bit: on random
    /// operands of every magnitude (subnormal results, overflow), on short significands
    /// (ties), on exact cancellation (`c = -a b`, signed zeros), and on zero, infinite and
    /// NaN operands.
    #[test]
    fn emulated_f32_fma_is_rounded_once() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut cases: Vec<[f32; 3]> = Vec::new();
        for _ in 0..1_000_000 {
            let bits = rng.random_range(1..=24);
            let a = value(&mut rng, -75, 64, bits);
            let b = value(&mut rng, -75, 64, bits);
            let c = match rng.random_range(0..4) {
                0 => -(a * b),
                1 => value(&mut rng, -150, 127, bits),
                _ => {
                    // Near `a b`, so that the sum cancels some bits.
                    let p = f64::from(a) * f64::from(b);
                    (-p * (1.0 + f64::from(value(&mut rng, -30, -1, bits)))) as f32
                }
            };
            cases.push([a, b, c]);
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
                    cases.push([a, b, c]);
                }
            }
        }
        for [a, b, c] in cases {
            let (got, want) = (fused_f32(a, b, c), a.mul_add(b, c));
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "fma({a:e}, {b:e}, {c:e}): {got:e} ({:#x}), correctly rounded {want:e} ({:#x})",
                got.to_bits(),
                want.to_bits()
            );
        }
    }
}
