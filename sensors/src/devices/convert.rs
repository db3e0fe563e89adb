//! Pure format conversions from what real devices deliver to edgebind's sample
//! formats. No device, no system library: every function here is tested on
//! byte fixtures, and every malformed input (wrong size, truncated buffer,
//! odd geometry, corrupt JPEG, bad IIO scan type) is an error that names the
//! format and the sizes, never a panic.
//!
//! | device format | V4L2 fourcc | output |
//! |---|---|---|
//! | YUYV 4:2:2 (BT.601, limited range: what UVC webcams send) | `YUYV` | [`PixelFormat::Rgb8`] |
//! | Motion JPEG (with or without Huffman tables, as UVC cameras send it) | `MJPG` | `Rgb8` |
//! | RGB24 | `RGB3` | `Rgb8` (rows de-padded) |
//! | depth Z16 (RealSense-style UVC depth, `scale` mm per count) | `Z16 ` | [`PixelFormat::DepthZ16`], millimetres |
//! | thermal Y16 (PureThermal / Lepton radiometric, TLinear) | `Y16 ` | [`PixelFormat::ThermalY16`] centi-kelvin or [`PixelFormat::ThermalF32`] °C |
//! | IIO buffered scan records (`le:s16/16>>0` ...) | — | raw integers, then `(raw + offset) * scale` in SI units |
//! | interleaved multi-channel PCM | — | mono f32 (mean of the channels) |
//!
//! Frame conversions write into a caller's [`Frame`], reusing its buffer, so a
//! sensor thread converting every frame does not allocate once the buffer has
//! grown to size (the MJPEG decoder itself allocates internally per frame).
//!
//! Strides: V4L2 rows may be padded (`bytesperline` > `width * bpp`). A buffer
//! is accepted when it holds `height` rows of `stride` bytes, the last one
//! possibly without its padding; anything shorter is a truncated frame, anything
//! longer a wrong-size frame.

use zune_jpeg::JpegDecoder;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

use crate::sample::{Frame, PixelFormat};

/// A conversion that could not be done; the message names the format and sizes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// The buffer does not have the size the format, size and stride imply.
    #[error(
        "{format} {width}x{height} (stride {stride} bytes) needs {expected} bytes, buffer has {actual}{hint}",
        hint = if actual < expected { " (truncated frame)" } else { " (wrong size)" }
    )]
    WrongSize {
        /// Source format.
        format: &'static str,
        /// Width, pixels.
        width: u32,
        /// Height, pixels.
        height: u32,
        /// Bytes per row.
        stride: usize,
        /// Bytes expected (`stride * height`).
        expected: usize,
        /// Bytes present.
        actual: usize,
    },
    /// Impossible geometry (zero size, odd YUYV width, stride shorter than a row).
    #[error("{format}: {detail}")]
    Geometry {
        /// Source format.
        format: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A JPEG that does not decode, or decodes to another size than configured.
    #[error("MJPEG: {0}")]
    Jpeg(String),
    /// An IIO scan type or record that cannot be decoded.
    #[error("IIO: {0}")]
    Iio(String),
    /// Calibration values that make no sense (zero or non-finite scale).
    #[error("{0}")]
    Calibration(String),
}

/// Checks `len` against `height` rows of `stride` bytes holding `row` bytes each.
fn check_rows(
    format: &'static str,
    len: usize,
    width: u32,
    height: u32,
    row: usize,
    stride: usize,
) -> Result<(), ConvertError> {
    if width == 0 || height == 0 {
        return Err(ConvertError::Geometry {
            format,
            detail: format!("frame size {width}x{height} is empty"),
        });
    }
    if stride < row {
        return Err(ConvertError::Geometry {
            format,
            detail: format!("stride {stride} bytes is shorter than a row of {row} bytes"),
        });
    }
    let expected = stride.checked_mul(height as usize);
    let min = expected.map(|e| e - (stride - row));
    match (expected, min) {
        (Some(exp), Some(min)) if len >= min && len <= exp => Ok(()),
        _ => Err(ConvertError::WrongSize {
            format,
            width,
            height,
            stride,
            expected: expected.unwrap_or(usize::MAX),
            actual: len,
        }),
    }
}

#[inline]
fn clamp_u8(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

/// One BT.601 limited-range YCbCr pixel to RGB, in 8.8 fixed point
/// (coefficients 1.164, 1.596, 0.392, 0.813, 2.017 scaled by 256).
#[inline]
fn ycbcr601_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    let c = 298 * (y as i32 - 16) + 128;
    let d = cb as i32 - 128;
    let e = cr as i32 - 128;
    [
        clamp_u8((c + 409 * e) >> 8),
        clamp_u8((c - 100 * d - 208 * e) >> 8),
        clamp_u8((c + 516 * d) >> 8),
    ]
}

/// YUYV 4:2:2 (`Y0 U Y1 V` per pixel pair; BT.601, limited range, as UVC
/// webcams deliver it) to RGB8. `stride` is the bytes per row (`width * 2` when
/// unpadded).
pub fn yuyv_to_rgb8(
    src: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    out: &mut Frame,
) -> Result<(), ConvertError> {
    if width % 2 == 1 {
        return Err(ConvertError::Geometry {
            format: "YUYV",
            detail: format!("width {width} is odd; YUYV carries pixels in pairs"),
        });
    }
    let row = width as usize * 2;
    check_rows("YUYV", src.len(), width, height, row, stride)?;
    out.reshape(width, height, PixelFormat::Rgb8);
    let w3 = width as usize * 3;
    for (y, dst) in out.data.chunks_exact_mut(w3).enumerate() {
        let line = &src[y * stride..y * stride + row];
        for (quad, px) in line.chunks_exact(4).zip(dst.chunks_exact_mut(6)) {
            let (y0, u, y1, v) = (quad[0], quad[1], quad[2], quad[3]);
            px[..3].copy_from_slice(&ycbcr601_to_rgb(y0, u, v));
            px[3..].copy_from_slice(&ycbcr601_to_rgb(y1, u, v));
        }
    }
    Ok(())
}

/// RGB24 (`RGB3`, R G B per pixel) to RGB8: a copy that drops row padding.
pub fn rgb24_to_rgb8(
    src: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    out: &mut Frame,
) -> Result<(), ConvertError> {
    let row = width as usize * 3;
    check_rows("RGB24", src.len(), width, height, row, stride)?;
    out.reshape(width, height, PixelFormat::Rgb8);
    copy_rows(src, row, stride, &mut out.data);
    Ok(())
}

fn copy_rows(src: &[u8], row: usize, stride: usize, dst: &mut [u8]) {
    if stride == row {
        dst.copy_from_slice(&src[..dst.len()]);
    } else {
        for (y, d) in dst.chunks_exact_mut(row).enumerate() {
            d.copy_from_slice(&src[y * stride..y * stride + row]);
        }
    }
}

/// Decodes Motion JPEG frames to RGB8.
///
/// UVC cameras often send MJPEG frames without Huffman tables (DHT), relying on
/// the standard tables of JPEG Annex K (the AVI MJPEG convention). A frame with
/// no DHT segment is fed to the decoder behind an `AVI1` APP0 marker, which
/// makes it use those standard tables; the copy goes through a scratch buffer
/// kept here, so it allocates once.
#[derive(Debug, Default)]
pub struct MjpegDecoder {
    scratch: Vec<u8>,
}

impl MjpegDecoder {
    /// A decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes `src` into `out` as RGB8; the image must be `width` x `height`.
    pub fn decode(
        &mut self,
        src: &[u8],
        width: u32,
        height: u32,
        out: &mut Frame,
    ) -> Result<(), ConvertError> {
        if src.len() < 4 || src[0] != 0xFF || src[1] != 0xD8 {
            return Err(ConvertError::Jpeg(format!(
                "frame of {} bytes does not start with a JPEG SOI marker",
                src.len()
            )));
        }
        let data: &[u8] = if has_huffman_tables(src) {
            src
        } else {
            // SOI, APP0 "AVI1\0" (length 7: the length field and 5 bytes), then the frame after its SOI.
            self.scratch.clear();
            self.scratch.extend_from_slice(&[
                0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x07, b'A', b'V', b'I', b'1', 0,
            ]);
            self.scratch.extend_from_slice(&src[2..]);
            &self.scratch
        };
        let options = DecoderOptions::default()
            .jpeg_set_out_colorspace(ColorSpace::RGB)
            .set_max_width(width as usize)
            .set_max_height(height as usize)
            .set_strict_mode(false);
        let mut dec = JpegDecoder::new_with_options(ZCursor::new(data), options);
        dec.decode_headers()
            .map_err(|e| ConvertError::Jpeg(format!("bad headers: {e:?}")))?;
        let (w, h) = dec
            .dimensions()
            .map(|(w, h)| (w as u32, h as u32))
            .unwrap_or((0, 0));
        if (w, h) != (width, height) {
            return Err(ConvertError::Jpeg(format!(
                "image is {w}x{h}, the stream is configured as {width}x{height}"
            )));
        }
        let components = dec.info().map(|i| i.components).unwrap_or(0);
        out.reshape(width, height, PixelFormat::Rgb8);
        let need = dec.output_buffer_size().unwrap_or(usize::MAX);
        if need != out.data.len() {
            return Err(ConvertError::Jpeg(format!(
                "decoder wants {need} bytes for {width}x{height} RGB ({components} components)"
            )));
        }
        dec.decode_into(&mut out.data)
            .map_err(|e| ConvertError::Jpeg(format!("{e:?}")))
    }
}

/// Whether the JPEG's header segments (before the first SOS) hold a DHT.
fn has_huffman_tables(jpeg: &[u8]) -> bool {
    let mut i = 2;
    while i + 4 <= jpeg.len() {
        if jpeg[i] != 0xFF {
            return false; // not at a marker: let the decoder report the damage
        }
        let marker = jpeg[i + 1];
        match marker {
            0xC4 => return true,
            0xDA | 0xD9 => return false,
            0xFF => {
                i += 1; // fill byte
                continue;
            }
            0x01 | 0xD0..=0xD7 => {
                i += 2;
                continue;
            }
            _ => {}
        }
        let len = u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize;
        i += 2 + len;
    }
    false
}

/// Depth Z16 (u16 little-endian, `mm_per_count` millimetres per count; 0 means
/// "no measurement") to [`PixelFormat::DepthZ16`] millimetres. A scale of 1 is a
/// copy; otherwise values are rounded and saturate at 65535 mm, and 0 stays 0.
pub fn z16_to_depth_mm(
    src: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    mm_per_count: f32,
    out: &mut Frame,
) -> Result<(), ConvertError> {
    if !(mm_per_count.is_finite() && mm_per_count > 0.0) {
        return Err(ConvertError::Calibration(format!(
            "depth scale {mm_per_count} mm per count must be a positive number"
        )));
    }
    let row = width as usize * 2;
    check_rows("Z16", src.len(), width, height, row, stride)?;
    out.reshape(width, height, PixelFormat::DepthZ16);
    if mm_per_count == 1.0 {
        copy_rows(src, row, stride, &mut out.data);
        return Ok(());
    }
    map_u16_rows(src, row, stride, &mut out.data, |v| {
        if v == 0 {
            0
        } else {
            (v as f32 * mm_per_count).round().clamp(1.0, 65535.0) as u16
        }
    });
    Ok(())
}

fn map_u16_rows(src: &[u8], row: usize, stride: usize, dst: &mut [u8], f: impl Fn(u16) -> u16) {
    for (y, d) in dst.chunks_exact_mut(row).enumerate() {
        let s = &src[y * stride..y * stride + row];
        for (o, i) in d.chunks_exact_mut(2).zip(s.chunks_exact(2)) {
            o.copy_from_slice(&f(u16::from_le_bytes([i[0], i[1]])).to_le_bytes());
        }
    }
}

/// Calibration of a radiometric thermal camera: `kelvin = counts * kelvin_per_count + kelvin_offset`
/// (Lepton TLinear high resolution: 0.01 K per count, offset 0: centi-kelvin).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThermalCalibration {
    /// Kelvin per Y16 count.
    pub kelvin_per_count: f32,
    /// Kelvin at count 0.
    pub kelvin_offset: f32,
}

impl ThermalCalibration {
    /// Lepton TLinear, high resolution: counts are centi-kelvin.
    pub const CENTIKELVIN: ThermalCalibration = ThermalCalibration {
        kelvin_per_count: 0.01,
        kelvin_offset: 0.0,
    };

    /// Kelvin of a count.
    pub fn kelvin(&self, counts: u16) -> f32 {
        counts as f32 * self.kelvin_per_count + self.kelvin_offset
    }
}

/// Thermal Y16 (u16 little-endian radiometric counts) to `format`:
/// [`PixelFormat::ThermalY16`] (centi-kelvin, saturating, a copy when the
/// counts already are centi-kelvin) or [`PixelFormat::ThermalF32`] (°C).
pub fn y16_to_thermal(
    src: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    cal: ThermalCalibration,
    format: PixelFormat,
    out: &mut Frame,
) -> Result<(), ConvertError> {
    if !(cal.kelvin_per_count.is_finite()
        && cal.kelvin_per_count > 0.0
        && cal.kelvin_offset.is_finite())
    {
        return Err(ConvertError::Calibration(format!(
            "thermal calibration {} K per count, offset {} K: the scale must be a positive number",
            cal.kelvin_per_count, cal.kelvin_offset
        )));
    }
    let row = width as usize * 2;
    check_rows("Y16", src.len(), width, height, row, stride)?;
    match format {
        PixelFormat::ThermalY16 => {
            out.reshape(width, height, PixelFormat::ThermalY16);
            if cal == ThermalCalibration::CENTIKELVIN {
                copy_rows(src, row, stride, &mut out.data);
            } else {
                map_u16_rows(src, row, stride, &mut out.data, |v| {
                    (cal.kelvin(v) * 100.0).round().clamp(0.0, 65535.0) as u16
                });
            }
        }
        PixelFormat::ThermalF32 => {
            out.reshape(width, height, PixelFormat::ThermalF32);
            let orow = width as usize * 4;
            for (y, d) in out.data.chunks_exact_mut(orow).enumerate() {
                let s = &src[y * stride..y * stride + row];
                for (o, i) in d.chunks_exact_mut(4).zip(s.chunks_exact(2)) {
                    let c = cal.kelvin(u16::from_le_bytes([i[0], i[1]])) - 273.15;
                    o.copy_from_slice(&c.to_le_bytes());
                }
            }
        }
        other => {
            return Err(ConvertError::Geometry {
                format: "Y16",
                detail: format!("cannot convert thermal counts to {}", other.as_str()),
            });
        }
    }
    Ok(())
}

/// Interleaved PCM (`channels` per frame) to mono: the mean of the channels.
/// `out` is cleared and refilled (no allocation once it has grown). A trailing
/// partial frame is an error.
pub fn downmix_to_mono(
    interleaved: &[f32],
    channels: u16,
    out: &mut Vec<f32>,
) -> Result<(), ConvertError> {
    if channels == 0 || !interleaved.len().is_multiple_of(channels as usize) {
        return Err(ConvertError::Geometry {
            format: "PCM",
            detail: format!(
                "{} samples do not make whole frames of {channels} channels",
                interleaved.len()
            ),
        });
    }
    out.clear();
    if channels == 1 {
        out.extend_from_slice(interleaved);
    } else {
        let k = 1.0 / channels as f32;
        out.extend(
            interleaved
                .chunks_exact(channels as usize)
                .map(|f| f.iter().sum::<f32>() * k),
        );
    }
    Ok(())
}

/// The storage of one IIO scan element, as its sysfs `type` file describes it:
/// `[be|le]:[s|u]BITS/STORAGEBITS[XREPEAT]>>SHIFT`, e.g. `le:s16/16>>0` or `be:s12/16>>4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanType {
    /// Big-endian storage.
    pub big_endian: bool,
    /// Two's-complement signed value.
    pub signed: bool,
    /// Significant bits.
    pub bits: u8,
    /// Bits of storage (8, 16, 32 or 64).
    pub storage_bits: u8,
    /// Right shift applied before masking to `bits`.
    pub shift: u8,
}

impl ScanType {
    /// Parses a sysfs `type` string.
    pub fn parse(s: &str) -> Result<ScanType, ConvertError> {
        let s = s.trim();
        let bad = |why: &str| ConvertError::Iio(format!("scan type `{s}`: {why}"));
        let (endian, rest) = s
            .split_once(':')
            .ok_or_else(|| bad("expected ENDIAN:SIGNBITS/STORAGE>>SHIFT"))?;
        let big_endian = match endian {
            "be" => true,
            "le" => false,
            _ => return Err(bad("endianness must be `be` or `le`")),
        };
        let mut chars = rest.chars();
        let signed = match chars.next() {
            Some('s') => true,
            Some('u') => false,
            _ => return Err(bad("sign must be `s` or `u`")),
        };
        let rest = chars.as_str();
        let (sizes, shift) = rest
            .split_once(">>")
            .ok_or_else(|| bad("missing `>>SHIFT`"))?;
        let (bits, storage) = sizes
            .split_once('/')
            .ok_or_else(|| bad("missing `BITS/STORAGE`"))?;
        if storage.contains('X') {
            return Err(bad("repeated elements (`X`) are not supported"));
        }
        let num = |v: &str, what: &str| {
            v.parse::<u8>()
                .map_err(|_| bad(&format!("{what} `{v}` is not a number")))
        };
        let t = ScanType {
            big_endian,
            signed,
            bits: num(bits, "bits")?,
            storage_bits: num(storage, "storage bits")?,
            shift: num(shift, "shift")?,
        };
        if !matches!(t.storage_bits, 8 | 16 | 32 | 64) {
            return Err(bad("storage must be 8, 16, 32 or 64 bits"));
        }
        if t.bits == 0 || t.bits as u32 + t.shift as u32 > t.storage_bits as u32 {
            return Err(bad("bits + shift exceed the storage"));
        }
        Ok(t)
    }

    /// Bytes of storage.
    pub fn bytes(&self) -> usize {
        self.storage_bits as usize / 8
    }

    /// Decodes one element from the start of `b`.
    pub fn decode(&self, b: &[u8]) -> Result<i64, ConvertError> {
        let n = self.bytes();
        let b = b.get(..n).ok_or_else(|| {
            ConvertError::Iio(format!(
                "element needs {n} bytes, {} left in the record",
                b.len()
            ))
        })?;
        let mut raw: u64 = 0;
        for i in 0..n {
            let byte = if self.big_endian { b[i] } else { b[n - 1 - i] };
            raw = (raw << 8) | byte as u64;
        }
        raw >>= self.shift;
        let v = if self.bits == 64 {
            raw as i64
        } else {
            let mask = (1u64 << self.bits) - 1;
            raw &= mask;
            if self.signed && raw >> (self.bits - 1) & 1 == 1 {
                (raw | !mask) as i64
            } else {
                raw as i64
            }
        };
        Ok(v)
    }
}

/// Where each enabled element of an IIO scan record lies: elements in scan-index
/// order, each aligned to its own storage size, the record padded to its
/// largest element (the kernel's layout of the buffer char device).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanLayout {
    /// Byte offset of each element, in the order given.
    pub offsets: Vec<usize>,
    /// Bytes per record.
    pub record_bytes: usize,
}

impl ScanLayout {
    /// The layout of `types`, which must be in scan-index order.
    pub fn new(types: &[ScanType]) -> ScanLayout {
        let mut offsets = Vec::with_capacity(types.len());
        let mut at = 0usize;
        let mut largest = 1usize;
        for t in types {
            let n = t.bytes();
            at = at.div_ceil(n) * n;
            offsets.push(at);
            at += n;
            largest = largest.max(n);
        }
        ScanLayout {
            offsets,
            record_bytes: at.div_ceil(largest) * largest,
        }
    }
}

/// Scale and offset of an IIO channel: `value = (raw + offset) * scale` in the
/// channel's SI unit (m/s^2 for `in_accel`, rad/s for `in_anglvel`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IioCalibration {
    /// `in_<type>_scale`.
    pub scale: f64,
    /// `in_<type>_offset` (0 when absent).
    pub offset: f64,
}

impl IioCalibration {
    /// The SI value of a raw reading.
    pub fn apply(&self, raw: i64) -> f32 {
        ((raw as f64 + self.offset) * self.scale) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Frame {
        Frame::zeroed(0, 0, PixelFormat::Rgb8)
    }

    fn near(a: &[u8], b: &[u8], tol: i32) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (*x as i32 - *y as i32).abs() <= tol)
    }

    /// ITU-R BT.601 100% colour bars as a YUYV camera delivers them (limited
    /// range), one pixel pair per bar: white, yellow, cyan, green, magenta, red,
    /// blue, black.
    const BARS_YUYV: [u8; 32] = [
        235, 128, 235, 128, // white
        210, 16, 210, 146, // yellow
        170, 166, 170, 16, // cyan
        145, 54, 145, 34, // green
        106, 202, 106, 222, // magenta
        81, 90, 81, 240, // red
        41, 240, 41, 110, // blue
        16, 128, 16, 128, // black
    ];
    const BARS_RGB: [[u8; 3]; 8] = [
        [255, 255, 255],
        [255, 255, 0],
        [0, 255, 255],
        [0, 255, 0],
        [255, 0, 255],
        [255, 0, 0],
        [0, 0, 255],
        [0, 0, 0],
    ];

    #[test]
    fn yuyv_colour_bars_decode_to_their_colours() {
        let mut out = frame();
        yuyv_to_rgb8(&BARS_YUYV, 16, 1, 32, &mut out).unwrap();
        assert_eq!(
            (out.width, out.height, out.format),
            (16, 1, PixelFormat::Rgb8)
        );
        for (i, want) in BARS_RGB.iter().enumerate() {
            for k in 0..2 {
                let px = &out.data[(2 * i + k) * 3..(2 * i + k) * 3 + 3];
                assert!(near(px, want, 2), "bar {i}: {px:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn yuyv_fixture_matches_its_reference() {
        // fixtures/bars_64x48.yuyv: 64x48 YUYV made from fixtures/bars_64x48.rgb with
        // BT.601 limited-range float math (fixtures/make_fixtures.py).
        let yuyv = include_bytes!("fixtures/bars_64x48.yuyv");
        let rgb = include_bytes!("fixtures/bars_64x48.rgb");
        let mut out = frame();
        yuyv_to_rgb8(yuyv, 64, 48, 128, &mut out).unwrap();
        let worst = out
            .data
            .iter()
            .zip(rgb.iter())
            .map(|(a, b)| (*a as i32 - *b as i32).abs())
            .max()
            .unwrap();
        assert!(worst <= 2, "max error {worst}");
    }

    #[test]
    fn yuyv_with_padded_rows_and_bad_sizes() {
        // Two rows of 2 pixels with 4 bytes of padding per row.
        let mut src = vec![0u8; 16];
        src[..4].copy_from_slice(&[235, 128, 16, 128]);
        src[8..12].copy_from_slice(&[16, 128, 235, 128]);
        let mut out = frame();
        yuyv_to_rgb8(&src, 2, 2, 8, &mut out).unwrap();
        assert_eq!(out.data, [255, 255, 255, 0, 0, 0, 0, 0, 0, 255, 255, 255]);
        // The last row without its padding is accepted too.
        yuyv_to_rgb8(&src[..12], 2, 2, 8, &mut out).unwrap();
        // Truncated and oversized buffers are errors that say so.
        let e = yuyv_to_rgb8(&src[..11], 2, 2, 8, &mut out).unwrap_err();
        assert!(
            e.to_string()
                .contains("needs 16 bytes, buffer has 11 (truncated frame)"),
            "{e}"
        );
        let e = yuyv_to_rgb8(&[0; 17], 2, 2, 8, &mut out).unwrap_err();
        assert!(e.to_string().contains("(wrong size)"), "{e}");
        assert!(
            yuyv_to_rgb8(&[0; 12], 3, 2, 6, &mut out)
                .unwrap_err()
                .to_string()
                .contains("odd")
        );
        assert!(
            yuyv_to_rgb8(&[0; 8], 4, 1, 4, &mut out)
                .unwrap_err()
                .to_string()
                .contains("shorter than a row")
        );
        assert!(
            yuyv_to_rgb8(&[], 0, 0, 0, &mut out)
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        // A huge claimed size does not overflow or allocate.
        assert!(yuyv_to_rgb8(&[0; 4], u32::MAX - 1, u32::MAX, usize::MAX / 2, &mut out).is_err());
    }

    #[test]
    fn rgb24_strips_padding() {
        let src = [1, 2, 3, 4, 5, 6, 0, 0, 7, 8, 9, 10, 11, 12, 0, 0];
        let mut out = frame();
        rgb24_to_rgb8(&src, 2, 2, 8, &mut out).unwrap();
        assert_eq!(out.data, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        assert!(rgb24_to_rgb8(&src[..10], 2, 2, 8, &mut out).is_err());
    }

    #[test]
    fn mjpeg_fixture_matches_libjpeg_decode() {
        // fixtures/bars_64x48_422.jpg: the bars image encoded by libjpeg (Pillow,
        // quality 95, 4:2:2 like UVC cameras); fixtures/bars_64x48_422.jpg.rgb: libjpeg's own decode.
        let jpg = include_bytes!("fixtures/bars_64x48_422.jpg");
        let want = include_bytes!("fixtures/bars_64x48_422.jpg.rgb");
        let mut dec = MjpegDecoder::new();
        let mut out = frame();
        dec.decode(jpg, 64, 48, &mut out).unwrap();
        assert_eq!(out.data.len(), want.len());
        let worst = out
            .data
            .iter()
            .zip(want.iter())
            .map(|(a, b)| (*a as i32 - *b as i32).abs())
            .max()
            .unwrap();
        // Two decoders differ in IDCT rounding and chroma upsampling at the bar edges.
        assert!(worst <= 12, "max difference to libjpeg {worst}");
        let mean = out
            .data
            .iter()
            .zip(want.iter())
            .map(|(a, b)| (*a as f64 - *b as f64).abs())
            .sum::<f64>()
            / want.len() as f64;
        assert!(mean < 1.5, "mean difference to libjpeg {mean}");
    }

    /// Removes the DHT segments from a JPEG, as UVC cameras send MJPEG.
    fn strip_dht(jpg: &[u8]) -> Vec<u8> {
        let mut out = jpg[..2].to_vec();
        let mut i = 2;
        loop {
            let marker = jpg[i + 1];
            if marker == 0xDA {
                out.extend_from_slice(&jpg[i..]);
                return out;
            }
            let len = u16::from_be_bytes([jpg[i + 2], jpg[i + 3]]) as usize;
            if marker != 0xC4 {
                out.extend_from_slice(&jpg[i..i + 2 + len]);
            }
            i += 2 + len;
        }
    }

    #[test]
    fn mjpeg_without_huffman_tables_uses_the_standard_ones() {
        let jpg = include_bytes!("fixtures/bars_64x48_422.jpg");
        let bare = strip_dht(jpg);
        assert!(has_huffman_tables(jpg) && !has_huffman_tables(&bare));
        assert!(bare.len() < jpg.len());
        let mut dec = MjpegDecoder::new();
        let (mut a, mut b) = (frame(), frame());
        dec.decode(jpg, 64, 48, &mut a).unwrap();
        dec.decode(&bare, 64, 48, &mut b).unwrap();
        assert_eq!(a.data, b.data);
    }

    #[test]
    fn mjpeg_errors_name_the_problem() {
        let jpg = include_bytes!("fixtures/bars_64x48_422.jpg");
        let mut dec = MjpegDecoder::new();
        let mut out = frame();
        let e = dec.decode(jpg, 640, 480, &mut out).unwrap_err().to_string();
        assert!(e.contains("64x48") && e.contains("640x480"), "{e}");
        let e = dec
            .decode(&[0, 1, 2, 3, 4], 64, 48, &mut out)
            .unwrap_err()
            .to_string();
        assert!(e.contains("SOI"), "{e}");
        // Truncated frames (a USB transfer cut short) at every length: an error or a
        // (partly grey) frame of the right size, never a panic.
        for n in (2..jpg.len()).step_by(7) {
            if dec.decode(&jpg[..n], 64, 48, &mut out).is_ok() {
                assert_eq!(out.data.len(), 64 * 48 * 3);
            }
        }
        // A header that claims a huge image is refused before anything is allocated.
        let mut big = jpg.to_vec();
        let sof = big.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        big[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xF0, 0xFF, 0xF0]);
        assert!(dec.decode(&big, 64, 48, &mut out).is_err());
        // Garbage after a valid SOI.
        let mut junk = vec![0xFF, 0xD8];
        junk.extend((0..500u32).map(|i| (i * 7919 % 251) as u8));
        assert!(dec.decode(&junk, 64, 48, &mut out).is_err());
    }

    #[test]
    fn z16_copies_or_scales_millimetres() {
        // A captured-like 3x2 Z16 frame: 0 (hole), 1 mm, 1000 mm, 65535 mm, 250, 4000.
        let vals: [u16; 6] = [0, 1, 1000, 65535, 250, 4000];
        let src: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut out = frame();
        z16_to_depth_mm(&src, 3, 2, 6, 1.0, &mut out).unwrap();
        assert_eq!(out.format, PixelFormat::DepthZ16);
        assert_eq!(out.data, src);
        // D405-style 0.1 mm units.
        z16_to_depth_mm(&src, 3, 2, 6, 0.1, &mut out).unwrap();
        let got: Vec<u16> = (0..6).map(|i| out.u16_at(i)).collect();
        assert_eq!(got, [0, 1, 100, 6554, 25, 400]);
        // 4 mm units saturate.
        z16_to_depth_mm(&src, 3, 2, 6, 4.0, &mut out).unwrap();
        assert_eq!(out.u16_at(3), 65535);
        assert_eq!(out.u16_at(0), 0);
        let e = z16_to_depth_mm(&src[..11], 3, 2, 6, 1.0, &mut out).unwrap_err();
        assert!(e.to_string().contains("Z16 3x2"), "{e}");
        assert!(z16_to_depth_mm(&src, 3, 2, 6, 0.0, &mut out).is_err());
        assert!(z16_to_depth_mm(&src, 3, 2, 6, f32::NAN, &mut out).is_err());
        assert!(z16_to_depth_mm(&[0; 13], 3, 2, 6, 1.0, &mut out).is_err());
    }

    #[test]
    fn y16_centikelvin_to_y16_and_celsius() {
        // Lepton TLinear counts: 0 °C, 30 °C, 36.6 °C, 100 °C.
        let vals: [u16; 4] = [27315, 30315, 30975, 37315];
        let src: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut out = frame();
        let ck = ThermalCalibration::CENTIKELVIN;
        y16_to_thermal(&src, 2, 2, 4, ck, PixelFormat::ThermalY16, &mut out).unwrap();
        assert_eq!((out.format, &out.data), (PixelFormat::ThermalY16, &src));
        y16_to_thermal(&src, 2, 2, 4, ck, PixelFormat::ThermalF32, &mut out).unwrap();
        assert_eq!(out.format, PixelFormat::ThermalF32);
        let c: Vec<f32> = (0..4).map(|i| out.f32_at(i)).collect();
        for (g, w) in c.iter().zip([0.0, 30.0, 36.6, 100.0]) {
            assert!((g - w).abs() < 0.01, "{c:?}");
        }
        // Deci-kelvin (TLinear low resolution) to centi-kelvin.
        let dk = ThermalCalibration {
            kelvin_per_count: 0.1,
            kelvin_offset: 0.0,
        };
        let src_dk: Vec<u8> = [2732u16, 3100]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        y16_to_thermal(&src_dk, 2, 1, 4, dk, PixelFormat::ThermalY16, &mut out).unwrap();
        assert_eq!((out.u16_at(0), out.u16_at(1)), (27320, 31000));
        // Wrong sizes and bad calibration.
        let e =
            y16_to_thermal(&src[..7], 2, 2, 4, ck, PixelFormat::ThermalY16, &mut out).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        let bad = ThermalCalibration {
            kelvin_per_count: 0.0,
            kelvin_offset: 0.0,
        };
        assert!(y16_to_thermal(&src, 2, 2, 4, bad, PixelFormat::ThermalY16, &mut out).is_err());
        assert!(y16_to_thermal(&src, 2, 2, 4, ck, PixelFormat::Rgb8, &mut out).is_err());
    }

    #[test]
    fn downmix_averages_channels() {
        let mut out = Vec::new();
        downmix_to_mono(&[1.0, 0.0, 0.5, 0.5, -1.0, -0.5], 2, &mut out).unwrap();
        assert_eq!(out, [0.5, 0.5, -0.75]);
        downmix_to_mono(&[0.25, 0.5], 1, &mut out).unwrap();
        assert_eq!(out, [0.25, 0.5]);
        assert!(downmix_to_mono(&[0.0; 5], 2, &mut out).is_err());
        assert!(downmix_to_mono(&[0.0; 4], 0, &mut out).is_err());
    }

    #[test]
    fn scan_types_parse_and_decode() {
        let t = ScanType::parse("le:s16/16>>0\n").unwrap();
        assert_eq!(
            (t.big_endian, t.signed, t.bits, t.storage_bits, t.shift),
            (false, true, 16, 16, 0)
        );
        assert_eq!(t.decode(&[0x18, 0xFC]).unwrap(), -1000);
        assert_eq!(t.decode(&[0xE8, 0x03]).unwrap(), 1000);
        // 12 significant bits, left-justified in big-endian 16 (e.g. ADXL345-style).
        let t = ScanType::parse("be:s12/16>>4").unwrap();
        assert_eq!(t.decode(&[0x80, 0x00]).unwrap(), -2048);
        assert_eq!(t.decode(&[0x7F, 0xF5]).unwrap(), 2047);
        let t = ScanType::parse("le:u10/16>>0").unwrap();
        assert_eq!(t.decode(&[0xFF, 0xFF]).unwrap(), 1023);
        let ts = ScanType::parse("le:s64/64>>0").unwrap();
        assert_eq!(ts.decode(&(-5i64).to_le_bytes()).unwrap(), -5);
        let e = ts.decode(&[0; 4]).unwrap_err().to_string();
        assert!(e.contains("needs 8 bytes"), "{e}");
        for bad in [
            "",
            "xx:s16/16>>0",
            "le:q16/16>>0",
            "le:s16/16",
            "le:s16>>0",
            "le:s16/24>>0",
            "le:s16/16>>4",
            "le:s0/16>>0",
            "le:s16/16X2>>0",
            "le:sxx/16>>0",
        ] {
            assert!(ScanType::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scan_layout_aligns_elements_like_the_kernel() {
        let s16 = ScanType::parse("le:s16/16>>0").unwrap();
        let s64 = ScanType::parse("le:s64/64>>0").unwrap();
        // accel xyz, gyro xyz (6 x 2 bytes), then the timestamp aligned to 8.
        let l = ScanLayout::new(&[s16, s16, s16, s16, s16, s16, s64]);
        assert_eq!(l.offsets, [0, 2, 4, 6, 8, 10, 16]);
        assert_eq!(l.record_bytes, 24);
        let u8t = ScanType::parse("le:u8/8>>0").unwrap();
        let s32 = ScanType::parse("le:s32/32>>0").unwrap();
        let l = ScanLayout::new(&[u8t, s32, u8t]);
        assert_eq!((l.offsets.as_slice(), l.record_bytes), (&[0, 4, 8][..], 12));
        let cal = IioCalibration {
            scale: 0.000598,
            offset: 0.0,
        };
        assert!((cal.apply(16384) - 9.797).abs() < 1e-3);
        let cal = IioCalibration {
            scale: 0.5,
            offset: -10.0,
        };
        assert_eq!(cal.apply(12), 1.0);
    }

    /// Per-frame conversion times at 640x480 (prints medians; run in release):
    /// `cargo test -p edgebind-sensors --release --lib decode_speed -- --ignored --nocapture`
    #[test]
    #[ignore = "timing; run on demand in release"]
    fn decode_speed_640x480() {
        fn median_ms(mut f: impl FnMut()) -> f64 {
            for _ in 0..5 {
                f();
            }
            let mut t: Vec<f64> = (0..41)
                .map(|_| {
                    let s = std::time::Instant::now();
                    f();
                    s.elapsed().as_secs_f64() * 1000.0
                })
                .collect();
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        }
        let (w, h) = (640u32, 480u32);
        let yuyv: Vec<u8> = (0..w as usize * h as usize * 2)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let jpg = include_bytes!("fixtures/scene_640x480.jpg");
        let z16: Vec<u8> = (0..w as usize * h as usize * 2)
            .map(|i| (i % 256) as u8)
            .collect();
        let mut out = frame();
        let mut dec = MjpegDecoder::new();
        let bare = strip_dht(jpg);
        let y = median_ms(|| yuyv_to_rgb8(&yuyv, w, h, 1280, &mut out).unwrap());
        let m = median_ms(|| dec.decode(jpg, w, h, &mut out).unwrap());
        let mb = median_ms(|| dec.decode(&bare, w, h, &mut out).unwrap());
        let z = median_ms(|| z16_to_depth_mm(&z16, w, h, 1280, 1.0, &mut out).unwrap());
        let zs = median_ms(|| z16_to_depth_mm(&z16, w, h, 1280, 0.1, &mut out).unwrap());
        let cal = ThermalCalibration::CENTIKELVIN;
        let tf = median_ms(|| {
            y16_to_thermal(&z16, w, h, 1280, cal, PixelFormat::ThermalF32, &mut out).unwrap()
        });
        println!(
            "640x480 per frame (median of 41): YUYV->RGB8 {y:.3} ms, MJPEG ({} KB)->RGB8 {m:.3} ms, MJPEG without DHT {mb:.3} ms, Z16 copy {z:.3} ms, Z16 x0.1 {zs:.3} ms, Y16->f32 C {tf:.3} ms",
            jpg.len() / 1024
        );
    }
}
