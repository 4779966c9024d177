"""Both install routes (pip and CMake) give `import genjscc` and `from gnuradio import genjscc`,
and both build the native BP and LM kernels (lib/) into the installed package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECK = (
    "import sys, genjscc, gnuradio.genjscc as g, genjscc.zoo as z;"
    "from importlib import resources;"
    "assert genjscc.__file__.startswith(sys.argv[1]), genjscc.__file__;"
    "assert g.__file__.startswith(sys.argv[1]), g.__file__;"
    "assert resources.files('genjscc.zoo').joinpath('manifest.yml').is_file();"
    # the native BP kernel was built and installed with the package, and decodes
    "from genjscc.core.fec import _native;"
    "assert _native.available() and sys.argv[1] in _native.reason(), _native.reason();"
    "import torch; from genjscc.core.fec.bp import BPDecoder;"
    "d = BPDecoder([[1, 1, 0], [0, 1, 1]], backend='native');"
    "r = d.decode(torch.tensor([[2.0, -0.5, 3.0]]));"
    "assert r.bits.tolist() == [[0, 0, 0]] and r.num_iters.tolist() == [1], r;"
    # and the native LM kernel, which multiplies int8 matrices exactly
    "from genjscc.core.source import _lm_native as lm;"
    "assert lm.available() and sys.argv[1] in lm.reason(), lm.reason();"
    "w = torch.tensor([[-128, 127], [3, -5]], dtype=torch.int8);"
    "assert lm.gemm(w, lm.pack(w), 2).tolist() == [[32513, -1019], [-1019, 34]];"
    "print('ok', genjscc.__version__)"
)


def _run_check(site_dir: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(site_dir))
    result = subprocess.run([sys.executable, "-c", CHECK, str(site_dir)], env=env,
                            capture_output=True, text=True, timeout=120, cwd="/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")


def test_pip_install_route(tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(ROOT)],
        check=True, timeout=300, capture_output=True,
    )
    _run_check(target)
    # package data: the YAML-free data files must be in the wheel too
    assert (target / "genjscc" / "zoo" / "manifest.yml").is_file()


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not installed")
def test_cmake_install_route(tmp_path: Path) -> None:
    build, prefix = tmp_path / "build", tmp_path / "prefix"
    subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build),
                    f"-DCMAKE_INSTALL_PREFIX={prefix}", f"-DPYTHON_EXECUTABLE={sys.executable}"],
                   check=True, timeout=300, capture_output=True)
    subprocess.run(["cmake", "--build", str(build)], check=True, timeout=300,
                   capture_output=True)
    subprocess.run(["cmake", "--install", str(build)], check=True, timeout=300,
                   capture_output=True)
    site_dirs = list(prefix.glob("lib/python3*/site-packages"))
    assert len(site_dirs) == 1, site_dirs
    _run_check(site_dirs[0])
    yaml_files = list((prefix / "share/gnuradio/grc/blocks").glob("genjscc_*.block.yml"))
    assert yaml_files, "CMake installed no GRC block YAML"
    assert (prefix / "bin" / "genjscc").is_file()
