"""Measured numbers, read where they were written, so no chapter ever types one into its prose.

A number this project measured (a speed, a duration, a metric of a run) lives in the JSON file that the
benchmark or the run wrote. Chapters read it here by a dotted key and glue the formatted text into their
prose with myst-nb's ``glue`` (``{glue:text}`name```), so the book always says what the files say::

    from liverlib import facts
    facts.fact("training_speed.train_images_per_s_224")                        # '2.2' (benchmarks/results)
    facts.fact("training_speed.throughput[size=224,loop=ours].images_per_s_median", ".2f")
    facts.fact("model_card.metrics.val_macro_f1", ".2f", root=run_dir)          # a run folder
    facts.fact("evaluation/metrics.macro_f1", root=run_dir)                     # a file in a sub-folder
    facts.glue("speed_224", facts.fact("training_speed.train_images_per_s_224"))

A key is ``<file>.<path>``: ``<file>`` is a JSON file under ``root`` without ``.json`` (``/`` for
sub-folders), ``<path>`` walks into it one dotted part at a time; a list is indexed by position
(``[0]``) or by the one element whose fields match (``[size=224,loop=ours]``). ``root`` defaults to the
benchmark results (``benchmarks/results`` of a source checkout, or ``$LIVERLIB_BENCH_RESULTS``).

Importing this module imports no TensorFlow, no pandas and no other liverlib module but ``errors``.
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from liverlib.errors import LiverlibError

RESULTS_ENV = "LIVERLIB_BENCH_RESULTS"  # the same variable liverlib.performance reads
_INDEX = re.compile(r"^(?P<name>[^\[\]]*)(?P<indices>(\[[^\[\]]*\])*)$")


class Fact(str):
    """A number formatted for prose: a ``str`` that keeps the raw ``value`` and the ``key`` it was read from.

    Glued, it is shown exactly as formatted by ``{glue:text}`name``` (myst-nb reads the quoted ``repr``
    back as the string, so ``3,319`` stays ``3,319`` and is not read as a tuple)."""

    value: Any
    key: str

    def __new__(cls, text: str, value: Any = None, key: str = "") -> "Fact":
        self = super().__new__(cls, text)
        self.value, self.key = value, key
        return self


def results_dir() -> Path | None:
    """Where benchmark results are read from: ``$LIVERLIB_BENCH_RESULTS``, else ``benchmarks/results`` of a
    source checkout; None when neither exists (an installed package has no benchmarks)."""
    explicit = os.environ.get(RESULTS_ENV)
    folder = Path(explicit) if explicit else Path(__file__).resolve().parent.parent / "benchmarks" / "results"
    return folder if folder.is_dir() else None


@lru_cache(maxsize=64)
def _load(path: Path, mtime_ns: int) -> Any:
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise LiverlibError(f"{path.name} is not valid JSON ({exc}); rerun what wrote it") from None


def _split(key: str) -> tuple[str, list[str]]:
    if not isinstance(key, str) or not key.strip():
        raise LiverlibError(f"a fact's key is '<file>.<path>', for example 'summary.make_book_minutes'; got {key!r}")
    file, _, rest = key.strip().partition(".")
    return file, re.split(r"\.(?![^\[]*\])", rest) if rest else []  # dots inside [...] belong to a selector


def _read_file(file: str, root: str | os.PathLike | None) -> tuple[Path, Any]:
    base = Path(root) if root is not None else results_dir()
    if base is None:
        raise LiverlibError("no benchmark results here (benchmarks/results is missing; an installed package has "
                            f"none): run `make bench` in a source checkout or set {RESULTS_ENV}")
    path = base / f"{file}.json"
    if not path.is_file():
        known = sorted(str(p.relative_to(base).with_suffix("")) for p in base.rglob("*.json"))
        raise LiverlibError(f"no {file}.json in {base.name}/; known files: {', '.join(known) or 'none'}")
    return path, _load(path, path.stat().st_mtime_ns)


def _pick(items: list, selector: str, where: str) -> Any:
    selector = selector.strip()
    if re.fullmatch(r"-?\d+", selector):
        try:
            return items[int(selector)]
        except IndexError:
            raise LiverlibError(f"{where} has {len(items)} elements, no [{selector}]") from None
    wanted = {}
    for pair in selector.split(","):
        field, sep, text = pair.partition("=")
        if not sep:
            raise LiverlibError(f"{where}[{selector}]: select a list element by position ([0]) or fields ([a=1,b=x])")
        wanted[field.strip()] = text.strip()
    matches = [item for item in items if isinstance(item, dict)
               and all(k in item and _plain(item[k]) == v for k, v in wanted.items())]
    if len(matches) != 1:
        raise LiverlibError(f"{where}[{selector}] matches {len(matches)} elements, not one; add fields to the "
                            "selector" if matches else f"{where}[{selector}] matches no element")
    return matches[0]


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def value(key: str, root: str | os.PathLike | None = None) -> Any:
    """The raw value at ``key`` (a number, a string, a list or an object), read from its JSON file."""
    file, parts = _split(key)
    path, node = _read_file(file, root)
    where = file
    for part in parts:
        match = _INDEX.match(part)
        if not match:
            raise LiverlibError(f"{key!r}: cannot read the part {part!r}")
        name, indices = match["name"], re.findall(r"\[([^\[\]]*)\]", match["indices"])
        if name:
            if not isinstance(node, dict) or name not in node:
                keys = sorted(node) if isinstance(node, dict) else []
                raise LiverlibError(f"{where} has no {name!r}" + (f"; it has {', '.join(map(str, keys))}" if keys
                                                                   else f" (it is a {type(node).__name__})"))
            node, where = node[name], f"{where}.{name}"
        for selector in indices:
            if not isinstance(node, list):
                raise LiverlibError(f"{where} is a {type(node).__name__}, not a list; drop [{selector}]")
            node, where = _pick(node, selector, where), f"{where}[{selector}]"
    return node


def has(key: str, root: str | os.PathLike | None = None) -> bool:
    """Whether ``key`` can be read (the file exists and holds that path)."""
    try:
        value(key, root)
    except LiverlibError:
        return False
    return True


def format_number(number: Any, fmt: str | Callable[[Any], str] | None = None) -> str:
    """Text for prose. ``fmt`` is a format spec (``'.2f'``, ``',.0f'``, ``'.0%'``) or a function; by default
    whole numbers get thousands separators, and other numbers two significant figures below 100 (``2.2``,
    ``17``, ``0.26``) and none after the point from 100 on (``1,234``)."""
    if callable(fmt):
        return fmt(number)
    if fmt is not None:
        return format(number, fmt)
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        return str(number)
    if isinstance(number, int):
        return f"{number:,}"
    if abs(number) >= 100:
        return f"{number:,.0f}"
    return f"{number:.2g}" if "e" not in f"{number:.2g}" else f"{number:.2f}"


def fact(key: str, fmt: str | Callable[[Any], str] | None = None, *, scale: float = 1.0,
         root: str | os.PathLike | None = None) -> Fact:
    """The number at ``key``, times ``scale`` (for example ``1 / 60`` for seconds to minutes), formatted by
    :func:`format_number`: a :class:`Fact`, ready to glue."""
    raw = value(key, root)
    if scale != 1.0:
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise LiverlibError(f"{key!r} is {raw!r}, not a number; it cannot be scaled")
        raw = raw * scale
    return Fact(format_number(raw, fmt), raw, key)


def glue(name: str, text: Any, fmt: str | Callable[[Any], str] | None = None) -> Fact:
    """Glue ``text`` (a :class:`Fact`, a number, or any text) under ``name`` for the page's prose, with no
    output of its own: write ``{glue:text}`name``` in a markdown cell. Needs myst-nb (the book extra)."""
    from myst_nb import glue as nb_glue

    shown = text if isinstance(text, Fact) and fmt is None else Fact(format_number(text, fmt), text, name)
    nb_glue(name, shown, display=False)
    return shown


# --------------------------------------------------------------------------- measured training speeds

# the throughput sweep entries that change a setting the course never uses (oneDNN off, one thread, bfloat16)
_OFF_RECIPE = ("onednn", "threads", "precision")


def training_speeds(loop: str = "ours", root: str | os.PathLike | None = None) -> dict[tuple[int, int], float]:
    """Measured ResNet-50 training throughput (median images/s) of this course's training loop on the
    reference CPU, by (image size, batch), from ``training_speed.json`` (``throughput`` and the default
    settings of its ``sweep``). Empty when the file is missing."""
    try:
        found = value("training_speed", root)
    except LiverlibError:
        return {}
    speeds: dict[tuple[int, int], float] = {}
    for entry in list(found.get("throughput", [])) + list(found.get("sweep", [])):
        if (isinstance(entry, dict) and entry.get("loop") == loop and not any(k in entry for k in _OFF_RECIPE)
                and isinstance(entry.get("images_per_s_median"), (int, float))):
            speeds.setdefault((int(entry["size"]), int(entry["batch"])), float(entry["images_per_s_median"]))
    return speeds
