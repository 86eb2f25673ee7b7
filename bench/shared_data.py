"""Where the benchmarks find the public data sets: ../shared/data beside the checkout, unless
ISNAD_XQUAD_DIR / ISNAD_SHARED_DATA say otherwise (the product itself never assumes these paths)."""

from __future__ import annotations

import os
from pathlib import Path

SHARED_DATA = Path(os.environ.get("ISNAD_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
XQUAD = Path(os.environ.get("ISNAD_XQUAD_DIR") or SHARED_DATA / "xquad")
