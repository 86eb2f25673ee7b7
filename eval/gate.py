"""The thresholds of eval/thresholds.toml: loaded per mode, checked against a run's metrics."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from assistant.errors import ConfigError

DEFAULT_THRESHOLDS = Path(__file__).resolve().parent / "thresholds.toml"


def load_thresholds(path: str | Path = DEFAULT_THRESHOLDS, mode: str = "extractive") -> dict[str, Any]:
    """The thresholds table of one mode from a TOML file (format: eval/thresholds.toml)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"thresholds file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"thresholds file {path} is not valid TOML: {exc}") from None
    if mode not in data:
        raise ConfigError(f"thresholds file {path} has no [{mode}] table (it has: {', '.join(data) or 'none'})")
    return data[mode]


def check_thresholds(metrics: dict[str, Any], thresholds: dict[str, Any]) -> list[str]:
    """Every threshold the metrics miss, as readable lines; [] when all pass.

    Keys are `min_<metric>` / `max_<metric>` on the overall metrics; sub-tables `language.<ar|en>` and
    `kind.<kind>` hold the same keys for one group. A metric that was not measured fails its threshold.
    """
    failures: list[str] = []

    def check(group: dict[str, Any] | None, table: dict[str, Any], where: str) -> None:
        for key, limit in table.items():
            if isinstance(limit, dict):
                if where != "overall" or key not in ("language", "kind"):
                    raise ConfigError(f"thresholds: unexpected table {key!r} under {where}")
                for name, sub in limit.items():
                    check(metrics[f"by_{key}"].get(name), sub, f"{key} {name}")
                continue
            bound, _, metric = key.partition("_")
            if bound not in ("min", "max") or not metric:
                raise ConfigError(f"thresholds: key {key!r} must be min_<metric> or max_<metric>")
            if group is None:
                failures.append(f"{where}: no questions in this group, so {metric} was not measured")
                continue
            if metric not in group:
                raise ConfigError(f"thresholds: unknown metric {metric!r} (known: {', '.join(sorted(group))})")
            value = group[metric]
            if value is None:
                failures.append(f"{where}: {metric} was not measured (threshold {bound} {limit})")
            elif bound == "min" and value < limit:
                failures.append(f"{where}: {metric} = {value:.3f} is below the minimum {limit}")
            elif bound == "max" and value > limit:
                failures.append(f"{where}: {metric} = {value:.3f} is above the maximum {limit}")

    check(metrics["overall"], thresholds, "overall")
    return failures


