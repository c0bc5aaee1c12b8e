"""Run every benchmark module in this folder, one after another (`make bench`)."""

import importlib
import pkgutil
import sys
from pathlib import Path


def main() -> None:
    names = sorted(
        m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if not m.name.startswith("_")
    )
    for name in names:
        print(f"\n=== bench.{name}", flush=True)
        module = importlib.import_module(f"bench.{name}")
        module.main([]) if "argv" in module.main.__code__.co_varnames else module.main()
    return None


if __name__ == "__main__":
    sys.exit(main())
