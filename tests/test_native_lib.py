"""The native-kernel search shared by the BP and LM bindings: what it reports when a kernel
is missing, is not a library, or is another version (real files, real ctypes loads)."""

from __future__ import annotations

from pathlib import Path

import pytest

from genjscc.core import _native_lib
from genjscc.core.fec import _native


def test_missing_kernel_lists_the_paths_and_how_to_build(tmp_path: Path) -> None:
    paths = _native_lib.candidates(tmp_path, "_x_kernel", "libgenjscc_x.so")
    assert paths[-1] == tmp_path / "libgenjscc_x.so" and len(paths) > 1
    lib, why = _native_lib.load_kernel(paths, "X", "gj_x_version", 1)
    assert lib is None
    assert why.startswith("no native X kernel found") and "make setup" in why
    assert all(str(p) in why for p in paths)


def test_a_file_that_is_not_a_library_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "libgenjscc_x.so"
    path.write_bytes(b"not an ELF file")
    lib, why = _native_lib.load_kernel([path], "X", "gj_x_version", 1)
    assert lib is None and why.startswith(f"{path} failed to load")


@pytest.mark.skipif(not _native.available(), reason=_native.reason())
def test_another_kernel_version_is_refused() -> None:
    path = Path(_native.reason().removeprefix("loaded "))
    lib, why = _native_lib.load_kernel([path], "BP", "gj_bp_version", 10**6)
    assert lib is None and "this package needs 1000000: rebuild it" in why
    lib, why = _native_lib.load_kernel([path], "LM", "gj_lm_version", 1)  # not the LM kernel
    assert lib is None and "failed to load" in why and "gj_lm_version" in why
