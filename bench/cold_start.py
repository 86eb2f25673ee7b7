"""A cold `isnad ask`: the whole process, on onnxruntime (the default) and on torch, alternated in one run.

    python bench/cold_start.py [--data-dir /tmp/isnad-cold-start] [--runs 5]

Each run is a new process (Python, imports, opening the index, loading the embedder and the reader, one
extractive answer over the bundled sample); `ISNAD_RUNTIME=torch` is the torch path the default replaced.
Prints the median wall time of each and their ratio, and whether the default process imported torch.
Builds the sample index (and exports the onnxruntime graphs) first when missing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

QUESTION = "What did the chief of staff order about unregistered vehicles?"
RUNTIMES = {"onnxruntime": {}, "torch": {"ISNAD_RUNTIME": "torch"}}


def wall(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, **env})
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/isnad-cold-start"))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    isnad = [sys.executable, "-m", "assistant.app.cli"]
    ask = isnad + ["ask", "--data-dir", str(args.data_dir), QUESTION]
    if not args.data_dir.exists():
        subprocess.run(isnad + ["ingest", "--sample", "--data-dir", str(args.data_dir)], check=True)
    for env in RUNTIMES.values():
        wall(ask, env)  # warm the page cache (and export the graphs once)
    times: dict[str, list[float]] = {name: [] for name in RUNTIMES}
    for _ in range(args.runs):  # alternated, so drift on a noisy machine hits both alike
        for name, env in RUNTIMES.items():
            times[name].append(wall(ask, env))
    probe = ("import sys; from assistant import Assistant; from assistant.settings import Settings; "
             f"Assistant(Settings(data_dir={str(args.data_dir)!r})).ask({QUESTION!r}); print('torch' in sys.modules)")
    imported = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout.strip()
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        print(f"isnad ask, cold process, {name:12}: median {medians[name]:.2f} s over {args.runs} "
              f"({', '.join(f'{t:.2f}' for t in values)})")
    print(f"ratio onnxruntime / torch: {medians['onnxruntime'] / medians['torch']:.2f}; "
          f"torch imported on the default path: {imported}")


if __name__ == "__main__":
    main()
