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
}

impl Float for f32 {
    const NAME: &'static str = "f32";
    fn cast(x: f64) -> Self {
        x as f32
    }
    fn as_f64(self) -> f64 {
        self as f64
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
}

mod private {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}
