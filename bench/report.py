"""Targets of issue 8 checked against one run's results, and the printed table."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

__all__ = ["RESULTS", "print_report", "save_results", "targets"]

RESULTS = Path(__file__).resolve().parent / "results"  # gitignored


def save_results(results: dict[str, Any], prefix: str = "") -> Path:
    """Write one run's results as ``bench/results/<prefix><timestamp>.json``; its path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{prefix}{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=1, sort_keys=True))
    return path


def _p50(results: dict[str, Any], section: str, name: str) -> float | None:
    entry = results.get(section, {}).get(name)
    return None if entry is None else float(entry["p50_ms"])


def _ratio_target(results: dict[str, Any], what: str, num: str, den: str,
                  limit: float, section: str = "latency") -> dict[str, Any] | None:  # fmt: skip
    a, b = _p50(results, section, num), _p50(results, section, den)
    if a is None or b is None:
        return None
    ratio = a / b
    return {"target": what, "value": round(ratio, 3), "limit": limit, "pass": ratio <= limit}


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target of the issue that this run has the figures for, with pass/fail."""
    checks = [
        _ratio_target(results, "API p50 <= 1.25x raw runc run", "api-runc", "raw-runc", 1.25),
        _ratio_target(results, "API p50 <= 1.10x raw runsc run", "api-runsc", "raw-runsc", 1.10),
        _ratio_target(results, "API p50 >= 4x faster than podman", "api-runc", "podman", 0.25),
    ]
    for cli, how in (("served", "served by sandpool serve"), ("cli", "in-process, no server")):
        checks += [
            _ratio_target(results, f"CLI ({how}) p50 <= 3x raw runc run", f"{cli}-runc",
                          "raw-runc", 3.0),
            _ratio_target(results, f"CLI ({how}) p50 <= 1.5x raw runsc run", f"{cli}-runsc",
                          "raw-runsc", 1.5),
            _ratio_target(results, f"CLI ({how}) p50 faster than podman", f"{cli}-runc",
                          "podman", 1.0),
        ]  # fmt: skip
    for k, row in results.get("throughput", {}).items():
        checks.append({"target": f"throughput K={k} >= 80% of raw runc", "value": row["ratio"],
                       "limit": 0.8, "pass": row["ratio"] >= 0.8})  # fmt: skip
    for rt in ("runc", "runsc"):
        checks.append(_ratio_target(results, f"large image p50 within 10% of small ({rt})",
                                    f"large-{rt}", f"small-{rt}", 1.10, "image_size"))  # fmt: skip
    return [check for check in checks if check is not None]


def _ratio(p50: float, base: float | None) -> str:
    return f"{p50 / base:.2f}x" if base else "-"


def print_report(results: dict[str, Any]) -> None:
    """The results as plain-text tables (the README's tables are copied from this)."""
    lat = results["latency"]
    print(f"\nStart latency of `true` (N={results['n']}, ms; ratio of p50 to raw)")
    print(f"| {'contender':<10} | {'p50':>7} | {'p95':>7} | {'vs raw runc':>11} | "
          f"{'vs raw runsc':>12} |")  # fmt: skip
    print("|" + "|".join("-" * w for w in (12, 9, 9, 13, 14)) + "|")
    for name, s in lat.items():
        print(f"| {name:<10} | {s['p50_ms']:>7.1f} | {s['p95_ms']:>7.1f} | "
              f"{_ratio(s['p50_ms'], _p50(results, 'latency', 'raw-runc')):>11} | "
              f"{_ratio(s['p50_ms'], _p50(results, 'latency', 'raw-runsc')):>12} |")  # fmt: skip
    print("\nThroughput (containers/s, median of rounds)")
    print("| K | api-runc | raw-runc | ratio |\n|---|---|---|---|")
    for k, row in results["throughput"].items():
        print(f"| {k} | {row['api-runc']:.1f} | {row['raw-runc']:.1f} | {row['ratio']:.2f} |")
    print("\nImage size (API, ms)")
    print("| contender | p50 | p95 |\n|---|---|---|")
    for name, s in results["image_size"].items():
        if name != "sizes_bytes":
            print(f"| {name} | {s['p50_ms']:.1f} | {s['p95_ms']:.1f} |")
    mem = results["memory"]
    print(f"\nMemory: `sandpool run` peak RSS {mem['cli_peak_rss_kb'] / 1024:.1f} MiB "
          f"in-process, {mem['served_client_peak_rss_kb'] / 1024:.1f} MiB served (the server: "
          f"{mem['server_rss_kb'] / 1024:.1f} MiB, peak {mem['server_hwm_kb'] / 1024:.1f} MiB); "
          f"idle "
          f"process holding a Sandpool {mem['idle_rss_kb'] / 1024:.1f} MiB "
          f"(peak {mem['idle_hwm_kb'] / 1024:.1f} MiB)")  # fmt: skip
    print("\nTargets")
    for t in results["targets"]:
        print(f"  [{'PASS' if t['pass'] else 'FAIL'}] {t['target']}: {t['value']} "
              f"(limit {t['limit']})")  # fmt: skip
    print(f"\nleftovers: {results['leftovers']}  elapsed: {results['elapsed_s']} s")
