"""Load the Sunnybrook cine (240 DICOM files) through ``deepoxymap.io.load`` vs a bare pydicom loop.

The anchor is what any loader must at least do: ``pydicom.dcmread(f).pixel_array``
for every file. Both run in the same process, interleaved, ``REPEATS`` times after
one warm-up each; the medians are compared. Target: ratio <= 1.5.
"""

from __future__ import annotations

import gc
import statistics
import time
import warnings
from pathlib import Path

TARGET = 1.5
REPEATS = 7


def _series_dir() -> Path | None:
    from deepoxymap.config import settings

    d = Path(settings().real_data_dir) / "sunnybrook" / "SCD0000101"
    return d if d.is_dir() and any(d.glob("*.dcm")) else None


def main() -> int:
    """Run the benchmark; returns 0 when the ratio meets the target (or the data is absent)."""
    import pydicom

    from deepoxymap.io import load

    folder = _series_dir()
    if folder is None:
        print("SKIP: Sunnybrook SCD0000101 not found under settings().real_data_dir (../shared/data/real)")
        return 0
    files = sorted(folder.glob("*.dcm"))

    def bare() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for f in files:
                pydicom.dcmread(f).pixel_array  # noqa: B018 - decoding is the point

    def ours() -> None:
        res = load(folder)
        assert len(res.series) == 1 and res.series[0].stack.data.shape[:2] == (12, 20), res.issues

    bare()
    ours()
    t_bare: list[float] = []
    t_ours: list[float] = []
    for _ in range(REPEATS):
        gc.collect()
        t0 = time.perf_counter()
        bare()
        t_bare.append(time.perf_counter() - t0)
        gc.collect()
        t0 = time.perf_counter()
        ours()
        t_ours.append(time.perf_counter() - t0)
    mb, mo = statistics.median(t_bare), statistics.median(t_ours)
    ratio = mo / mb
    print(f"files: {len(files)}")
    print(f"bare pydicom dcmread + pixel_array: median {mb * 1000:.0f} ms over {REPEATS}")
    print(f"deepoxymap.io.load (group, order, decode, stack): median {mo * 1000:.0f} ms over {REPEATS}")
    print(f"ratio {ratio:.2f} (target <= {TARGET}); best-of-{REPEATS} ratio {min(t_ours) / min(t_bare):.2f}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
