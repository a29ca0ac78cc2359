"""Write environment.yml from pyproject.toml, so conda and pip users install the same packages.

Run after changing dependencies: python scripts/sync_environment.py (tests/test_packaging.py checks it).
"""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = [
        "# Conda environment for liverlib, written by scripts/sync_environment.py from pyproject.toml (a test",
        "# checks they agree). Everything comes through pip, so both routes install the same, tested versions.",
        "#   conda env create -f environment.yml && conda activate liverlib",
        "name: liverlib", "channels:", "  - conda-forge", "dependencies:", "  - python=3.11", "  - pip", "  - pip:",
        "      # core",
    ]
    lines += [f"      - {r}" for r in project["dependencies"]]
    for extra, requirements in project["optional-dependencies"].items():
        lines.append(f"      # extra: {extra}")
        lines += [f"      - {r}" for r in requirements]
    lines += ["      # liverlib itself, editable, from this folder", "      - -e ."]
    (ROOT / "environment.yml").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
