"""What every benchmark result records: the machine, the versions, the date."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from pathlib import Path

from liverlib.environment import speed_settings, versions

RESULTS = Path(__file__).resolve().parent / "results"


def machine_info() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(), "versions": versions(),
            "settings": speed_settings(), "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def write_result(name: str, result: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=float) + "\n")
    return path
