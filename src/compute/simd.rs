//! SIMD dispatch: a kernel compiled twice, for AVX2 and as built, the AVX2 twin picked at
//! run time. The element-wise kernels (activations, losses, Adam, the gradient norm) use it;
//! the matrix product picks its own AVX2 + FMA micro-kernel (see `gemm.rs`).

/// Defines `$name`, which runs the `#[inline(always)]` kernel `$kernel` with the same
/// arguments, compiled for AVX2 when the CPU has it (detected once, cached by std) and as
/// built otherwise. The element-wise loops then vectorize 8 `f32` wide instead of 4.
/// Results are identical either way: Rust never fuses a multiply and an add on its own, and
/// the kernels use only `+ - * /`, `sqrt`, comparisons and bit operations, which round the
/// same in every instruction set.
macro_rules! avx2_dispatch {
    (
        $(#[$meta:meta])*
        fn $name:ident / $kernel:ident <$($gen:ident),*> ($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?
        where $($bounds:tt)*
    ) => {
        $(#[$meta])*
        fn $name<$($gen),*>($($arg: $ty),*) $(-> $ret)? where $($bounds)* {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                unsafe fn twin<$($gen),*>($($arg: $ty),*) $(-> $ret)? where $($bounds)* {
                    $kernel($($arg),*)
                }
                if std::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2, checked just above.
                    return unsafe { twin($($arg),*) };
                }
            }
            $kernel($($arg),*)
        }
    };
}
pub(crate) use avx2_dispatch;
