//! SIMD dispatch: a kernel compiled three times, for AVX-512F, for AVX2 and as built, the
//! widest twin the CPU runs picked at run time. The element-wise kernels (activations,
//! losses, Adam, the gradient norm, pooling, the images' padding) use it;
//! the matrix product picks its own AVX-512F or AVX2 + FMA micro-kernel (see `kernel.rs`)
//! through `avx512()` and `avx2_fma()`.
//!
//! `AUTOENCODER_PORTABLE=1` in the environment (read once, at the first kernel that asks)
//! turns every SIMD path off: `avx2()`, `avx2_fma()` and `avx512()` then say no whatever the CPU has,
//! and the portable kernels run, with the same results (slower). Tests switch in-process
//! with [`set_kernels`].

use std::sync::atomic::{AtomicU8, Ordering};

/// The environment variable that forces the portable kernels when set to anything but
/// empty or `0`.
const PORTABLE_VAR: &str = "AUTOENCODER_PORTABLE";

/// Which kernels run: [`UNREAD`] until the first kernel reads the environment, then
/// [`FASTEST`] or [`PORTABLE`].
static MODE: AtomicU8 = AtomicU8::new(UNREAD);
const UNREAD: u8 = 0;
const FASTEST: u8 = 1;
const PORTABLE: u8 = 2;

/// Which kernels the crate runs (a test hook, see [`set_kernels`]).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    /// The fastest the CPU has: AVX-512F or AVX2 when available (for the product, AVX-512F
    /// or AVX2 + FMA).
    Fastest,
    /// The portable kernels only, as on a CPU without AVX2.
    Portable,
}

/// Which kernels the crate runs: [`Kernels::Portable`] when `AUTOENCODER_PORTABLE` is set
/// (to anything but empty or `0`) or [`set_kernels`] asked for it, else
/// [`Kernels::Fastest`]. Not whether the CPU has AVX2.
///
/// Hidden from the docs: a test hook, not part of the supported interface.
#[doc(hidden)]
pub fn kernels() -> Kernels {
    let mode = match MODE.load(Ordering::Relaxed) {
        UNREAD => {
            let forced = std::env::var_os(PORTABLE_VAR).is_some_and(|v| !v.is_empty() && v != "0");
            let mode = if forced { PORTABLE } else { FASTEST };
            // A concurrent `set_kernels` wins over the environment.
            match MODE.compare_exchange(UNREAD, mode, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => mode,
                Err(now) => now,
            }
        }
        mode => mode,
    };
    if mode == PORTABLE {
        Kernels::Portable
    } else {
        Kernels::Fastest
    }
}

/// Picks the kernels from the next kernel call on, overriding `AUTOENCODER_PORTABLE`:
/// tests train once with each and compare the bits. Results are the same either way, so a
/// computation running while the switch flips keeps its bits.
///
/// Hidden from the docs: a test hook, not part of the supported interface (users set
/// `AUTOENCODER_PORTABLE=1`).
#[doc(hidden)]
pub fn set_kernels(kernels: Kernels) {
    let mode = match kernels {
        Kernels::Fastest => FASTEST,
        Kernels::Portable => PORTABLE,
    };
    MODE.store(mode, Ordering::Relaxed);
}

/// Whether the AVX2 twins (and the AVX2 + FMA product) may run: the CPU has AVX2 (detected
/// once, cached by std) and the portable kernels are not forced.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn avx2() -> bool {
    kernels() == Kernels::Fastest && std::is_x86_feature_detected!("avx2")
}

/// Whether the AVX2 + FMA micro-kernel of the product may run: the CPU has both and the
/// portable kernels are not forced.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn avx2_fma() -> bool {
    avx2() && std::is_x86_feature_detected!("fma")
}

/// Whether the AVX-512F micro-kernel of the product may run: the CPU has AVX-512F (which
/// includes fused multiply-adds) and the portable kernels are not forced.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn avx512() -> bool {
    kernels() == Kernels::Fastest && std::is_x86_feature_detected!("avx512f")
}

/// Defines `$name`, which runs the `#[inline(always)]` kernel `$kernel` with the same
/// arguments, compiled for AVX-512F when `avx512()` says so, for AVX2 when `avx2()` does,
/// and as built otherwise. The element-wise loops then vectorize 16 or 8 `f32` wide instead
/// of 4 (and the short rows of images lose their scalar tails). Results are identical
/// either way: Rust never fuses a multiply and an add on its own, and the kernels use only
/// `+ - * /`, `sqrt`, comparisons and bit operations, which round the same in every
/// instruction set.
macro_rules! simd_dispatch {
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident / $kernel:ident <$($gen:ident),*> ($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?
        where $($bounds:tt)*
    ) => {
        $(#[$meta])*
        $vis fn $name<$($gen),*>($($arg: $ty),*) $(-> $ret)? where $($bounds)* {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn twin512<$($gen),*>($($arg: $ty),*) $(-> $ret)? where $($bounds)* {
                    $kernel($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                unsafe fn twin<$($gen),*>($($arg: $ty),*) $(-> $ret)? where $($bounds)* {
                    $kernel($($arg),*)
                }
                if $crate::compute::avx512() {
                    // SAFETY: the CPU supports AVX-512F (`avx512` checks it).
                    return unsafe { twin512($($arg),*) };
                }
                if $crate::compute::avx2() {
                    // SAFETY: the CPU supports AVX2 (`avx2` checks it).
                    return unsafe { twin($($arg),*) };
                }
            }
            $kernel($($arg),*)
        }
    };
}
pub(crate) use simd_dispatch;
