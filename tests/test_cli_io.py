"""Where `genjscc compress` (and decompress: the same write_output) writes: regular files
atomically, devices, FIFOs and stdout written through, symlinks followed, write errors as one
line; and the --chunk argument."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

TEXT = b"hi there"  # a few symbols: the LM steps one symbol at a time


def genjscc(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "genjscc.cli", *args], capture_output=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("src") / "in.txt"
    path.write_bytes(TEXT)
    return path


@pytest.fixture(scope="module")
def container(source: Path) -> bytes:
    """The container `genjscc compress` writes into a new regular file."""
    out = source.parent / "ref.gjz"
    result = genjscc("compress", "-q", str(source), str(out))
    assert result.returncode == 0, result.stderr.decode()
    return out.read_bytes()


def compress_to(source: Path, out: Path) -> subprocess.CompletedProcess[bytes]:
    return genjscc("compress", "-q", str(source), str(out))


def char_device(tmp_path: Path, name: str, minor: int) -> Path:
    """A character device node like /dev/null (minor 3) or /dev/full (7) in ``tmp_path``, so
    that a write that replaced it would not damage the machine's /dev; the real one where
    this process may not make device nodes (then a replace would fail on /dev's permissions
    instead, and the test still tells the outcomes apart)."""
    path = tmp_path / name
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    except PermissionError:
        return Path("/dev") / name
    return path


def test_a_full_device_gives_one_line_and_a_failure(tmp_path: Path, source: Path) -> None:
    full = char_device(tmp_path, "full", 7)
    result = compress_to(source, full)
    err = result.stderr.decode()
    assert result.returncode != 0
    assert "No space left on device" in err and len(err.strip().splitlines()) == 1, err
    assert stat.S_ISCHR(os.stat(full).st_mode)


def test_the_null_device_stays_a_device(tmp_path: Path, source: Path) -> None:
    null = char_device(tmp_path, "null", 3)
    result = compress_to(source, null)
    assert result.returncode == 0, result.stderr.decode()
    assert stat.S_ISCHR(os.stat(null).st_mode)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_fifo_gets_the_data(tmp_path: Path, source: Path, container: bytes) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    result = compress_to(source, fifo)
    reader.join(timeout=30)
    assert result.returncode == 0, result.stderr.decode()
    assert got == [container]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_symlink_is_followed_and_kept(tmp_path: Path, source: Path,
                                         container: bytes) -> None:
    target = tmp_path / "real.txt"
    target.write_bytes(b"old contents")
    target.chmod(0o640)
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    result = compress_to(source, link)
    assert result.returncode == 0, result.stderr.decode()
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes() == container
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640  # the old file's mode is kept


def test_a_regular_file_is_replaced_whole(tmp_path: Path, source: Path,
                                           container: bytes) -> None:
    out = tmp_path / "out.txt"
    out.write_bytes(b"x" * 100_000)
    result = compress_to(source, out)
    assert result.returncode == 0, result.stderr.decode()
    assert out.read_bytes() == container
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


@pytest.mark.parametrize("chunk", ["0", "-5"])
def test_compress_refuses_a_chunk_size_below_one(tmp_path: Path, chunk: str) -> None:
    src = tmp_path / "in.txt"
    src.write_bytes(b"hello")
    result = genjscc("compress", "-q", str(src), str(tmp_path / "out.gjz"), "--chunk", chunk)
    err = result.stderr.decode()
    assert result.returncode == 2 and "--chunk" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out.gjz").exists()
