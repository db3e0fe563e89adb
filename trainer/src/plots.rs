//! PNG figures for training and evaluation: loss curves and the cross-modal
//! retrieval (R@1) heatmap.
//!
//! Drawing is [plotters] into an in-memory RGB buffer (`bitmap_backend`
//! only), encoded with the `png` crate: the file is always a PNG whatever its
//! name, and no `image` crate or system font is needed. Text is rendered by
//! plotters' `ab_glyph` backend with **Noto Sans Regular** embedded in the
//! binary from the `ttf-noto-sans` crate (crate MIT/Apache-2.0; the font file
//! ships under the Apache License 2.0), registered once for the families
//! plotters asks for. So figures look the same on a bare CI machine.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow, bail, ensure};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, register_font};

/// Pixel size of [`loss_curves`] figures.
pub const LOSS_SIZE: (u32, u32) = (960, 600);
/// Pixel size of [`heatmap`] figures.
pub const HEATMAP_SIZE: (u32, u32) = (820, 720);

const FONT: &str = "sans-serif";

const SERIES_COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Registers the embedded font under the families plotters uses; once.
fn font() -> Result<()> {
    static OK: OnceLock<bool> = OnceLock::new();
    let ok = *OK.get_or_init(|| {
        ["sans-serif", "serif", "monospace"]
            .iter()
            .all(|family| register_font(family, FontStyle::Normal, ttf_noto_sans::REGULAR).is_ok())
    });
    ensure!(ok, "the embedded Noto Sans font failed to load");
    Ok(())
}

/// Encodes an RGB buffer as PNG and writes it to `path`.
fn write_png(path: &Path, (w, h): (u32, u32), rgb: &[u8]) -> Result<()> {
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header()?;
        writer.write_image_data(rgb)?;
        writer.finish()?;
    }
    std::fs::write(path, &bytes).with_context(|| format!("writing {}", path.display()))
}

/// Plotters' drawing errors carry a backend type parameter; flatten to text.
fn draw_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing: {e}")
}

/// Loss curves, x = step and y = loss, one line per named series with a
/// legend. Non-finite points are left out; an error when nothing finite is
/// left or the file cannot be written (the error names the path).
pub fn loss_curves(path: &Path, title: &str, series: &[(String, Vec<(f64, f64)>)]) -> Result<()> {
    render_loss_curves(path, title, series)
        .with_context(|| format!("loss curves {}", path.display()))
}

fn render_loss_curves(
    path: &Path,
    title: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<()> {
    font()?;
    let finite: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(name, pts)| {
            let pts = pts
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            (name.as_str(), pts)
        })
        .collect();
    let all = || finite.iter().flat_map(|(_, p)| p.iter());
    if all().next().is_none() {
        bail!("no finite points to plot");
    }
    let (mut x0, mut x1) = bounds(all().map(|p| p.0));
    let (mut y0, mut y1) = bounds(all().map(|p| p.1));
    if x1 <= x0 {
        (x0, x1) = (x0 - 1.0, x1 + 1.0);
    }
    let pad = if y1 > y0 {
        (y1 - y0) * 0.05
    } else {
        y0.abs().max(1.0) * 0.1
    };
    (y0, y1) = (y0 - pad, y1 + pad);

    let size = LOSS_SIZE;
    let mut buf = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 26))
            .margin(18)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .x_label_formatter(&|x| {
                if x1 - x0 >= 10.0 {
                    format!("{x:.0}")
                } else {
                    format!("{x:.2}")
                }
            })
            .y_desc("loss")
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 18))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(draw_err)?;
        for (i, (name, pts)) in finite.iter().enumerate() {
            if pts.is_empty() {
                continue;
            }
            let colour = SERIES_COLOURS[i % SERIES_COLOURS.len()];
            let style = ShapeStyle::from(colour).stroke_width(2);
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), style))
                .map_err(draw_err)?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FONT, 16))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    write_png(path, size, &buf)
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    })
}

/// Colour of a value on the 0..1 scale: a viridis-like ramp (dark blue ->
/// teal -> yellow), clamped.
fn ramp(v: f64) -> RGBColor {
    const STOPS: [(f64, [f64; 3]); 5] = [
        (0.00, [68.0, 1.0, 84.0]),
        (0.25, [59.0, 82.0, 139.0]),
        (0.50, [33.0, 145.0, 140.0]),
        (0.75, [94.0, 201.0, 98.0]),
        (1.00, [253.0, 231.0, 37.0]),
    ];
    let v = v.clamp(0.0, 1.0);
    let k = STOPS
        .windows(2)
        .position(|w| v <= w[1].0)
        .unwrap_or(STOPS.len() - 2);
    let ((a, ca), (b, cb)) = (STOPS[k], STOPS[k + 1]);
    let t = (v - a) / (b - a);
    let c = |i: usize| (ca[i] + (cb[i] - ca[i]) * t).round() as u8;
    RGBColor(c(0), c(1), c(2))
}

fn text_colour(c: RGBColor) -> RGBColor {
    let lum = 0.299 * f64::from(c.0) + 0.587 * f64::from(c.1) + 0.114 * f64::from(c.2);
    if lum > 140.0 { BLACK } else { WHITE }
}

const NO_VALUE: RGBColor = RGBColor(200, 200, 200);

/// Retrieval heatmap: rows = query modality, columns = gallery modality,
/// each cell coloured on a 0..1 scale with its value to 2 decimals;
/// non-finite cells (the diagonal) are grey and blank. `matrix` must be
/// `labels.len()` square and non-empty; an error names the path.
pub fn heatmap(path: &Path, title: &str, labels: &[String], matrix: &[Vec<f64>]) -> Result<()> {
    render_heatmap(path, title, labels, matrix)
        .with_context(|| format!("heatmap {}", path.display()))
}

fn render_heatmap(path: &Path, title: &str, labels: &[String], matrix: &[Vec<f64>]) -> Result<()> {
    let n = labels.len();
    ensure!(n > 0, "no labels");
    ensure!(
        matrix.len() == n && matrix.iter().all(|r| r.len() == n),
        "matrix must be {n} x {n} (one row and column per label)"
    );
    font()?;
    let size = HEATMAP_SIZE;
    let (w, h) = (size.0 as i32, size.1 as i32);
    // Layout: title on top, column labels under it, row labels on the left,
    // colour bar on the right.
    let (left, top, right, bottom) = (150, 120, 130, 40);
    let cell = ((w - left - right) / n as i32)
        .min((h - top - bottom) / n as i32)
        .max(1);
    let grid = cell * n as i32;
    let (gx, gy) = (left, top);

    let mut buf = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let centred = Pos::new(HPos::Center, VPos::Center);
        let text = |s: &str, at: (i32, i32), px: i32, colour: RGBColor, pos: Pos| {
            root.draw(&Text::new(
                s.to_string(),
                at,
                (FONT, px).into_font().color(&colour).pos(pos),
            ))
            .map_err(draw_err)
        };
        text(title, (w / 2, 28), 26, BLACK, centred)?;
        text("gallery", (gx + grid / 2, 64), 17, BLACK, centred)?;
        text("query", (28, gy + grid / 2), 17, BLACK, centred)?;
        let label_px = (cell / 5).clamp(10, 17);
        for (j, name) in labels.iter().enumerate() {
            let cx = gx + cell * j as i32 + cell / 2;
            text(name, (cx, top - 22), label_px, BLACK, centred)?;
            let cy = gy + cell * j as i32 + cell / 2;
            text(
                name,
                (left - 10, cy),
                label_px,
                BLACK,
                Pos::new(HPos::Right, VPos::Center),
            )?;
        }
        let value_px = (cell / 4).clamp(9, 24);
        for (i, row) in matrix.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                let (x0, y0) = (gx + cell * j as i32, gy + cell * i as i32);
                let fill = if v.is_finite() { ramp(v) } else { NO_VALUE };
                root.draw(&Rectangle::new(
                    [(x0, y0), (x0 + cell, y0 + cell)],
                    fill.filled(),
                ))
                .map_err(draw_err)?;
                root.draw(&Rectangle::new(
                    [(x0, y0), (x0 + cell, y0 + cell)],
                    WHITE.stroke_width(1),
                ))
                .map_err(draw_err)?;
                if v.is_finite() {
                    let at = (x0 + cell / 2, y0 + cell / 2);
                    text(&format!("{v:.2}"), at, value_px, text_colour(fill), centred)?;
                }
            }
        }
        // Colour bar 0..1, top = 1.
        let (bx, bw) = (gx + grid + 40, 22);
        for py in 0..grid {
            let v = 1.0 - f64::from(py) / f64::from((grid - 1).max(1));
            root.draw(&Rectangle::new(
                [(bx, gy + py), (bx + bw, gy + py + 1)],
                ramp(v).filled(),
            ))
            .map_err(draw_err)?;
        }
        root.draw(&Rectangle::new(
            [(bx, gy), (bx + bw, gy + grid)],
            BLACK.stroke_width(1),
        ))
        .map_err(draw_err)?;
        for (v, label) in [(1.0, "1.0"), (0.5, "0.5"), (0.0, "0.0")] {
            let y = gy + ((1.0 - v) * f64::from(grid - 1)).round() as i32;
            root.draw(&PathElement::new(
                vec![(bx + bw, y), (bx + bw + 5, y)],
                BLACK,
            ))
            .map_err(draw_err)?;
            text(
                label,
                (bx + bw + 9, y),
                14,
                BLACK,
                Pos::new(HPos::Left, VPos::Center),
            )?;
        }
        root.present().map_err(draw_err)?;
    }
    write_png(path, size, &buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn temp(name: &str) -> PathBuf {
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let k = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "edgebind-plots-{}-{}-{k}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    /// Decodes the PNG and returns its size and RGB pixels.
    fn decode(path: &Path) -> ((u32, u32), Vec<u8>) {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut pixels).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        pixels.truncate(info.buffer_size());
        ((info.width, info.height), pixels)
    }

    fn distinct_colours(pixels: &[u8]) -> usize {
        let mut c: Vec<&[u8]> = pixels.chunks_exact(3).collect();
        c.sort_unstable();
        c.dedup();
        c.len()
    }

    fn pixel(pixels: &[u8], width: u32, (x, y): (i32, i32)) -> [u8; 3] {
        let i = (y as usize * width as usize + x as usize) * 3;
        [pixels[i], pixels[i + 1], pixels[i + 2]]
    }

    #[test]
    fn loss_curves_write_a_png() {
        let path = temp("loss.png");
        let train: Vec<(f64, f64)> = (0..200)
            .map(|s| (s as f64, 4.0 * (-(s as f64) / 60.0).exp() + 0.3))
            .collect();
        let val: Vec<(f64, f64)> = (0..200)
            .step_by(25)
            .map(|s| (s as f64, 4.2 * (-(s as f64) / 70.0).exp() + 0.4))
            .collect();
        loss_curves(
            &path,
            "audio -> vision: InfoNCE",
            &[("train loss".into(), train), ("val loss".into(), val)],
        )
        .unwrap();
        let (size, px) = decode(&path);
        assert_eq!(size, LOSS_SIZE);
        // Lines, text and legend: far more than background + one colour.
        assert!(distinct_colours(&px) > 20);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn loss_curves_skip_nan_and_survive_degenerate_input() {
        let path = temp("loss-nan.png");
        let pts = vec![
            (0.0, 1.0),
            (1.0, f64::NAN),
            (2.0, 0.5),
            (f64::INFINITY, 0.1),
        ];
        loss_curves(
            &path,
            "nan",
            &[("train".into(), pts), ("empty".into(), vec![])],
        )
        .unwrap();
        assert_eq!(decode(&path).0, LOSS_SIZE);
        // A single point (zero ranges) still draws.
        loss_curves(&path, "one", &[("train".into(), vec![(5.0, 2.0)])]).unwrap();
        assert_eq!(decode(&path).0, LOSS_SIZE);
        // Nothing finite: an error, no panic.
        let e = loss_curves(&path, "none", &[("t".into(), vec![(f64::NAN, 1.0)])]).unwrap_err();
        assert!(format!("{e:#}").contains("no finite points"), "{e:#}");
        assert!(loss_curves(&path, "none", &[]).is_err());
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn heatmap_writes_a_png_with_grey_diagonal() {
        let path = temp("r1.png");
        let labels: Vec<String> = ["audio", "depth", "imu", "thermal", "vision"]
            .map(String::from)
            .into();
        let matrix: Vec<Vec<f64>> = (0..5)
            .map(|i| {
                (0..5)
                    .map(|j| {
                        if i == j {
                            f64::NAN
                        } else {
                            (i * 5 + j) as f64 / 25.0
                        }
                    })
                    .collect()
            })
            .collect();
        heatmap(&path, "retrieval R@1", &labels, &matrix).unwrap();
        let (size, px) = decode(&path);
        assert_eq!(size, HEATMAP_SIZE);
        assert!(distinct_colours(&px) > 20);
        // Cell geometry as drawn: a diagonal cell's corner area is grey, an
        // off-diagonal one has the ramp colour of its value.
        let (w, h) = (HEATMAP_SIZE.0 as i32, HEATMAP_SIZE.1 as i32);
        let cell = ((w - 150 - 130) / 5).min((h - 120 - 40) / 5);
        let at = |i: i32, j: i32| (150 + cell * j + 4, 120 + cell * i + 4);
        assert_eq!(pixel(&px, size.0, at(2, 2)), [200, 200, 200]);
        let c = ramp(matrix[0][4]);
        assert_eq!(pixel(&px, size.0, at(0, 4)), [c.0, c.1, c.2]);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn heatmap_rejects_bad_shapes_and_survives_odd_values() {
        let path = temp("bad.png");
        let l: Vec<String> = vec!["a".into(), "b".into()];
        assert!(heatmap(&path, "t", &l, &[vec![0.5, 0.5]]).is_err());
        assert!(heatmap(&path, "t", &l, &[vec![0.5], vec![0.5]]).is_err());
        assert!(heatmap(&path, "t", &[], &[]).is_err());
        // All NaN, out of range, infinite: drawn (grey or clamped), no panic.
        let m = vec![vec![f64::NAN, 7.0], vec![-1.0, f64::INFINITY]];
        heatmap(&path, "t", &l, &m).unwrap();
        assert_eq!(decode(&path).0, HEATMAP_SIZE);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn bad_path_is_named_in_the_error() {
        let path = temp("x.png")
            .parent()
            .unwrap()
            .join("missing-dir")
            .join("fig.png");
        let e = loss_curves(&path, "t", &[("a".into(), vec![(0.0, 1.0), (1.0, 0.5)])]).unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        let l: Vec<String> = vec!["a".into(), "b".into()];
        let e = heatmap(&path, "t", &l, &[vec![f64::NAN, 0.5], vec![0.5, f64::NAN]]).unwrap_err();
        assert!(format!("{e:#}").contains("missing-dir"), "{e:#}");
        let _ = std::fs::remove_dir_all(path.parent().unwrap().parent().unwrap());
    }

    #[test]
    fn ramp_ends_and_clamps() {
        assert_eq!(ramp(0.0), RGBColor(68, 1, 84));
        assert_eq!(ramp(1.0), RGBColor(253, 231, 37));
        assert_eq!(ramp(-3.0), ramp(0.0));
        assert_eq!(ramp(9.0), ramp(1.0));
        assert_eq!(ramp(0.5), RGBColor(33, 145, 140));
    }
}
