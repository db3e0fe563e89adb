//! `edgebind preprocess`: one input file -> the tensor its encoder receives,
//! as a NumPy `.npy` file.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use edgebind_models::contract::{Contract, ContractModality, Preprocess};
use edgebind_models::preprocess::{Preprocessor, Tensor};

use super::{CmdResult, inputs, print_stdout};

/// A sensor modality on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModalityArg {
    /// WAV audio.
    Audio,
    /// PNG or JPEG image.
    Vision,
    /// 16-bit greyscale PNG, millimetres.
    Depth,
    /// 16-bit greyscale PNG, centi-kelvin.
    Thermal,
    /// CSV of IMU readings.
    Imu,
}

impl ModalityArg {
    fn contract(self) -> ContractModality {
        match self {
            ModalityArg::Audio => ContractModality::Audio,
            ModalityArg::Vision => ContractModality::Vision,
            ModalityArg::Depth => ContractModality::Depth,
            ModalityArg::Thermal => ContractModality::Thermal,
            ModalityArg::Imu => ContractModality::Imu,
        }
    }
}

/// Arguments of `preprocess`.
#[derive(Debug, Args)]
#[command(after_long_help = PREPROCESS_HELP)]
pub struct PreprocessArgs {
    /// The input's modality.
    #[arg(long, value_enum)]
    pub modality: ModalityArg,
    /// The input file (see below for each modality's format).
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write the tensor (NumPy .npy, float32, C order).
    #[arg(long)]
    pub out: PathBuf,
    /// An encoder's contract: an .onnx file carrying one (or with a sidecar
    /// NAME.contract.toml beside it), or a sidecar .toml. Default: ImageBind's.
    #[arg(long)]
    pub contract: Option<PathBuf>,
}

const PREPROCESS_HELP: &str = "\
Inputs:
  audio    WAV: 16-bit (or 8/24/32-bit) PCM or 32-bit float, any rate, any channels
           (the first channel is used, as ImageBind's Kaldi fbank does)
  vision   PNG or JPEG (8- or 16-bit, grey or colour; alpha is dropped)
  depth    16-bit greyscale PNG, millimetres (Z16; 0 = no measurement)
  thermal  16-bit greyscale PNG, radiometric counts (Y16: centi-kelvin with the
           default contract; the contract's kelvin_per_count/kelvin_offset apply)
  imu      CSV, one reading per line: t_s,ax,ay,az,gx,gy,gz (time in seconds,
           accelerometer m/s^2, gyroscope rad/s); the header line
           `t_s,ax,ay,az,gx,gy,gz` is optional; blank lines and lines starting
           with # are skipped; times must not decrease. The window starts at
           the first row and lasts the contract's length at its rate (2000
           samples at 400 Hz: 5 s); the last reading is held past the end.

Output layouts (ImageBind's data.py for one input; float32):
  audio    [clips, 1, mel, frames]   default [3, 1, 128, 204]
  vision   [3, H, W]                 default [3, 224, 224] (ImageBind's model
           repeats the frame into its 2-frame clip itself)
  depth    [1, H, W]                 default [1, 224, 224]
  thermal  [1, H, W]                 default [1, 224, 224]
  imu      [6, T]                    default [6, 2000]
With --contract the file holds that contract's own item shape (audio keeps the
clips axis): a 2-frame vision contract gives [3, 2, H, W], the still image
repeated (a clip with no motion), exactly what `edgebind embed` feeds it.

Examples:
  edgebind preprocess --modality vision --input cat.png --out cat.npy
  edgebind preprocess --modality audio --input bark.wav --out bark.npy \\
      --contract encoders/bundle/audio.onnx";

/// Reads `--contract`: a sidecar TOML (by extension), else an ONNX file whose
/// contract is read and checked against its graph exactly as the backends do
/// on load (metadata, else its own sidecar), without preparing the model.
pub fn load_contract(path: &Path) -> Result<Contract, String> {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
    {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read contract {}: {e}", path.display()))?;
        return Contract::from_sidecar_toml(&text)
            .map_err(|e| format!("contract {}: {e}", path.display()));
    }
    edgebind_models::onnx::load_checked(path)
        .map(|(_, c)| c)
        .map_err(|e| e.to_string())
}

/// The items the encoder of `contract` receives for `input` (its bytes
/// already read): one, or one per clip for audio.
pub fn items(contract: &Contract, input: &Path, bytes: &[u8]) -> Result<Vec<Tensor>, String> {
    let w = inputs::window(contract.modality, &contract.preprocess, input, bytes)?;
    let mut pre = Preprocessor::new(&contract.preprocess).map_err(|e| e.to_string())?;
    let items = pre
        .window(&w)
        .map_err(|e| format!("{}: {e}", input.display()))?;
    if items.is_empty() {
        return Err(format!("{}: preprocessing gave no input", input.display()));
    }
    Ok(items)
}

/// The items as one tensor: audio clips stacked on a leading axis
/// (`[clips, 1, mel, frames]`), any other modality its one item.
fn tensor(m: ContractModality, mut items: Vec<Tensor>) -> Result<Tensor, String> {
    if m == ContractModality::Audio {
        let mut shape = vec![items.len()];
        shape.extend_from_slice(&items[0].shape);
        let data = items.iter().flat_map(|t| t.data.iter().copied()).collect();
        return Ok(Tensor::new(shape, data));
    }
    match items.len() {
        1 => Ok(items.remove(0)),
        n => Err(format!("preprocessing gave {n} items, expected 1")),
    }
}

/// Runs `preprocess`: errors in the input, the contract or the output exit 1.
pub fn run(a: PreprocessArgs) -> CmdResult {
    match go(&a).and_then(|msg| print_stdout(&format!("{msg}\n"))) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

fn go(a: &PreprocessArgs) -> Result<String, String> {
    let m = a.modality.contract();
    let (contract, from) = match &a.contract {
        Some(p) => {
            let c = load_contract(p)?;
            if c.modality != m {
                return Err(format!(
                    "contract {} is for {}, not {}",
                    p.display(),
                    c.modality.as_str(),
                    m.as_str()
                ));
            }
            (c, p.display().to_string())
        }
        None => {
            let mut c = Contract::imagebind(m);
            // ImageBind's data.py gives one image as [3, H, W]; its model repeats it.
            if let Preprocess::Vision(p) = &mut c.preprocess {
                p.frames = 0;
            }
            (c, "ImageBind defaults".to_string())
        }
    };
    let bytes = inputs::read(&a.input)?;
    let t = tensor(m, items(&contract, &a.input, &bytes)?)?;
    write_npy(&a.out, &t.shape, &t.data)?;
    Ok(format!(
        "{}: float32 {:?} ({}, contract: {from})",
        a.out.display(),
        t.shape,
        m.as_str()
    ))
}

/// The `.npy` v1.0 bytes of a little-endian float32 C-order array.
pub fn npy_bytes(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let dims = match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    // magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
    let used = 10 + header.len() + 1;
    header.extend(std::iter::repeat_n(' ', (64 - used % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Writes a `.npy` file through a temporary file beside it and a rename, so
/// `path` is either the old file or the whole new one.
pub fn write_npy(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), String> {
    let name = path
        .file_name()
        .ok_or_else(|| format!("--out {} is not a file name", path.display()))?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let bytes = npy_bytes(shape, data);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_padded_to_64_bytes() {
        for shape in [vec![3usize, 224, 224], vec![5], vec![3, 1, 128, 204]] {
            let n: usize = shape.iter().product();
            let b = npy_bytes(&shape, &vec![1.5; n]);
            let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
            assert_eq!((10 + hlen) % 64, 0);
            assert_eq!(b.len(), 10 + hlen + 4 * n);
            assert_eq!(b[10 + hlen - 1], b'\n');
            let h = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
            assert!(h.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': ("));
            assert_eq!(&b[10 + hlen..10 + hlen + 4], &1.5f32.to_le_bytes());
        }
        let b = npy_bytes(&[5], &[0.0; 5]);
        assert!(String::from_utf8_lossy(&b).contains("'shape': (5,)"));
    }
}
