"""Packaging: one version, a changelog, and a wheel that works outside the source tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

import monai_em

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "em_segmentation"


def test_version_is_written_once_and_the_bundle_agrees():
    meta = json.loads((BUNDLE / "configs" / "metadata.json").read_text())
    assert meta["required_packages_version"]["monai_em"] == monai_em.__version__
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and 'version = { attr = "monai_em.__version__" }' in pyproject
    changelog = (REPO / "CHANGELOG.md").read_text()
    assert f"## {monai_em.__version__}" in changelog


def _run(cmd, cwd, env, timeout=600):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-4000:]}"
    )
    return proc


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_runs(tmp_path):
    """Build sdist + wheel, install the wheel (no deps, no index) into a new venv whose dependencies
    come from this interpreter's site-packages, then run a transform, a bundle and the converter's help
    from outside the source tree."""
    dist = tmp_path / "dist"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(REPO)], tmp_path, env)
    wheels, sdists = list(dist.glob("*.whl")), list(dist.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1
    assert monai_em.__version__ in wheels[0].name

    fresh = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(fresh)
    py = fresh / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", "--no-index",
          str(wheels[0])], tmp_path, env)  # fmt: skip
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path, env)
                .stdout.strip())  # fmt: skip
    # dependencies from this environment, as a plain path (its .pth files, e.g. an editable monai_em, stay off)
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run(
        [str(py), "-c", "import monai_em; print(monai_em.__file__, monai_em.__version__)"], work, env
    )
    assert str(site) in where.stdout and monai_em.__version__ in where.stdout

    transform = (
        "import numpy as np; from monai_em.transforms import RandFlipTransposed;"
        "out = RandFlipTransposed(['image']).set_random_state(0)({'image': np.zeros((1, 2, 8, 8), np.float32)});"
        "print(type(out['image']).__name__, tuple(out['image'].shape))"
    )
    assert "(1, 2, 8, 8)" in _run([str(py), "-c", transform], work, env).stdout

    configs = BUNDLE / "configs"
    _run([str(py), "-m", "monai.bundle", "run", "--config_file", str(configs / "train.yaml"),
          "--meta_file", str(configs / "metadata.json"), "--bundle_root", str(tmp_path / "bundle"),
          "--input_size", "[4, 32, 32]", "--net_filters", "[4, 8, 16, 32]", "--synthetic_shape", "[12, 64, 64]",
          "--val_sections", "4", "--epochs", "1", "--epoch_length", "1", "--batch_size", "1", "--num_threads", "1"],
         work, {**env, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert (tmp_path / "bundle" / "models").is_dir()

    assert "usage" in _run([str(py), "-m", "monai_em.convert", "--help"], work, env).stdout.lower()
