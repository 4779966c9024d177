"""The genjscc command: help, version, models, and one-line errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from genjscc import __version__


def genjscc(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "genjscc.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_help_lists_commands() -> None:
    result = genjscc("--help")
    assert result.returncode == 0
    for command in ("demo", "models"):
        assert command in result.stdout


def test_version() -> None:
    result = genjscc("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"genjscc {__version__}"


def test_models_json_is_valid() -> None:
    result = genjscc("models", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert isinstance(rows, list)
    assert all(row["status"] == "ok" for row in rows), rows


def test_unknown_command_fails_cleanly() -> None:
    result = genjscc("no-such-command")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("kind", ["lm", "jscc"])
def test_train_without_data_says_what_to_pass(kind, monkeypatch, capsys):
    """Training data is never a built-in path: no --data and no $GENJSCC_DATA is a clear error."""
    from genjscc.cli import main

    monkeypatch.delenv("GENJSCC_DATA", raising=False)
    assert main(["train", kind, "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "pass --data DIR, or set GENJSCC_DATA" in err and "Traceback" not in err
