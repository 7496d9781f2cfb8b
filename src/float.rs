//! The element type: `f32` or `f64`.

use ndarray::NdFloat;
use serde::{de::DeserializeOwned, Serialize};

/// The floating-point element type of a model: implemented for `f32` and `f64` only.
///
/// Gradient checks run in `f64`; training usually runs in `f32`. Random numbers are drawn
/// in `f64` and cast, so the same seed gives the same (rounded) weights in both types.
pub trait Float: NdFloat + Default + Serialize + DeserializeOwned + private::Sealed {
    /// Name of the type, `"f32"` or `"f64"` (used in saved files and messages).
    const NAME: &'static str;

    /// Converts from `f64`, rounding to nearest for `f32`.
    fn cast(x: f64) -> Self;

    /// Converts to `f64` (exact).
    fn as_f64(self) -> f64;

    /// `e^x` for the training hot loops. `f32`: a branch-free polynomial (Cephes `expf`,
    /// relative error below 2e-7, inputs clamped to `[-87.3, 88.3]`) that the compiler
    /// vectorizes; `f64`: the standard library's `exp`.
    fn exp_fast(self) -> Self;

    /// `ln x` for the training hot loops. `f32`: a branch-free polynomial (Cephes `logf`,
    /// absolute error below 1e-7 near 1, for normal `x > 0`) that the compiler vectorizes;
    /// `f64`: the standard library's `ln`. Both give `ln`'s values outside the positive
    /// finite numbers: NaN for NaN and `x < 0`, `-inf` at 0, `inf` at `inf`. (`f32`
    /// subnormals, below `1.2e-38`, are read as normal numbers: about -88 instead of
    /// -87.3 to -103.3.)
    fn ln_fast(self) -> Self;
}

impl Float for f32 {
    const NAME: &'static str = "f32";
    fn cast(x: f64) -> Self {
        x as f32
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn exp_fast(self) -> f32 {
        exp_f32(self)
    }
    #[inline(always)]
    fn ln_fast(self) -> f32 {
        ln_f32(self)
    }
}

impl Float for f64 {
    const NAME: &'static str = "f64";
    fn cast(x: f64) -> Self {
        x
    }
    fn as_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn exp_fast(self) -> f64 {
        self.exp()
    }
    #[inline(always)]
    fn ln_fast(self) -> f64 {
        self.ln()
    }
}

/// `e^x`, Cephes `expf`: `x = n ln 2 + r` with `|r| <= ln 2 / 2`, a degree-7 polynomial for
/// `e^r`, and `2^n` built from its exponent bits. No branches or calls, so loops over it
/// vectorize; the rounding is the same in every lane, so results do not depend on how a
/// loop is split.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let x = x.clamp(-87.3, 88.3);
    let shifted = x * std::f32::consts::LOG2_E + MAGIC;
    let n = shifted - MAGIC; // round(x / ln 2)
    let n_bits = shifted.to_bits().wrapping_sub(MAGIC.to_bits()); // n as an integer
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4; // ln 2 in two parts
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    let scale = f32::from_bits(n_bits.wrapping_add(127) << 23); // 2^n
    e_r * scale
}

/// `ln x`, Cephes `logf`: `x = m 2^e` with `m` in `[sqrt(1/2), sqrt(2))`, a degree-9
/// polynomial for `ln m`, for normal `x > 0`. Outside the positive finite numbers, `ln`'s
/// own values: NaN for NaN and `x < 0`, `-inf` at `±0`, `inf` at `inf`. Branch-free: the
/// special cases are selects, so loops still vectorize (they make the BCE loss loop about
/// a fifth slower, a training step nothing measurable); see [`exp_f32`].
#[inline(always)]
fn ln_f32(x: f32) -> f32 {
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 126;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000); // in [0.5, 1)
    let small = m < std::f32::consts::FRAC_1_SQRT_2;
    e -= small as i32;
    m = if small { m + m - 1.0 } else { m - 1.0 };
    let e = e as f32;
    let z = m * m;
    let y = 7.037_683_6e-2;
    let y = y * m - 1.151_461e-1;
    let y = y * m + 1.167_699_9e-1;
    let y = y * m - 1.242_014_1e-1;
    let y = y * m + 1.424_932_3e-1;
    let y = y * m - 1.666_805_8e-1;
    let y = y * m + 2.000_071_4e-1;
    let y = y * m - 2.499_999_4e-1;
    let y = y * m + 3.333_333e-1;
    let y = y * m * z + e * -2.121_944_4e-4 - 0.5 * z;
    let ln = m + y + e * 0.693_359_4;
    if x > 0.0 && x < f32::INFINITY {
        ln
    } else if x == 0.0 {
        f32::NEG_INFINITY
    } else if x > 0.0 {
        x // inf
    } else {
        f32::NAN // NaN or x < 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_and_ln_match_std() {
        let mut worst_exp = 0.0f64;
        let mut worst_ln = 0.0f64;
        for i in 0..200_001 {
            let x = -87.0 + 175.0 * i as f64 / 200_000.0;
            let exact = x.exp();
            let rel = ((x as f32).exp_fast() as f64 - (x as f32 as f64).exp()).abs() / exact;
            worst_exp = worst_exp.max(rel);
            let y = 1e-30 + 1e30 * (i as f64 / 200_000.0).powi(8);
            let err = ((y as f32).ln_fast() as f64 - (y as f32 as f64).ln()).abs();
            worst_ln = worst_ln.max(err / (y as f32 as f64).ln().abs().max(1.0));
        }
        assert!(worst_exp < 3e-7, "exp relative error {worst_exp}");
        assert!(worst_ln < 3e-7, "ln error {worst_ln}");
        assert_eq!(1.0f32.ln_fast(), 0.0);
        assert_eq!(0.0f32.exp_fast(), 1.0);
        assert!((-200.0f32).exp_fast() < 1e-37 && (-200.0f32).exp_fast() >= 0.0);
    }
}

mod private {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}
