//! PIL's separable resampling filters, shared by the 8-bit RGB path (vision,
//! fixed point, bit-exact with PIL) and the f32 single-channel path (depth,
//! thermal: PIL's `F` mode, float weights).
//!
//! For each output index the taps cover the input pixels within the filter's
//! support around the output pixel's centre; the support (and the kernel) is
//! stretched by the downscale factor, which is PIL's antialiasing.

/// A resampling filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Bicubic, `a = -0.5`, support 2.
    Bicubic,
    /// Bilinear (triangle), support 1.
    Bilinear,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Bicubic => 2.0,
            Filter::Bilinear => 1.0,
        }
    }

    fn eval(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Filter::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Filter::Bilinear => (1.0 - x).max(0.0),
        }
    }
}

/// Taps of one axis: per output index the first input index and count, and
/// `ksize` normalised weights per output index.
pub(crate) struct Taps {
    pub bounds: Vec<(usize, usize)>,
    pub ksize: usize,
    pub weights: Vec<f64>,
}

pub(crate) fn taps(in_size: usize, out_size: usize, filter: Filter) -> Taps {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0f64; out_size * ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C casts truncate toward zero; negative values are clamped to 0 right after.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = xmax.saturating_sub(xmin);
        let k = &mut weights[xx * ksize..xx * ksize + n];
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate() {
            let w = filter.eval((x as f64 + xmin as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        if ww != 0.0 {
            for kx in k.iter_mut() {
                *kx /= ww;
            }
        }
        bounds.push((xmin, n));
    }
    Taps {
        bounds,
        ksize,
        weights,
    }
}

/// Resizes a single-channel f32 image as PIL's `F` mode does (float weights,
/// horizontal pass then vertical, each skipped when its size is unchanged).
pub fn resize_f32(
    src: &[f32],
    w: usize,
    h: usize,
    out_w: usize,
    out_h: usize,
    filter: Filter,
) -> Vec<f32> {
    let tmp: Vec<f32> = if out_w != w {
        let t = taps(w, out_w, filter);
        let mut tmp = vec![0f32; out_w * h];
        for y in 0..h {
            let row = &src[y * w..(y + 1) * w];
            for xx in 0..out_w {
                let (xmin, n) = t.bounds[xx];
                let k = &t.weights[xx * t.ksize..xx * t.ksize + n];
                let mut ss = 0f64;
                for (x, kx) in k.iter().enumerate() {
                    ss += row[xmin + x] as f64 * kx;
                }
                tmp[y * out_w + xx] = ss as f32;
            }
        }
        tmp
    } else {
        src.to_vec()
    };
    if out_h == h {
        return tmp;
    }
    let t = taps(h, out_h, filter);
    let mut out = vec![0f32; out_w * out_h];
    for yy in 0..out_h {
        let (ymin, n) = t.bounds[yy];
        let k = &t.weights[yy * t.ksize..yy * t.ksize + n];
        for xx in 0..out_w {
            let mut ss = 0f64;
            for (y, ky) in k.iter().enumerate() {
                ss += tmp[(ymin + y) * out_w + xx] as f64 * ky;
            }
            out[yy * out_w + xx] = ss as f32;
        }
    }
    out
}

/// Short side to `short`, then the centred `crop` x `crop` square, of a
/// single-channel f32 image (the depth and thermal geometry).
pub fn resize_crop_f32(
    src: &[f32],
    w: usize,
    h: usize,
    short: usize,
    crop: usize,
    filter: Filter,
) -> Result<Vec<f32>, super::PreprocessError> {
    if w == 0 || h == 0 || src.len() != w * h {
        return Err(super::PreprocessError::Shape(format!(
            "image {w}x{h} needs {} values, got {}",
            w * h,
            src.len()
        )));
    }
    let (rw, rh) = super::vision::resized_size(w, h, short);
    if crop > rw || crop > rh || crop == 0 {
        return Err(super::PreprocessError::Shape(format!(
            "crop {crop} does not fit the resized image {rw}x{rh}"
        )));
    }
    let r = if (rw, rh) == (w, h) {
        src.to_vec()
    } else {
        resize_f32(src, w, h, rw, rh, filter)
    };
    let (x0, y0) = (
        super::vision::crop_offset(rw, crop),
        super::vision::crop_offset(rh, crop),
    );
    let mut out = Vec::with_capacity(crop * crop);
    for y in 0..crop {
        out.extend_from_slice(&r[(y0 + y) * rw + x0..(y0 + y) * rw + x0 + crop]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_and_flat_stays_flat() {
        for (i, o) in [(10, 3), (3, 10), (224, 224), (600, 224)] {
            for f in [Filter::Bicubic, Filter::Bilinear] {
                let t = taps(i, o, f);
                for xx in 0..o {
                    let s: f64 = t.weights[xx * t.ksize..(xx + 1) * t.ksize].iter().sum();
                    assert!((s - 1.0).abs() < 1e-12);
                }
            }
        }
        let flat = vec![3.5f32; 40 * 30];
        assert!(
            resize_f32(&flat, 40, 30, 17, 11, Filter::Bilinear)
                .iter()
                .all(|v| (v - 3.5).abs() < 1e-5)
        );
    }

    #[test]
    fn crop_geometry() {
        let img: Vec<f32> = (0..8 * 4).map(|i| i as f32).collect();
        // Short side 4 already: no resize, crop the centre 4x4 of 8x4.
        let c = resize_crop_f32(&img, 8, 4, 4, 4, Filter::Bilinear).unwrap();
        assert_eq!(&c[..4], &[2.0, 3.0, 4.0, 5.0]);
        assert!(resize_crop_f32(&img[1..], 8, 4, 4, 4, Filter::Bilinear).is_err());
    }
}
