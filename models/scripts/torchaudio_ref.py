"""torchaudio's pure-Python reference code (``compliance/kaldi.py``,
``functional/functional.py``) loaded straight from the pinned wheel, without
running the package ``__init__`` or its C extension (PyPI's torchaudio wheels
lag torch's, so the package itself may refuse to import). Shared by
``make_fixtures.py`` (parity fixtures) and ``bench_reference.py`` (fbank
throughput); standard library only.
"""

from __future__ import annotations

import glob
import hashlib
import importlib.util
import os
import sys
import types
import zipfile
from pathlib import Path

TORCHAUDIO_VERSION = "2.11.0"


def find_wheel(cli_value: str | None) -> Path:
    candidates = []
    if cli_value:
        candidates.append(cli_value)
    if os.environ.get("EDGEBIND_TORCHAUDIO_WHEEL"):
        candidates.append(os.environ["EDGEBIND_TORCHAUDIO_WHEEL"])
    candidates.extend(
        sorted(glob.glob(os.path.join(sys.prefix, "torchaudio-wheel", f"torchaudio-{TORCHAUDIO_VERSION}-*.whl")))
    )
    for c in candidates:
        if Path(c).is_file():
            return Path(c)
    sys.exit(
        "torchaudio wheel not found; run\n"
        f"  pip download --no-deps torchaudio=={TORCHAUDIO_VERSION} -d {sys.prefix}/torchaudio-wheel\n"
        "or pass --torchaudio-wheel PATH"
    )


def load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_torchaudio_reference(wheel: Path, workdir: Path):
    """Load torchaudio's kaldi.py and functional.py from the wheel.

    The package __init__ (and its C extension probe) is never run: stub
    package objects stand in for ``torchaudio``, ``torchaudio.compliance``,
    ``torchaudio.functional`` and ``torchaudio._extension`` (the last only
    says "no C extension", which makes filtering.py pick its pure-Python
    paths; neither fbank nor resample touch them).
    """
    wanted = [
        "torchaudio/compliance/kaldi.py",
        "torchaudio/functional/functional.py",
        "torchaudio/functional/filtering.py",
    ]
    hashes = {}
    with zipfile.ZipFile(wheel) as zf:
        for member in wanted:
            data = zf.read(member)
            hashes[member] = hashlib.sha256(data).hexdigest()
            dest = workdir / member
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)

    root = workdir / "torchaudio"
    pkg = types.ModuleType("torchaudio")
    pkg.__path__ = [str(root)]
    pkg.__version__ = TORCHAUDIO_VERSION
    sys.modules["torchaudio"] = pkg
    ext = types.ModuleType("torchaudio._extension")
    ext._IS_TORCHAUDIO_EXT_AVAILABLE = False
    sys.modules["torchaudio._extension"] = ext
    pkg._extension = ext
    for sub in ("compliance", "functional"):
        m = types.ModuleType(f"torchaudio.{sub}")
        m.__path__ = [str(root / sub)]
        sys.modules[f"torchaudio.{sub}"] = m
        setattr(pkg, sub, m)

    functional = load_module("torchaudio.functional.functional", root / "functional" / "functional.py")
    pkg.functional.resample = functional.resample
    pkg.functional.create_dct = functional.create_dct
    kaldi = load_module("torchaudio.compliance.kaldi", root / "compliance" / "kaldi.py")
    pkg.compliance.kaldi = kaldi
    return kaldi, functional.resample, hashes
