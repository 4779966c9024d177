"""Deep JSCC behind `genjscc serve` (a real server process on 127.0.0.1): the remote encoder
and decoder give the local model's symbols and images, bad requests get error replies, and
`genjscc jscc-eval --backend` reports what a local run reports."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genjscc.cli import main
from genjscc.core.jscc import load_model
from genjscc.core.jscc.images import load_image, sample_images, save_image
from genjscc.serve.client import InvalidInput
from genjscc.serve.jscc import RemoteJSCC
from serve_helpers import ServerProcess


@pytest.fixture(scope="module")
def server():
    with ServerProcess("--models", "jscc-r1_6", "--workers", "1") as proc:
        yield proc


def test_remote_equals_local(server):
    local = load_model("jscc-r1_6")
    remote = RemoteJSCC(server.endpoint, "jscc-r1_6", timeout_s=30.0)
    image = load_image(sample_images()[0])[None, :, :64, :96]
    with torch.no_grad():
        x_local = local.encode(image, 5.0)
        rec_local = local.decode(x_local, 5.0, 64, 96)
    x_remote = remote.encode(image, torch.tensor([5.0]))
    assert remote.num_symbols(64, 96) == x_local.shape[1]
    torch.testing.assert_close(x_remote, x_local, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(remote.decode(x_local, 5.0, 64, 96), rec_local, rtol=1e-5,
                               atol=1e-5)
    with pytest.raises(InvalidInput):
        remote.decode(x_local[:, :10], 5.0, 64, 96)  # wrong symbol count
    with pytest.raises(InvalidInput):
        remote._encode(np.zeros((1, 1, 8, 8), np.float32), snr_db=1.0)  # not RGB
    # the server is still serving
    torch.testing.assert_close(remote.encode(image, 5.0), x_local, rtol=1e-5, atol=1e-5)


def test_jscc_eval_backend_matches_local(server, tmp_path, capsys):
    save_image(load_image(sample_images()[1])[:, :64, :64], tmp_path / "a.png")
    common = ["jscc-eval", "--images", str(tmp_path), "--snr", "3", "--scheme", "jscc", "--json"]
    assert main(common) == 0
    local = json.loads(capsys.readouterr().out)
    assert main([*common, "--backend", server.endpoint]) == 0
    remote = json.loads(capsys.readouterr().out)
    assert remote[0]["psnr_db"] == pytest.approx(local[0]["psnr_db"], abs=0.01)


def test_jscc_requests_over_the_work_cap_are_refused_before_any_work():
    """A 1 s cap at 4e-4 ms per pixel value: one 1024x1024 image (3.1 M values, about 1.3 s)
    is refused at once, encoded or decoded; one 64x64 image still goes through."""
    with ServerProcess("--models", "jscc-r1_6", "--workers", "1", "--max-request-ms", "1000",
                       "--slice-ms", "250") as server:
        remote = RemoteJSCC(server.endpoint, "jscc-r1_6", timeout_s=30.0)
        from genjscc.serve.client import ServerError

        with pytest.raises(ServerError, match="estimated") as info:
            remote._encode(np.zeros((1, 3, 1024, 1024), np.float32), snr_db=1.0)
        assert info.value.code == "too_large"
        k = remote.num_symbols(1024, 1024)
        with pytest.raises(ServerError, match="estimated") as info:
            remote._decode(np.zeros((1, k), np.complex64), snr_db=1.0, height=1024,
                           width=1024)
        assert info.value.code == "too_large"
        image = torch.rand(1, 3, 64, 64)
        assert remote.encode(image, 5.0).shape == (1, remote.num_symbols(64, 64))
