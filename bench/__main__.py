"""``python -m bench [NAME ...]`` runs every ``bench/bench_*.py`` (or the named ones)."""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = argv or sorted(p.stem.removeprefix("bench_") for p in here.glob("bench_*.py"))
    failed = 0
    for name in names:
        mod = importlib.import_module(f"bench.bench_{name}")
        print(f"\n=== bench {name} ===", flush=True)
        t0 = time.perf_counter()
        rc = int(mod.main() or 0)
        failed += rc != 0
        print(
            f"--- bench {name}: {'ok' if rc == 0 else 'TARGET MISSED'} ({time.perf_counter() - t0:.1f} s)", flush=True
        )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
