"""Register syncanim's entry points (its components) on a machine where it is not installed: a dist-info
folder written from pyproject.toml into a site folder on PYTHONPATH.

    python3 benchmarks/gpu/entry_points.py /tmp/site
"""

from __future__ import annotations

import pathlib
import sys
import tomllib


def main() -> int:
    site = pathlib.Path(sys.argv[1])
    p = tomllib.loads(pathlib.Path("pyproject.toml").read_text())["project"]
    d = site / f"syncanim-{p['version']}.dist-info"
    d.mkdir(parents=True, exist_ok=True)
    (d / "METADATA").write_text(f"Metadata-Version: 2.1\nName: syncanim\nVersion: {p['version']}\n")
    groups = [f"[{g}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) for g, eps in p["entry-points"].items()]
    (d / "entry_points.txt").write_text("\n".join(groups))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
