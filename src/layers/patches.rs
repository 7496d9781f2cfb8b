//! The patches of a convolution: their geometry ([`Patches`]), `im2col`, which copies an
//! image's patches into the columns of a matrix, and its adjoint `col2im_add`; for stride 1,
//! the patch matrix written from the image's zero-padded planes ([`PaddedPatches`]), and
//! the adjoint through the planes (`col2im_padded`); `unpatch_into` picks an adjoint.
//! `Conv2d` uses them forward and backward (where its products do not read the planes in
//! place), `ConvTranspose2d` backward and forward (the general forms).

use crate::float::Float;
use crate::layers::conv_direct::{self as direct, Plane};
use crate::layers::images::copy_row;

/// Index geometry of the patches of a convolution reading image `(c, h, w)` with kernel
/// `(kh, kw)`, stride `(sh, sw)` and padding `top`, `left` at `(oh, ow)` output positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Patches {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub top: usize,
    pub left: usize,
    pub oh: usize,
    pub ow: usize,
}

#[cfg(test)]
impl Patches {
    /// The patches of a stride-1 convolution of `c` channels of `h x w` with kernel
    /// `kh x kw` and padding `[top, bottom, left, right]` (for the tests).
    pub fn unit_stride(
        c: usize,
        [h, w]: [usize; 2],
        [kh, kw]: [usize; 2],
        pad: [usize; 4],
    ) -> Self {
        let [top, bottom, left, right] = pad;
        Patches {
            c,
            h,
            w,
            kh,
            kw,
            sh: 1,
            sw: 1,
            top,
            left,
            oh: h + top + bottom - kh + 1,
            ow: w + left + right - kw + 1,
        }
    }
}

impl Patches {
    /// Rows of the patch matrix, `c kh kw`.
    pub fn rows(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Columns of the patch matrix (output positions), `oh ow`.
    pub fn positions(&self) -> usize {
        self.oh * self.ow
    }

    /// Output positions `lo..hi` along one axis (of `n_out`) whose input index
    /// `o s + offset - pad` lies in `0..n`.
    fn valid(n_out: usize, s: usize, offset: usize, pad: usize, n: usize) -> (usize, usize) {
        let lo = pad.saturating_sub(offset).div_ceil(s);
        // o s + offset - pad <= n - 1  <=>  o <= (n - 1 + pad - offset) / s
        let hi = match (n - 1 + pad).checked_sub(offset) {
            Some(top) => (top / s + 1).min(n_out),
            None => 0,
        };
        (lo.min(hi), hi)
    }
}

/// Writes the patch matrix of image `x` `(c, h, w)` into `cols` `(c kh kw, oh ow)`.
pub(super) fn im2col<T: Float>(g: &Patches, x: &[T], cols: &mut [T]) {
    let p = g.positions();
    for ch in 0..g.c {
        let plane = &x[ch * g.h * g.w..(ch + 1) * g.h * g.w];
        for i in 0..g.kh {
            let (ylo, yhi) = Patches::valid(g.oh, g.sh, i, g.top, g.h);
            for j in 0..g.kw {
                let (xlo, xhi) = Patches::valid(g.ow, g.sw, j, g.left, g.w);
                let r = (ch * g.kh + i) * g.kw + j;
                let row = &mut cols[r * p..(r + 1) * p];
                for (oy, dst) in row.chunks_exact_mut(g.ow).enumerate() {
                    if oy < ylo || oy >= yhi {
                        dst.fill(T::zero());
                        continue;
                    }
                    let src = &plane[(oy * g.sh + i - g.top) * g.w..][..g.w];
                    dst[..xlo].fill(T::zero());
                    dst[xhi..].fill(T::zero());
                    if xlo == xhi {
                        continue; // the kernel column reads padding only
                    }
                    if g.sw == 1 {
                        let start = xlo + j - g.left;
                        copy_row(&mut dst[xlo..xhi], &src[start..start + (xhi - xlo)]);
                    } else {
                        for (ox, d) in dst.iter_mut().enumerate().take(xhi).skip(xlo) {
                            *d = src[ox * g.sw + j - g.left];
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds each entry of `cols` `(c kh kw, oh ow)` to the pixel of
/// `x` `(c, h, w)` it was read from (entries from the padding are dropped).
pub(super) fn col2im_add<T: Float>(g: &Patches, cols: &[T], x: &mut [T]) {
    let p = g.positions();
    for ch in 0..g.c {
        let plane = &mut x[ch * g.h * g.w..(ch + 1) * g.h * g.w];
        for i in 0..g.kh {
            let (ylo, yhi) = Patches::valid(g.oh, g.sh, i, g.top, g.h);
            for j in 0..g.kw {
                let (xlo, xhi) = Patches::valid(g.ow, g.sw, j, g.left, g.w);
                let r = (ch * g.kh + i) * g.kw + j;
                let row = &cols[r * p..(r + 1) * p];
                for oy in ylo..yhi {
                    let src = &row[oy * g.ow..(oy + 1) * g.ow];
                    let dst = &mut plane[(oy * g.sh + i - g.top) * g.w..][..g.w];
                    if xlo == xhi {
                        break; // the kernel column reads padding only
                    }
                    if g.sw == 1 {
                        let start = xlo + j - g.left;
                        for (d, &s) in dst[start..start + (xhi - xlo)]
                            .iter_mut()
                            .zip(&src[xlo..xhi])
                        {
                            *d += s;
                        }
                    } else {
                        for (ox, &s) in src.iter().enumerate().take(xhi).skip(xlo) {
                            dst[ox * g.sw + j - g.left] += s;
                        }
                    }
                }
            }
        }
    }
}

/// `x` `(c, h, w)` overwritten with the adjoint of the patch matrix applied to `cols`:
/// through the padded planes when the convolution has them ([`col2im_padded`]), else zeros
/// then [`col2im_add`]. The same bits either way.
pub(super) fn unpatch_into<T: Float>(
    g: &Patches,
    plane: Option<&Plane>,
    cols: &[T],
    pad: &mut [T],
    x: &mut [T],
) {
    match plane {
        Some(plane) => col2im_padded(g, plane, cols, pad, x),
        None => {
            x.fill(T::zero());
            col2im_add(g, cols, x);
        }
    }
}

/// The patch matrix `X_col` `(c kh kw, oh ow)` of a stride-1 convolution (the matrix
/// [`im2col`] writes), read from the image's zero-padded planes (`c` planes of
/// `plane.len` values, `conv_direct::pad_image`): each row is runs of `ow` values copied
/// straight from a plane, without bounds to clip.
pub(super) struct PaddedPatches<'a, T> {
    g: &'a Patches,
    plane: &'a Plane,
    pad: &'a [T],
}

impl<'a, T: Float> PaddedPatches<'a, T> {
    /// The patches of the image whose padded planes are `pad`.
    pub fn new(g: &'a Patches, plane: &'a Plane, pad: &'a [T]) -> Self {
        PaddedPatches { g, plane, pad }
    }

    /// Writes the patch matrix into `cols` `(c kh kw, oh ow)`, the matrix `im2col` writes.
    pub fn write(&self, cols: &mut [T]) {
        let (g, plane) = (self.g, self.plane);
        let p = g.positions();
        if p == 0 {
            return;
        }
        for (r, dst) in cols.chunks_exact_mut(p).enumerate().take(g.rows()) {
            let src = &self.pad[plane.tap(g, r)..];
            for (oy, run) in dst.chunks_exact_mut(g.ow).enumerate() {
                copy_row(run, &src[oy * plane.wp..][..g.ow]);
            }
        }
    }
}

/// [`col2im_add`] for a stride-1 convolution, into zeros: `x` `(c, h, w)` is overwritten
/// with the adjoint of [`PaddedPatches`] applied to `cols`, accumulated in the padded
/// planes `dpad` (`c` planes of `plane.len` values, overwritten). Each pixel receives its
/// entries in the order `col2im_add` adds them (kernel row, then column), so the bits are
/// those of `x.fill(0)` followed by `col2im_add`.
pub(super) fn col2im_padded<T: Float>(
    g: &Patches,
    plane: &Plane,
    cols: &[T],
    dpad: &mut [T],
    x: &mut [T],
) {
    dpad.fill(T::zero());
    let p = g.positions();
    for (r, row) in cols.chunks_exact(p).enumerate().take(g.rows()) {
        let start = plane.tap(g, r);
        for (oy, src) in row.chunks_exact(g.ow).enumerate() {
            let dst = &mut dpad[start + oy * plane.wp..][..g.ow];
            dst.iter_mut().zip(src).for_each(|(d, &s)| *d += s);
        }
    }
    direct::unpad_image(g, plane, dpad, x);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `im2col` against the definition, index by index, over strides and paddings.
    #[test]
    fn im2col_matches_the_definition() {
        for (h, w, kh, kw, sh, sw, top, left, bottom, right) in [
            (5, 4, 3, 2, 1, 1, 1, 0, 1, 1),
            (7, 7, 3, 3, 2, 2, 1, 1, 1, 1),
            (6, 5, 2, 3, 3, 2, 0, 2, 2, 0),
            (3, 3, 3, 3, 1, 1, 2, 2, 2, 2),
        ] {
            let oh = (h + top + bottom - kh) / sh + 1;
            let ow = (w + left + right - kw) / sw + 1;
            let g = Patches {
                c: 2,
                h,
                w,
                kh,
                kw,
                sh,
                sw,
                top,
                left,
                oh,
                ow,
            };
            let x: Vec<f64> = (0..2 * h * w).map(|i| i as f64 + 1.0).collect();
            let mut cols = vec![-1.0; g.rows() * g.positions()];
            im2col(&g, &x, &mut cols);
            for c in 0..2 {
                for i in 0..kh {
                    for j in 0..kw {
                        for oy in 0..oh {
                            for ox in 0..ow {
                                let y = (oy * sh + i) as isize - top as isize;
                                let xx = (ox * sw + j) as isize - left as isize;
                                let inside =
                                    (0..h as isize).contains(&y) && (0..w as isize).contains(&xx);
                                let want = if inside {
                                    x[c * h * w + y as usize * w + xx as usize]
                                } else {
                                    0.0
                                };
                                let r = (c * kh + i) * kw + j;
                                assert_eq!(cols[r * g.positions() + oy * ow + ox], want);
                            }
                        }
                    }
                }
            }
        }
    }

    /// For stride 1, the padded-plane forms give the bits of the general ones: the same
    /// patch matrix (written, and packed in blocks), and the same input gradient (pixels adding their entries in the same
    /// order), over paddings on every side, 'valid' and wider than the kernel.
    #[test]
    fn the_padded_forms_match_the_general_ones() {
        for (c, h, w, kh, kw, [top, bottom, left, right]) in [
            (2, 5, 4, 3, 2, [1, 1, 0, 1]),
            (1, 7, 7, 3, 3, [1, 1, 1, 1]),
            (3, 6, 5, 3, 3, [0, 0, 0, 0]),
            (2, 3, 3, 3, 3, [2, 2, 2, 2]),
            (1, 4, 9, 1, 4, [0, 3, 2, 1]),
        ] {
            let g = Patches::unit_stride(c, [h, w], [kh, kw], [top, bottom, left, right]);
            let plane = Plane::of(&g).expect("stride 1");
            let x: Vec<f64> = (0..c * h * w).map(|i| (i as f64 * 0.37).sin()).collect();
            let n = g.rows() * g.positions();
            let (mut cols, mut padded) = (vec![-1.0; n], vec![-2.0; n]);
            let mut pad = vec![5.0; c * plane.len];
            im2col(&g, &x, &mut cols);
            direct::pad_image(&g, &plane, &x, &mut pad);
            let patches = PaddedPatches::new(&g, &plane, &pad);
            patches.write(&mut padded);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&cols), bits(&padded), "im2col, {h}x{w} k{kh}x{kw}");
            // Entries whose sums depend on the order.
            let d: Vec<f64> = (0..n)
                .map(|i| (i as f64 * 1.3).cos() * 10f64.powi(i as i32 % 7 - 3))
                .collect();
            let mut dx = vec![0.0; c * h * w];
            col2im_add(&g, &d, &mut dx);
            let mut dx_padded = vec![9.0; c * h * w];
            col2im_padded(&g, &plane, &d, &mut pad, &mut dx_padded);
            assert_eq!(bits(&dx), bits(&dx_padded), "col2im, {h}x{w} k{kh}x{kw}");
        }
    }
}
