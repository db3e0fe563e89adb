//! `edgebind inspect FILE --sheet OUT.png`: a contact sheet of what the
//! imagers (camera, depth, thermal) saw, side by side, at chosen moments.
//!
//! Rows: for a recording of the simulated rig, one row per situation, in
//! [`Situation::ALL`] order, with up to `per` moments, each the middle of a
//! ground-truth span where that situation alone is active (spans spread over
//! the recording). Without ground truth, four rows of `per` moments evenly
//! spaced over the recording. Each moment is a cell: the frame of every
//! imager nearest to it (within 1 s), scaled to the cell height with nearest
//! neighbour, in camera | depth | thermal order; a modality without a frame
//! there is a dark red block.
//!
//! Renderings: the camera as recorded; depth as disparity relative to 1 m
//! (white at 1 m and nearer, 2 m half grey, 0 = no reading is black), so
//! shapes at the same distance have the same grey in every frame; thermal
//! white-hot, stretched per frame between its 1st and 99th percentile (as a
//! thermal camera's automatic gain does), so a fire clipping at 150 °C does
//! not flatten the rest.
//!
//! Why: to see what each sensor perceives of a situation (the bundle's
//! depth encoder confuses a quiet room with a door, a humming machine with
//! two people: the sheet shows the frames it was given), and to check a real
//! recording's streams at a glance.

use std::collections::BTreeMap;
use std::path::Path;

use edgebind_sensors::recording::{McapReader, RecordingError, TruthSpan, decode_sample, inspect};
use edgebind_sensors::sim::Situation;
use edgebind_sensors::{Frame, Modality, PixelFormat, Sample};
use image::imageops;
use image::{Rgb, RgbImage};

/// The imagers, in column order.
pub const IMAGERS: [Modality; 3] = [Modality::Vision, Modality::Depth, Modality::Thermal];

/// A frame farther than this from its moment is not shown (ns).
const MAX_GAP_NS: u64 = 1_000_000_000;
/// Shortest single-situation span a moment is taken from (ns).
const MIN_SPAN_NS: u64 = 1_000_000_000;
/// Rows of a recording without ground truth.
const PLAIN_ROWS: usize = 4;
const GAP: u32 = 2;
const CELL_GAP: u32 = 6;
const BG: Rgb<u8> = Rgb([40, 40, 40]);
const MISSING: Rgb<u8> = Rgb([90, 0, 0]);

/// One row of the sheet: its label and moments (monotonic ns).
#[derive(Debug, Clone, PartialEq)]
pub struct SheetRow {
    /// A situation id, or `t = a..b s` without ground truth.
    pub label: String,
    /// The moments shown, left to right.
    pub moments: Vec<u64>,
}

/// A rendered sheet.
#[derive(Debug)]
pub struct Sheet {
    /// The image.
    pub image: RgbImage,
    /// Its rows, top to bottom.
    pub rows: Vec<SheetRow>,
    /// The imagers the recording has, left to right in every cell.
    pub columns: Vec<Modality>,
    /// Cells of an imager with no frame within 1 s of their moment.
    pub missing: usize,
}

/// Chooses the rows: per situation from the ground truth, else evenly spaced.
/// `per` below 1 counts as 1.
pub fn plan_rows(truth: &[TruthSpan], start_ns: u64, end_ns: u64, per: usize) -> Vec<SheetRow> {
    let per = per.max(1);
    if truth.is_empty() {
        let n = PLAIN_ROWS * per;
        let span = end_ns.saturating_sub(start_ns);
        let at =
            |i: usize| start_ns + ((span as u128 * (2 * i as u128 + 1)) / (2 * n as u128)) as u64;
        return (0..PLAIN_ROWS)
            .map(|r| {
                let moments: Vec<u64> = (0..per).map(|c| at(r * per + c)).collect();
                SheetRow {
                    label: format!(
                        "t = {:.1}..{:.1} s",
                        moments[0] as f64 * 1e-9,
                        moments[per - 1] as f64 * 1e-9
                    ),
                    moments,
                }
            })
            .collect();
    }
    let mut by: BTreeMap<(usize, String), Vec<u64>> = BTreeMap::new();
    for s in truth {
        if s.situations.len() != 1 || s.end_ns.saturating_sub(s.start_ns) < MIN_SPAN_NS {
            continue;
        }
        let id = &s.situations[0];
        let order = Situation::from_id(id).map_or(usize::MAX, Situation::index);
        by.entry((order, id.clone()))
            .or_default()
            .push(s.start_ns + (s.end_ns - s.start_ns) / 2);
    }
    by.into_iter()
        .map(|((_, label), mids)| {
            let k = per.min(mids.len());
            // Spread over the recording: the i-th of k evenly spaced spans.
            let moments = (0..k).map(|i| mids[i * mids.len() / k]).collect();
            SheetRow { label, moments }
        })
        .collect()
}

/// Renders one frame as RGB, `None` for a frame whose size does not match its data.
pub fn render(frame: &Frame) -> Option<RgbImage> {
    frame.validate().ok()?;
    let (w, h) = (frame.width, frame.height);
    let d = &frame.data;
    let grey = |v: Vec<u8>| {
        RgbImage::from_fn(w, h, |x, y| {
            let g = v[(y * w + x) as usize];
            Rgb([g, g, g])
        })
    };
    Some(match frame.format {
        PixelFormat::Rgb8 => RgbImage::from_raw(w, h, d.clone())?,
        PixelFormat::DepthZ16 => grey(
            d.chunks_exact(2)
                .map(|b| disparity_grey(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
        ),
        PixelFormat::ThermalY16 => grey(stretch(
            &d.chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]) as f32)
                .collect::<Vec<_>>(),
        )),
        PixelFormat::ThermalF32 => grey(stretch(
            &d.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect::<Vec<_>>(),
        )),
    })
}

/// `img` scaled to `w x h`, nearest neighbour: target pixel `x` takes source
/// pixel `x * src_w / w` (the left/top edge of its footprint).
fn scale_nearest(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    let at = |i: u32, src: u32, dst: u32| (u64::from(i) * u64::from(src) / u64::from(dst)) as u32;
    RgbImage::from_fn(w, h, |x, y| {
        *img.get_pixel(at(x, img.width(), w), at(y, img.height(), h))
    })
}

/// Depth (mm) to grey: disparity relative to 1 m, 0 (no reading) black.
pub fn disparity_grey(mm: u16) -> u8 {
    if mm == 0 {
        0
    } else {
        (255_000 / u32::from(mm)).min(255) as u8
    }
}

/// White-hot grey between the 1st and 99th percentile of the finite values.
pub fn stretch(v: &[f32]) -> Vec<u8> {
    let mut s: Vec<f32> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return vec![0; v.len()];
    }
    s.sort_by(f32::total_cmp);
    let lo = s[(s.len() - 1) / 100];
    let hi = s[(s.len() - 1) * 99 / 100];
    let range = (hi - lo).max(f32::EPSILON);
    v.iter()
        .map(|&x| {
            if x.is_finite() {
                ((x - lo) / range * 255.0).round().clamp(0.0, 255.0) as u8
            } else {
                0
            }
        })
        .collect()
}

/// Reads `path` and renders its sheet; `cell_h` is the height of every frame.
pub fn contact_sheet(path: &Path, per: usize, cell_h: u32) -> Result<Sheet, String> {
    let info = inspect(path).map_err(|e| e.to_string())?;
    if let Some(e) = &info.error {
        return Err(format!("{}: {e}", path.display()));
    }
    // The imagers the recording has, as indices into IMAGERS.
    let cols: Vec<usize> = (0..IMAGERS.len())
        .filter(|&k| {
            info.channels
                .iter()
                .any(|c| c.modality.as_deref() == Some(IMAGERS[k].as_str()))
        })
        .collect();
    if cols.is_empty() {
        return Err(format!(
            "{}: no camera, depth or thermal channel (a sheet shows the imagers)",
            path.display()
        ));
    }
    let rows = plan_rows(&info.truth, info.start_ns, info.end_ns, per);
    if rows.is_empty() {
        return Err(format!(
            "{}: no ground-truth span of one situation lasts 1 s or more",
            path.display()
        ));
    }
    // The moments, sorted, with their (row, column) places.
    let mut targets: Vec<(u64, usize, usize)> = rows
        .iter()
        .enumerate()
        .flat_map(|(r, row)| row.moments.iter().enumerate().map(move |(c, &t)| (t, r, c)))
        .collect();
    targets.sort();
    // best[target][imager]: (distance, frame).
    let mut best: Vec<[Option<(u64, Frame)>; 3]> = vec![[None, None, None]; targets.len()];
    let mut r = McapReader::open(path).map_err(|e| e.to_string())?;
    let mut sample = Sample::empty(Modality::Vision);
    loop {
        let m = match r.next_message() {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(e) => return Err(e.to_string()),
        };
        let Some(k) = m
            .channel
            .modality
            .and_then(|md| IMAGERS.iter().position(|&i| i == md))
        else {
            continue;
        };
        let t = m.publish_time;
        let i = targets.partition_point(|x| x.0 < t);
        let mut decoded = false;
        for j in [i.wrapping_sub(1), i] {
            let Some(&(tt, ..)) = targets.get(j) else {
                continue;
            };
            let dist = tt.abs_diff(t);
            if dist > MAX_GAP_NS || best[j][k].as_ref().is_some_and(|b| b.0 <= dist) {
                continue;
            }
            if !decoded {
                if sample.modality != IMAGERS[k] {
                    sample = Sample::empty(IMAGERS[k]);
                }
                decode_sample(path, &m, &mut sample).map_err(|e: RecordingError| e.to_string())?;
                decoded = true;
            }
            let f = sample.frame().expect("imager samples are frames").clone();
            best[j][k] = Some((dist, f));
        }
    }
    // Cell geometry: every imager scaled to cell_h, keeping its aspect.
    let widths: Vec<u32> = cols
        .iter()
        .map(|&k| {
            best.iter()
                .find_map(|b| b[k].as_ref())
                .map_or(cell_h, |(_, f)| {
                    ((u64::from(f.width) * u64::from(cell_h)) / u64::from(f.height.max(1))).max(1)
                        as u32
                })
        })
        .collect();
    let cell_w = widths.iter().sum::<u32>() + GAP * (cols.len() as u32 - 1);
    let ncols = rows.iter().map(|r| r.moments.len()).max().unwrap_or(1) as u32;
    let w = ncols * cell_w + (ncols + 1) * CELL_GAP;
    let h = rows.len() as u32 * cell_h + (rows.len() as u32 + 1) * CELL_GAP;
    let mut image = RgbImage::from_pixel(w, h, BG);
    let mut missing = 0;
    for (j, &(_, row, col)) in targets.iter().enumerate() {
        let mut x0 = CELL_GAP + col as u32 * (cell_w + CELL_GAP);
        let y0 = CELL_GAP + row as u32 * (cell_h + CELL_GAP);
        for (&k, &cw) in cols.iter().zip(&widths) {
            let block = match best[j][k].as_ref().and_then(|(_, f)| render(f)) {
                Some(img) => scale_nearest(&img, cw, cell_h),
                None => {
                    missing += 1;
                    RgbImage::from_pixel(cw, cell_h, MISSING)
                }
            };
            imageops::replace(&mut image, &block, i64::from(x0), i64::from(y0));
            x0 += cw + GAP;
        }
    }
    let columns = cols.iter().map(|&k| IMAGERS[k]).collect();
    Ok(Sheet {
        image,
        rows,
        columns,
        missing,
    })
}

impl Sheet {
    /// The legend printed beside the image: one line per row.
    pub fn legend(&self) -> String {
        let cols: Vec<&str> = self.columns.iter().map(|m| m.as_str()).collect();
        let mut s = format!(
            "each cell: {} (depth: white = 1 m or nearer, black = no reading; thermal: white-hot, per-frame stretch)\n",
            cols.join(" | ")
        );
        for (i, r) in self.rows.iter().enumerate() {
            let ts: Vec<String> = r
                .moments
                .iter()
                .map(|t| format!("{:.1} s", *t as f64 * 1e-9))
                .collect();
            s += &format!("row {:2}  {:<16} {}\n", i + 1, r.label, ts.join("  "));
        }
        if self.missing > 0 {
            s += &format!(
                "{} frame(s) missing (no frame within 1 s of the moment): dark red\n",
                self.missing
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(a: f64, b: f64, s: &[&str]) -> TruthSpan {
        TruthSpan {
            start_ns: (a * 1e9) as u64,
            end_ns: (b * 1e9) as u64,
            situations: s.iter().map(|x| x.to_string()).collect(),
        }
    }

    #[test]
    fn rows_follow_situation_order_and_skip_mixed_and_short_spans() {
        let truth = [
            span(0.0, 4.0, &["fire"]),
            span(4.0, 10.0, &["quiet_room"]),
            span(10.0, 12.0, &["fire", "people_talking"]),
            span(12.0, 12.5, &["rain"]),
            span(12.5, 20.5, &["fire"]),
            span(20.5, 30.5, &["fire"]),
            span(30.5, 32.5, &["volcano"]),
        ];
        let rows = plan_rows(&truth, 0, 32_500_000_000, 2);
        let labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
        // quiet_room (index 0) before fire (4); an unknown id last; the mixed
        // span and the 0.5 s rain span give no row.
        assert_eq!(labels, ["quiet_room", "fire", "volcano"]);
        assert_eq!(rows[0].moments, [7_000_000_000]);
        // Two of fire's three spans, spread: the first and the second (i * 3 / 2).
        assert_eq!(rows[1].moments, [2_000_000_000, 16_500_000_000]);
        assert_eq!(rows[2].moments, [31_500_000_000]);
    }

    #[test]
    fn rows_without_truth_are_evenly_spaced() {
        let rows = plan_rows(&[], 0, 80_000_000_000, 2);
        assert_eq!(rows.len(), 4);
        let all: Vec<u64> = rows.iter().flat_map(|r| r.moments.clone()).collect();
        let want: Vec<u64> = (0..8).map(|i| (5 + 10 * i) * 1_000_000_000).collect();
        assert_eq!(all, want);
        assert_eq!(rows[0].label, "t = 5.0..15.0 s");
        // per = 0 from a library caller is one moment a row, not a panic.
        let rows = plan_rows(&[], 0, 80_000_000_000, 0);
        assert_eq!(rows.iter().map(|r| r.moments.len()).sum::<usize>(), 4);
        assert_eq!(rows[0].moments, [10_000_000_000]);
    }

    #[test]
    fn depth_is_disparity_at_one_metre_and_thermal_is_stretched() {
        assert_eq!(disparity_grey(0), 0);
        assert_eq!(disparity_grey(500), 255);
        assert_eq!(disparity_grey(1000), 255);
        assert_eq!(disparity_grey(2000), 127);
        assert_eq!(disparity_grey(5000), 51);
        // 101 values 0..=100: the 1st percentile is 1, the 99th is 99.
        let v: Vec<f32> = (0..=100).map(|x| x as f32).collect();
        let g = stretch(&v);
        assert_eq!((g[0], g[1], g[50], g[99], g[100]), (0, 0, 128, 255, 255));
        assert_eq!(stretch(&[f32::NAN, 3.0, 3.0]), vec![0, 0, 0]);
    }

    #[test]
    fn a_frame_whose_data_is_short_renders_as_missing() {
        let mut f = Frame::zeroed(4, 2, PixelFormat::DepthZ16);
        f.data[0..2].copy_from_slice(&2000u16.to_le_bytes());
        let img = render(&f).unwrap();
        assert_eq!(img.get_pixel(0, 0), &Rgb([127, 127, 127]));
        assert_eq!(img.get_pixel(1, 0), &Rgb([0, 0, 0]));
        f.data.pop();
        assert!(render(&f).is_none());
    }
}
