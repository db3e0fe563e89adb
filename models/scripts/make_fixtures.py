#!/usr/bin/env python3
"""Generate the preprocessing parity fixtures for the Rust crate `models/`.

What it generates
-----------------
Everything under ``models/fixtures/`` except ``README.md``:

* ``manifest.json``  - one JSON file describing every case (schema in
  ``models/fixtures/README.md``).
* ``fbank/*.f32``    - kaldi fbank cases, computed exactly the way ImageBind's
  ``waveform2melspec`` calls ``torchaudio.compliance.kaldi.fbank``
  (128 mel bins, 25 ms / 10 ms, hanning, htk_compat, no energy, dither 0,
  waveform mean subtracted first), in float32 (``*.out.f32``) and on the same
  samples widened to float64 (``*.out64.f32``, the reference of record).
* ``audio/*.f32``    - ImageBind's whole audio path: resample to 16 kHz
  (``torchaudio.functional.resample``, default arguments), the
  ConstantClipsPerVideoSampler(clip_duration=2, clips_per_video=3) clip
  placement, per-clip fbank, pad/crop to 204 frames, Normalize(-4.268, 9.138).
* ``vision/*``       - ImageBind's image transform: torchvision
  Resize(224, BICUBIC) on a PIL image, CenterCrop(224), ToTensor,
  Normalize(CLIP mean/std); plus PIL's resize output alone.

All arrays are raw little-endian float32 (``*.f32``, C order, no header) or
raw interleaved RGB bytes (``*.rgb8``, row-major).

The references are the real libraries (torch, torchvision, Pillow and two
source files of torchaudio); only the signal generators and the clip sampler
arithmetic (a dozen lines of Fraction maths, re-derived from pytorchvideo's
documented behaviour) are written here.

Setting up the environment (exact versions used to generate the committed files)
-------------------------------------------------------------------------------
    python3.11 -m venv /work/pyref
    /work/pyref/bin/pip install -r models/scripts/requirements-fixtures.txt
    # torchaudio's PyPI wheels lag torch: torchaudio 2.11.0 refuses to import
    # next to torch 2.15.0 (CUDA-version check in its C extension). Only two
    # pure-Python files are needed (compliance/kaldi.py and functional/
    # functional.py + filtering.py), so the wheel is downloaded, never
    # installed, and those files are loaded by path at run time:
    mkdir -p /work/pyref/torchaudio-wheel
    /work/pyref/bin/pip download --no-deps torchaudio==2.11.0 -d /work/pyref/torchaudio-wheel

The wheel is looked up at ``--torchaudio-wheel``, else ``$EDGEBIND_TORCHAUDIO_WHEEL``,
else ``<venv prefix>/torchaudio-wheel/torchaudio-2.11.0-*.whl``. Nothing from
torchaudio is ever written into the repository. The sha256 of the loaded
``kaldi.py`` / ``functional.py`` is recorded in the manifest.

Rerunning
---------
    /work/pyref/bin/python models/scripts/make_fixtures.py          # rewrite fixtures
    /work/pyref/bin/python models/scripts/make_fixtures.py --check  # regenerate into a
                                                                    # temp dir, compare bytes

The script is deterministic: every random signal comes from a seeded numpy
PCG64 generator, torch runs single-threaded, and the manifest holds no
timestamps. Two runs on the same machine give byte-identical files (verified
with sha256 when the committed fixtures were made). Across different CPUs
(FFT/convolution kernels picked by CPU features) the f32 outputs may differ in
the last bits; the Rust tests compare with tolerances anyway.

The script only touches ``fbank/``, ``audio/``, ``vision/`` and
``manifest.json`` inside the output directory.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import PIL
import scipy
import scipy.signal
import skimage
import skimage.data
import torch
import torchvision
from PIL import Image
from torchvision import transforms

from torchaudio_ref import TORCHAUDIO_VERSION, find_wheel, load_torchaudio_reference

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "models" / "fixtures"
GENERATOR = "models/scripts/make_fixtures.py"
SEED = 20240611

# ImageBind's constants (imagebind/data.py).
SR = 16000
NUM_MEL_BINS = 128
TARGET_LENGTH = 204
AUDIO_MEAN = -4.268
AUDIO_STD = 9.138
CLIP_DURATION = 2
CLIPS_PER_VIDEO = 3
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGE_SIZE = 224

FBANK_KWARGS = dict(
    htk_compat=True,
    use_energy=False,
    window_type="hanning",
    num_mel_bins=NUM_MEL_BINS,
    dither=0.0,
    frame_length=25,
    frame_shift=10,
)

FBANK_REFERENCES = (
    "Two references per case, both torchaudio.compliance.kaldi.fbank on the same "
    "mean-subtracted float32 samples: `output` evaluates it in float32 (what ImageBind "
    "runs), `output_f64` on the samples widened to float64 (stored rounded to float32). "
    "They differ only where FFT rounding noise decides the log: cells within a few nats "
    "of the FLT_EPSILON floor or far below their frame's peak "
    "(f32_vs_f64_reference_max_abs). output_f64 is the reference of record for the "
    "Rust fbank, which computes in float64 too."
)

FBANK_PARAMS = {
    "num_mel_bins": NUM_MEL_BINS,
    "frame_length_ms": 25,
    "frame_shift_ms": 10,
    "window_type": "hanning",
    "htk_compat": True,
    "use_energy": False,
    "dither": 0.0,
    "subtract_mean_waveform": True,
    "notes": (
        "Input files hold the waveform BEFORE mean subtraction; the reference "
        "computes fbank(w - mean(w)) with the f32 mean recorded as "
        "waveform_mean_f32. Remaining kaldi defaults: sample_frequency 16000, "
        "preemphasis_coefficient 0.97, remove_dc_offset true (per frame, before "
        "pre-emphasis), round_to_power_of_two true (400-sample frame zero-padded "
        "to a 512-point FFT), snip_edges true (frames = 1 + (N - 400) // 160), "
        "low_freq 20, high_freq 0 (= Nyquist 8000), vtln_warp 1.0, use_power true, "
        "use_log_fbank true, window = torch.hann_window(400, periodic=False), "
        "log floor = max(mel_energy, FLT_EPSILON = 1.1920929e-07), so "
        "log floor = -15.942385. All arithmetic in float32 "
        "(mel banks included)."
    ),
}


# --------------------------------------------------------------------------
# Loading torchaudio's reference code by file path
# --------------------------------------------------------------------------

# --------------------------------------------------------------------------
# Signal generators (float64 maths, returned as float32)
# --------------------------------------------------------------------------

def _resonator(x: np.ndarray, freq: float, bw: float, sr: int) -> np.ndarray:
    """Two-pole resonator at `freq` Hz with bandwidth `bw` Hz, unity gain at DC."""
    r = math.exp(-math.pi * bw / sr)
    theta = 2.0 * math.pi * freq / sr
    a = [1.0, -2.0 * r * math.cos(theta), r * r]
    return scipy.signal.lfilter([sum(a)], a, x)


VOWELS = {  # first three formants (Hz), rough adult male values
    "a": (730.0, 1090.0, 2440.0),
    "i": (270.0, 2290.0, 3010.0),
    "u": (300.0, 870.0, 2240.0),
    "e": (530.0, 1840.0, 2480.0),
    "o": (570.0, 840.0, 2410.0),
}


def speech_like(rng: np.random.Generator, seconds: float, sr: int, peak: float = 0.6) -> np.ndarray:
    """Band-limited glottal sawtooth with a wandering f0, vowel formant
    filtering per syllable, raised-cosine syllable envelopes with pauses,
    and a little aspiration noise."""
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    f0 = 120.0 + 25.0 * np.sin(2 * np.pi * 0.7 * t) + 10.0 * np.sin(2 * np.pi * 2.3 * t + 1.0)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    n_harm = int(0.45 * sr / f0.max())
    source = np.zeros(n)
    for k in range(1, n_harm + 1):
        source += np.sin(k * phase) / k
    source += 0.02 * rng.standard_normal(n)

    out = np.zeros(n)
    pos = int(0.05 * sr)
    names = sorted(VOWELS)
    while pos < n:
        dur = int(rng.uniform(0.15, 0.32) * sr)
        gap = int(rng.uniform(0.03, 0.14) * sr)
        end = min(pos + dur, n)
        seg = source[pos:end]
        formants = VOWELS[names[int(rng.integers(len(names)))]]
        y = seg
        for f, bw in zip(formants, (80.0, 100.0, 130.0)):
            y = _resonator(y, f, bw, sr)
        env = np.sin(np.pi * np.arange(end - pos) / max(end - pos - 1, 1)) ** 2
        out[pos:end] += y * env
        pos = end + gap
    out *= peak / np.max(np.abs(out))
    return out.astype(np.float32)


def pink_noise(rng: np.random.Generator, n: int, rms: float) -> np.ndarray:
    """1/f power spectrum noise by shaping white noise in the frequency domain."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    spec /= np.sqrt(f)
    spec[0] = 0.0
    x = np.fft.irfft(spec, n)
    return x * (rms / np.sqrt(np.mean(x * x)))


def tones_and_chirp(seconds: float, sr: int) -> np.ndarray:
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    x = 0.2 * np.sin(2 * np.pi * 250.0 * t) + 0.15 * np.sin(2 * np.pi * 1000.0 * t + 0.3)
    x += 0.1 * np.sin(2 * np.pi * 3000.0 * t + 1.1)
    # exponential chirp 50 Hz -> 7800 Hz over the whole signal
    f_start, f_end = 50.0, 7800.0
    k = math.log(f_end / f_start) / seconds
    x += 0.25 * np.sin(2 * np.pi * f_start * (np.exp(k * t) - 1.0) / k)
    return x.astype(np.float32)


# --------------------------------------------------------------------------
# ImageBind pipeline pieces
# --------------------------------------------------------------------------

def waveform2melspec_reference(kaldi, clip: torch.Tensor) -> tuple[torch.Tensor, float, int]:
    """ImageBind's waveform2melspec. Mutates `clip` in place (ImageBind does
    `waveform -= waveform.mean()` on a view of the shared waveform)."""
    mean = clip.mean()
    clip -= mean
    fb = kaldi.fbank(clip, sample_frequency=SR, **FBANK_KWARGS)
    fb = fb.transpose(0, 1)
    n_frames = fb.size(1)
    p = TARGET_LENGTH - n_frames
    if p > 0:
        fb = torch.nn.functional.pad(fb, (0, p), mode="constant", value=0)
    elif p < 0:
        fb = fb[:, 0:TARGET_LENGTH]
    return fb.unsqueeze(0), float(mean), n_frames


def constant_clips_per_video(duration: float, clip_duration: int = CLIP_DURATION,
                             clips_per_video: int = CLIPS_PER_VIDEO) -> list[tuple[Fraction, Fraction]]:
    """Clip placement of pytorchvideo's ConstantClipsPerVideoSampler as driven
    by ImageBind's get_clip_timepoints (one augmentation per clip).

    max_start = Fraction(max(duration - clip_duration, 0))  (float subtraction,
    then the exact binary value of that float), step = max_start / clips,
    clip i = [i * step, i * step + clip_duration] for i = 0, 1, ... while
    i < clips and i * step <= max_start. The last clip therefore ends at
    max_start * (clips - 1) / clips + clip_duration, not at the end of the audio.
    """
    max_start = Fraction(max(duration - clip_duration, 0))
    step = Fraction(max_start, clips_per_video)
    clips = []
    index = 0
    while True:
        start = step * index
        clips.append((start, start + clip_duration))
        index += 1
        if index >= clips_per_video or step * index > max_start:
            break
    return clips


def audio_pipeline_reference(kaldi, resample, waveform: np.ndarray, sr: int):
    """ImageBind's load_and_transform_audio_data for one file, from a float
    waveform instead of torchaudio.load."""
    w = torch.from_numpy(waveform.copy()).unsqueeze(0)  # [1, N], like torchaudio.load
    if sr != SR:
        w = resample(w, orig_freq=sr, new_freq=SR)
    resampled = w.clone()
    clips = constant_clips_per_video(w.size(1) / SR)
    normalize = transforms.Normalize(mean=AUDIO_MEAN, std=AUDIO_STD)
    outs, ranges, means, frames = [], [], [], []
    for start, end in clips:
        a, b = int(start * SR), int(end * SR)
        view = w[:, a:b]  # a view: the in-place mean subtraction reaches `w`
        mel, mean, n_frames = waveform2melspec_reference(kaldi, view)
        outs.append(normalize(mel))
        ranges.append([a, min(b, w.size(1))])
        means.append(mean)
        frames.append(n_frames)
    out = torch.stack(outs, dim=0)

    # Same pipeline with a fresh copy per clip, only to report how much the
    # in-place mutation matters (not stored).
    w2 = resampled.clone()
    alt = []
    for start, end in clips:
        view = w2[:, int(start * SR):int(end * SR)].clone()
        mel, _, _ = waveform2melspec_reference(kaldi, view)
        alt.append(normalize(mel))
    inplace_effect = float((torch.stack(alt, 0) - out).abs().max())
    return resampled[0].numpy(), clips, ranges, means, frames, out.numpy(), inplace_effect


def vision_reference(rgb: np.ndarray):
    img = Image.fromarray(rgb)
    assert img.mode == "RGB"
    resize = transforms.Resize(IMAGE_SIZE, interpolation=transforms.InterpolationMode.BICUBIC)
    resized = resize(img)
    full = transforms.Compose([
        resize,
        transforms.CenterCrop(IMAGE_SIZE),
        transforms.ToTensor(),
        transforms.Normalize(mean=CLIP_MEAN, std=CLIP_STD),
    ])
    out = full(img)
    w, h = resized.size
    crop_top = int(round((h - IMAGE_SIZE) / 2.0))
    crop_left = int(round((w - IMAGE_SIZE) / 2.0))
    return np.asarray(resized, dtype=np.uint8), out.numpy(), crop_top, crop_left


def synthetic_small_image() -> np.ndarray:
    """97x61 gradient image with hard edges: R ramps left->right, G ramps
    top->bottom, B is an 8-px checkerboard (0/255), plus a one-pixel white
    vertical line, a black 1-px horizontal line and a hard diagonal edge."""
    h, w = 61, 97
    y, x = np.mgrid[0:h, 0:w]
    r = np.round(x * 255.0 / (w - 1))
    g = np.round(y * 255.0 / (h - 1))
    b = np.where(((x // 8) + (y // 8)) % 2 == 0, 0.0, 255.0)
    img = np.stack([r, g, b], axis=-1)
    img[x > y + 40] = (250.0, 30.0, 90.0)
    img[:, 48] = 255.0
    img[30, :] = 0.0
    return img.astype(np.uint8)


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------

def write_f32(out_dir: Path, rel: str, arr) -> None:
    a = np.ascontiguousarray(np.asarray(arr, dtype="<f4"))
    (out_dir / rel).write_bytes(a.tobytes(order="C"))


def write_u8(out_dir: Path, rel: str, arr) -> None:
    a = np.ascontiguousarray(np.asarray(arr, dtype=np.uint8))
    (out_dir / rel).write_bytes(a.tobytes(order="C"))


def generate(out_dir: Path, wheel: Path) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    for sub in ("fbank", "audio", "vision"):
        shutil.rmtree(out_dir / sub, ignore_errors=True)
        (out_dir / sub).mkdir(parents=True)

    with tempfile.TemporaryDirectory(prefix="edgebind-ta-") as td:
        kaldi, resample, ta_hashes = load_torchaudio_reference(wheel, Path(td))

        rng = np.random.default_rng(SEED)
        manifest = {
            "generator": GENERATOR,
            "format": {
                "f32": "raw little-endian float32, C order, no header",
                "rgb8": "raw interleaved RGB bytes, row-major, width*height*3",
            },
            "versions": {
                "python": sys.version.split()[0],
                "torch": torch.__version__,
                "torchaudio_kaldi_from": (
                    f"torchaudio {TORCHAUDIO_VERSION} wheel {wheel.name}: "
                    "compliance/kaldi.py and functional/functional.py loaded by path"
                ),
                "torchaudio_sources_sha256": ta_hashes,
                "pillow": PIL.__version__,
                "torchvision": torchvision.__version__,
                "numpy": np.__version__,
                "scipy": scipy.__version__,
                "scikit_image": skimage.__version__,
            },
            "seed": SEED,
            "fbank_references": FBANK_REFERENCES,
            "fbank": [],
            "audio_pipeline": [],
            "vision": [],
        }

        # ---------------- fbank ----------------
        def fbank_case(name, description, x):
            x = np.asarray(x, dtype=np.float32)
            w = torch.from_numpy(x.copy()).unsqueeze(0)
            mean = w.mean()
            w -= mean
            fb = kaldi.fbank(w, sample_frequency=SR, **FBANK_KWARGS)
            # The reference of record: the same function on the same (mean-subtracted,
            # float32) samples widened to float64, so that FFT rounding does not decide
            # the near-floor cells (see FBANK_REFERENCES).
            fb64 = kaldi.fbank(w.double(), sample_frequency=SR, **FBANK_KWARGS)
            gap = (fb.double() - fb64).abs()
            write_f32(out_dir, f"fbank/{name}.in.f32", x)
            write_f32(out_dir, f"fbank/{name}.out.f32", fb.numpy())
            write_f32(out_dir, f"fbank/{name}.out64.f32", fb64.numpy())
            manifest["fbank"].append({
                "name": name,
                "description": description,
                "input": f"fbank/{name}.in.f32",
                "input_len": int(x.size),
                "sample_rate": SR,
                "waveform_mean_f32": float(mean),
                "params": FBANK_PARAMS,
                "output": f"fbank/{name}.out.f32",
                "output_f64": f"fbank/{name}.out64.f32",
                "output_shape": list(fb.shape),
                "output_min": float(fb.min()),
                "output_max": float(fb.max()),
                "f32_vs_f64_reference_max_abs": float(gap.max()),
                "f32_vs_f64_reference_mean_abs": float(gap.mean()),
            })

        fbank_case("speech_like", "2.5 s speech-like: band-limited sawtooth source (f0 95-155 Hz), "
                   "vowel formant resonators per syllable, raised-cosine syllable envelopes with pauses "
                   "(the pauses between syllables are exact zeros, so their frames sit on the log floor), peak 0.6",
                   speech_like(rng, 2.5, SR))
        fbank_case("tones_chirp", "2.0 s: 250/1000/3000 Hz tones plus an exponential chirp 50 Hz -> 7.8 kHz",
                   tones_and_chirp(2.0, SR))
        n = int(2.2 * SR)
        noise = np.concatenate([
            0.1 * rng.standard_normal(n // 2),
            pink_noise(rng, n - n // 2, 0.1),
        ])
        fbank_case("noise_white_pink", "2.2 s: first half white Gaussian noise (rms 0.1), second half pink "
                   "(1/f) noise (rms 0.1); the frame spanning the join sees both",
                   noise)
        fbank_case("silence", "2.0 s of exact zeros: every mel energy is 0, clamped to FLT_EPSILON, so every "
                   "output value is log(1.1920929e-07) = -15.942385",
                   np.zeros(2 * SR, dtype=np.float32))
        t = np.arange(int(2.3 * SR)) / SR
        fbank_case("clipped_sine", "2.3 s: 300 Hz sine of amplitude 3 plus DC 0.4, hard-clipped to [-1, 1] "
                   "(asymmetric, so the waveform mean is non-zero and the mean subtraction matters)",
                   np.clip(3.0 * np.sin(2 * np.pi * 300.0 * t) + 0.4, -1.0, 1.0))
        imp = np.zeros(2 * SR)
        imp[np.arange(800, 2 * SR, 2400)] = 0.9
        imp[np.arange(2000, 2 * SR, 4800)] = -0.7
        fbank_case("impulse_train", "2.0 s: sparse impulses (+0.9 every 150 ms from sample 800, -0.7 every "
                   "300 ms from sample 2000), zeros elsewhere; frames holding no impulse are constant after "
                   "mean subtraction, become exactly zero after per-frame DC removal and hit the log floor",
                   imp)
        fbank_case("near_silence", "2.0 s white noise of rms 1e-5 (about -100 dBFS): per-bin mel energies "
                   "straddle FLT_EPSILON, so some values are clamped to the floor and some are not",
                   1e-5 * rng.standard_normal(2 * SR))

        # A 44.1 kHz recording resampled to 16 kHz (torchaudio's resampler, float32, as
        # ImageBind does) is the fbank's input here. Its own generator keeps the random
        # streams of the other cases unchanged.
        rng441 = np.random.default_rng(SEED + 441)
        n = int(2.5 * 44100)
        t = np.arange(n) / 44100
        x441 = speech_like(rng441, 2.5, 44100, peak=0.5).astype(np.float64)
        x441 += 0.05 * np.sin(2 * np.pi * 5000.0 * t) + 0.1 * np.sin(2 * np.pi * 15000.0 * t)
        x441 += pink_noise(rng441, n, 0.01)
        r441 = resample(torch.from_numpy(x441.astype(np.float32)).unsqueeze(0), orig_freq=44100, new_freq=SR)
        fbank_case("resampled_44k1", "2.5 s at 44.1 kHz resampled to 16 kHz by torchaudio's resampler "
                   "(float32; the fbank input is the 16 kHz result): speech-like signal (peak 0.5), 5 kHz "
                   "tone, a 15 kHz tone the resampler removes, pink noise (rms 0.01); nothing above the "
                   "resampler's 7.92 kHz cut-off, so the top mel bins hold only the filter's leakage",
                   r441[0].numpy())

        # ---------------- audio pipeline ----------------
        def audio_case(name, description, x, sr):
            x = np.asarray(x, dtype=np.float32)
            res, clips, ranges, means, frames, out, effect = audio_pipeline_reference(kaldi, resample, x, sr)
            write_f32(out_dir, f"audio/{name}.in.f32", x)
            if sr == SR:
                res_path = f"audio/{name}.in.f32"  # resample is the identity: same samples, same file
            else:
                res_path = f"audio/{name}.16k.f32"
                write_f32(out_dir, res_path, res)
            write_f32(out_dir, f"audio/{name}.out.f32", out)
            manifest["audio_pipeline"].append({
                "name": name,
                "description": description,
                "input": f"audio/{name}.in.f32",
                "input_len": int(x.size),
                "input_sample_rate": sr,
                "resampled": res_path,
                "resampled_len": int(res.size),
                "duration_s": res.size / SR,
                "clips": [[float(s), float(e)] for s, e in clips],
                "clips_exact": [[str(s), str(e)] for s, e in clips],
                "clip_sample_ranges": ranges,
                "clip_means_f32": means,
                "clip_frames_before_pad": frames,
                "output": f"audio/{name}.out.f32",
                "output_shape": list(out.shape),
                "inplace_mean_effect_max_abs": effect,
                "params": AUDIO_PARAMS,
            })

        AUDIO_PARAMS = {
            "sample_rate": SR,
            "resample": {
                "function": "torchaudio.functional.resample (torchaudio 2.11.0 source, loaded by path)",
                "lowpass_filter_width": 6,
                "rolloff": 0.99,
                "resampling_method": "sinc_interp_hann",
                "beta": None,
                "identity_when_rates_equal": True,
                "notes": "input shaped [1, N]; rates reduced by their gcd; output length = "
                         "ceil(torch.as_tensor(new * N / orig)), i.e. the f64 quotient rounded to FLOAT32 "
                         "before the ceil; sinc kernel (time grid and values) built in the waveform dtype "
                         "(float32); input zero-padded by width on the left and width + orig on the right, "
                         "conv1d with stride orig",
            },
            "clip_sampler": {
                "type": "pytorchvideo ConstantClipsPerVideoSampler via ImageBind get_clip_timepoints",
                "clip_duration": CLIP_DURATION,
                "clips_per_video": CLIPS_PER_VIDEO,
                "duration": "resampled_len / 16000 (python float)",
                "rule": "M = max(duration - 2.0, 0) evaluated in f64, then taken as the exact rational "
                        "value of that f64; clip i (i = 0, 1, 2) = [i*M/3, i*M/3 + 2] s in exact rational "
                        "arithmetic; samples [a, b) with a = floor(i*M*16000/3) and b = floor((i*M/3 + 2)*16000) "
                        "= a + 32000; Python slicing clamps b at resampled_len. Computing i*M/3*16000 in f64 "
                        "is off by one sample for many lengths (e.g. odd_22k05)",
            },
            "num_mel_bins": NUM_MEL_BINS,
            "target_length": TARGET_LENGTH,
            "pad_crop": "fbank transposed to [128, n_frames]; p = 204 - n_frames; p > 0: zero-pad on the "
                        "right (zeros BEFORE normalisation, so padded columns read (0 + 4.268) / 9.138); "
                        "p < 0: keep the first 204 frames",
            "mean": AUDIO_MEAN,
            "std": AUDIO_STD,
            "normalize": "torchvision Normalize: (x - mean) / std in float32 (subtract, then divide)",
            "mean_subtraction_in_place": (
                "ImageBind's waveform2melspec does `waveform -= waveform.mean()` on a VIEW of the shared "
                "16 kHz waveform, so clips are processed in order and overlapping clips see the earlier "
                "clips' means already subtracted in the overlap. Reproduced here; "
                "inplace_mean_effect_max_abs is the max |difference| against mean-subtracting a copy "
                "per clip instead"
            ),
            "fbank": FBANK_PARAMS,
        }

        n = 4 * 44100
        mix = speech_like(rng, 4.0, 44100, peak=0.5).astype(np.float64) + pink_noise(rng, n, 0.05)
        audio_case("mix_44k1_4s", "4 s at 44.1 kHz: speech-like signal plus pink noise (rms 0.05); "
                   "resampled 44100 -> 16000 (gcd 100: 441 -> 160); clips start at 0, 2/3, 4/3 s", mix, 44100)
        t = np.arange(5 * SR) / SR
        sig5 = tones_and_chirp(5.0, SR).astype(np.float64) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
        sig5 += 0.02 * rng.standard_normal(t.size) + 0.05  # DC offset: clip means differ from zero
        audio_case("tones_16k_5s", "5 s at 16 kHz (no resampling): amplitude-modulated tones + chirp, "
                   "light noise and a +0.05 DC offset; clips [0,2], [1,3], [2,4]: overlapping, so the "
                   "in-place mean subtraction is visible; the last second is never used", sig5, SR)
        audio_case("short_16k_1p5s", "1.5 s at 16 kHz: shorter than one clip. max_start = 0, so the sampler "
                   "returns three identical [0, 2] clips; each slice holds only 24000 samples -> 148 frames, "
                   "zero-padded to 204", speech_like(rng, 1.5, SR), SR)
        t = np.arange(2 * 48000) / 48000
        tone48 = 0.5 * np.sin(2 * np.pi * 440.0 * t) + 0.1 * np.sin(2 * np.pi * 880.0 * t)
        tone48 += 0.05 * np.sin(2 * np.pi * 9000.0 * t)  # above 8 kHz: removed by the resampler
        audio_case("tone_48k_2s", "2 s at 48 kHz: 440 Hz tone with an 880 Hz harmonic and a 9 kHz component "
                   "the resampler must remove; resampled 48000 -> 16000 (gcd 16000: 3 -> 1); exactly one "
                   "clip long, so three identical [0, 2] clips of 32000 samples -> 198 frames", tone48, 48000)
        n = 57003
        odd = speech_like(rng, n / 22050, 22050, peak=0.4).astype(np.float64)[:n]
        odd = np.pad(odd, (0, n - odd.size)) + pink_noise(rng, n, 0.02)
        audio_case("odd_22k05", "57003 samples at 22.05 kHz (2.585 s): resampled 22050 -> 16000 (gcd 50: "
                   "441 -> 320) to ceil(16000*57003/22050) = 41363 samples, duration 2.5851875 s. The f64 "
                   "value of 2.5851875 - 2 lies just below 0.5851875, so the exact-rational clip starts give "
                   "sample 3120 and 6241, where real arithmetic (and naive f64 maths) give 3121 and 6242: "
                   "clip ranges must be computed exactly (see clip_sampler.rule)",
                   odd, 22050)

        # ---------------- vision ----------------
        def vision_case(name, description, rgb):
            rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
            h, w = rgb.shape[:2]
            resized, out, top, left = vision_reference(rgb)
            rh, rw = resized.shape[:2]
            write_u8(out_dir, f"vision/{name}.rgb8", rgb)
            write_u8(out_dir, f"vision/{name}.resized.rgb8", resized)
            write_f32(out_dir, f"vision/{name}.out.f32", out)
            manifest["vision"].append({
                "name": name,
                "description": description,
                "input": f"vision/{name}.rgb8",
                "width": w,
                "height": h,
                "resized": f"vision/{name}.resized.rgb8",
                "resized_width": rw,
                "resized_height": rh,
                "crop_top": top,
                "crop_left": left,
                "output": f"vision/{name}.out.f32",
                "output_shape": list(out.shape),
                "params": VISION_PARAMS,
            })

        VISION_PARAMS = {
            "resize": IMAGE_SIZE,
            "interpolation": "bicubic (PIL)",
            "resize_rule": "torchvision Resize(224) on a PIL image: short side -> 224, long side -> "
                           "int(224 * long / short) (float division, truncation); if the size is unchanged "
                           "the image is returned untouched; else PIL Image.resize((w, h), BICUBIC), which "
                           "is antialiased (filter support scaled by the downscale factor), separable, "
                           "8-bit intermediate",
            "crop": IMAGE_SIZE,
            "crop_rule": "top = int(round((h - 224) / 2)), left = int(round((w - 224) / 2)) with Python's "
                         "round-half-to-even",
            "to_tensor": "uint8 -> float32 / 255, HWC -> CHW",
            "mean": list(CLIP_MEAN),
            "std": list(CLIP_STD),
            "normalize": "(x - mean[c]) / std[c] in float32 (subtract, then divide)",
        }

        vision_case("astronaut", "skimage astronaut 512x512: square, downscale x2.286 (224x224, no crop)",
                    skimage.data.astronaut())
        vision_case("chelsea", "skimage chelsea 451x300: landscape, downscale x1.339 to 336x224, crop left 56",
                    skimage.data.chelsea())
        vision_case("coffee", "skimage coffee 600x400: landscape, downscale x1.786 to 336x224, crop left 56",
                    skimage.data.coffee())
        vision_case("small_synthetic", "synthetic 97x61 gradients + checkerboard + 1-px lines + diagonal edge: "
                    "upscale x3.67 to 356x224 (bicubic overshoot is clipped to 0..255), crop left 66",
                    synthetic_small_image())
        vision_case("rocket_portrait", "200x380 portrait crop of skimage rocket (rows 20..400, cols 200..400): "
                    "upscale x1.12 to 224x425; (425-224)/2 = 100.5 rounds half-to-even to crop top 100",
                    skimage.data.rocket()[20:400, 200:400])

        (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


def tree_digest(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and (rel == "manifest.json" or rel.split("/")[0] in ("fbank", "audio", "vision")):
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="fixtures directory (default: %(default)s)")
    ap.add_argument("--torchaudio-wheel", default=None, help="path to the torchaudio 2.11.0 wheel")
    ap.add_argument("--check", action="store_true",
                    help="regenerate into a temporary directory and compare byte-for-byte with --out")
    args = ap.parse_args()
    wheel = find_wheel(args.torchaudio_wheel)
    if args.check:
        with tempfile.TemporaryDirectory(prefix="edgebind-fixtures-") as td:
            generate(Path(td), wheel)
            new, old = tree_digest(Path(td)), tree_digest(args.out)
        bad = sorted(k for k in set(new) | set(old) if new.get(k) != old.get(k))
        for k in bad:
            print(f"DIFFERS: {k}")
        print(f"{len(new)} files regenerated, {len(bad)} differ")
        sys.exit(1 if bad else 0)
    args.out.mkdir(parents=True, exist_ok=True)
    generate(args.out, wheel)
    digest = tree_digest(args.out)
    total = sum((args.out / k).stat().st_size for k in digest)
    print(f"wrote {len(digest)} files, {total} bytes, to {args.out}")


if __name__ == "__main__":
    main()
