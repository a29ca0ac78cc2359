"""Sphinx extension: serve MathJax 3 from the book's own files, so pages typeset equations offline.

Jupyter Book's default pages load MathJax from a CDN, which a hospital or classroom without open
internet cannot reach. MathJax 3 comes from the ``django-static-mathjax`` wheel (a plain copy of the
MathJax 3 distribution; Django is not needed), and the parts the pages use are copied into
``_static/mathjax`` after the build.
"""

from __future__ import annotations

import shutil
from pathlib import Path

MATHJAX_PATH = "mathjax/tex-chtml.js"
# tex-chtml.js loads fonts, TeX extensions, the menu and the assistive MathML on demand, from these folders
_PARTS = ("tex-chtml.js", "input", "output/chtml", "ui", "a11y", "adaptors")


def mathjax_source() -> Path:
    import mathjax  # the django-static-mathjax distribution installs this package

    for base in map(Path, mathjax.__path__):
        es5 = base / "static" / "mathjax" / "es5"
        if (es5 / "tex-chtml.js").is_file():
            return es5
    raise RuntimeError("MathJax 3 files not found; install the book extra: pip install -e '.[book]'")


def _set_path(app, config) -> None:
    config.mathjax_path = MATHJAX_PATH


def _copy(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    src = mathjax_source()
    dest = Path(app.outdir) / "_static" / "mathjax"
    for part in _PARTS:
        s, d = src / part, dest / part
        if s.is_dir():
            shutil.copytree(s, d, dirs_exist_ok=True)
        else:
            d.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(s, d)


def _dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    """Drop repeated inline scripts: sphinx-thebe registers its configuration twice under Jupyter Book,
    and the second ``const THEBE_JS_URL`` is a JavaScript error on every page."""
    seen, unique = set(), []
    for script in context.get("script_files", []):
        key = (str(getattr(script, "filename", script) or ""), getattr(script, "attributes", {}).get("body"))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"][:] = unique


def setup(app):
    mathjax_source()  # fail early with a clear message
    app.connect("config-inited", _set_path, priority=900)
    app.connect("html-page-context", _dedupe_scripts, priority=999)
    app.connect("build-finished", _copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
