"""Deep JSCC core: model shapes and power, channels, the shipped weights, the separation
baseline (codecs, cliff, leveling, fallback), the evaluation and the jscc-eval / train jscc
commands."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import pytest
import torch

from genjscc.cli import main
from genjscc.core.jscc import (
    DeepJSCC,
    JSCCChannel,
    JSCCConfig,
    init_linear,
    load_jscc,
    load_model,
    model_name,
    parse_ratio,
    save_jscc,
)
from genjscc.core.jscc.evaluate import evaluate_schemes, pair_snrs
from genjscc.core.jscc.images import load_image, ms_ssim, psnr_db, sample_images
from genjscc.core.jscc.model import side_pattern, water_filling_gains
from genjscc.core.jscc.separation import FALLBACK_VALUE, SeparationLink
from genjscc.core.source.image_codecs import CODECS, decode_image, encode_to_budget
from genjscc.errors import GenjsccError
from genjscc.zoo import list_models


@pytest.fixture(scope="module")
def shipped():
    return load_model("jscc-r1_6")


@pytest.fixture(scope="module")
def crops():
    """Two held-out photographs (shipped samples), cropped to 96x128 to keep tests fast."""
    return [load_image(p)[:, :96, :128] for p in sample_images()[:2]]


# ---------------------------------------------------------------------------- the model

@pytest.mark.parametrize("ratio,channels", [("1/6", 64), ("1/12", 32), ("1/24", 16)])
def test_ratio_is_channel_uses_per_source_dimension(ratio, channels):
    model = DeepJSCC(JSCCConfig(ratio=ratio, channels=16, af_hidden=8))
    assert model.config.latent_channels == channels
    x = model.encode(torch.rand(2, 3, 64, 96), 5.0)
    assert x.shape == (2, int(3 * 64 * 96 * Fraction(ratio)))
    assert x.dtype == torch.complex64


def test_parse_ratio_refuses_bad_values():
    assert parse_ratio("1/6") == Fraction(1, 6)
    assert parse_ratio(1 / 12) == Fraction(1, 12)
    for bad in ("0", "2", "1/7", "abc", "1/0"):
        with pytest.raises(ValueError):
            parse_ratio(bad)


@pytest.mark.parametrize("height,width", [(512, 768), (768, 512), (37, 50)])
def test_any_size_round_trips_and_power_is_one_per_image(shipped, height, width):
    image = torch.rand(1, 3, height, width)
    with torch.no_grad():
        x = shipped.encode(image, torch.tensor([3.0]))
        assert x.shape[1] == shipped.num_symbols(height, width)
        energy = (x.abs() ** 2).mean(dim=1)
        torch.testing.assert_close(energy, torch.ones(1), rtol=1e-4, atol=1e-4)
        rec = shipped.decode(x, 3.0, height, width)
    assert rec.shape == image.shape
    assert float(rec.min()) >= 0 and float(rec.max()) <= 1
    hp, wp = shipped.padded_size(height, width)
    assert hp % 8 == 0 and wp % 8 == 0 and hp - height < 8 and wp - width < 8


@pytest.fixture(scope="module")
def linear_code(crops):
    """A hybrid model at its initialization (the linear PCA code) from two photographs."""
    model = DeepJSCC(JSCCConfig(arch="hybrid", channels=8, af_hidden=4)).eval()
    init_linear(model, crops)
    return model


def test_water_filling_spends_the_power_and_favours_strong_coefficients():
    var = torch.tensor([4.0, 1.0, 0.1, 0.001])
    for snr in (0.0, 20.0):
        g = water_filling_gains(var, snr)
        power = g**2 * var
        assert float(power.sum()) == pytest.approx(0.5 * len(var), rel=1e-3)
        assert power[0] > power[1] > power[3]
    # at 0 dB the weakest coefficient is left out (gain at the 1e-3 floor), at 20 dB it is sent
    low, high = water_filling_gains(var, 0.0), water_filling_gains(var, 20.0)
    assert float(low[3]) == pytest.approx(1e-3 * float(low.max()), rel=1e-3)
    assert float(high[3]) > 0.1


def test_hybrid_sends_the_normalization_gain_in_band(linear_code, crops):
    """Power normalization hides each image's contrast; the in-band value restores it."""
    img = crops[0]
    flat = 0.5 + 0.3 * (img - 0.5)  # the same photograph at 30 % contrast
    with torch.no_grad():
        x = linear_code.encode(torch.stack([img, flat]), 40.0)
        torch.testing.assert_close((x.abs() ** 2).mean(dim=1), torch.ones(2))
        rec = linear_code.decode(x, 40.0, *img.shape[1:])  # (nearly) noiseless
        hp, wp = linear_code.padded_size(*img.shape[1:])
        z = torch.stack([x.real, x.imag], dim=2).reshape(2, -1, hp // 8, wp // 8)
        p = side_pattern(*z.shape[1:])
        side = (z * p).mean(dim=(1, 2, 3), keepdim=True)
        # the low-contrast image's symbols with the other image's in-band value
        swapped = (z[1:] - side[1:] * p + side[:1] * p).reshape(1, -1)
        wrong = linear_code.decode(torch.complex(swapped[:, 0::2], swapped[:, 1::2]), 40.0,
                                   *img.shape[1:])
    assert float(side[1]) < float(side[0]) - 0.05  # lower contrast, smaller RMS, sent in-band
    for ref, out in ((img, rec[0]), (flat, rec[1])):
        assert float(psnr_db(ref, out)) > 40  # each at its own contrast
    assert float(psnr_db(flat, wrong[0])) < 25  # without its own gain the contrast is wrong


def test_hybrid_is_snr_adaptive_any_size_and_round_trips(linear_code, crops, tmp_path):
    gen = torch.Generator().manual_seed(0)
    ch = JSCCChannel("awgn")
    psnr = {}
    with torch.no_grad():
        for snr in (0.0, 10.0, 20.0):
            y, s = ch(linear_code.encode(crops[1][None], snr), snr, gen)
            psnr[snr] = float(psnr_db(crops[1], linear_code.decode(y, s, 96, 128)))
        odd = torch.rand(1, 3, 37, 50)
        rec = linear_code.decode(linear_code.encode(odd, 5.0), 5.0, 37, 50)
    assert psnr[0.0] + 3 < psnr[10.0] < psnr[20.0] - 3  # keeps using a better channel
    assert rec.shape == odd.shape and 0 <= float(rec.min()) <= float(rec.max()) <= 1
    save_jscc(linear_code, tmp_path / "h.safetensors")
    again = load_jscc(tmp_path / "h.safetensors")
    assert again.config.arch == "hybrid"
    torch.testing.assert_close(again.encode(crops[1][None], 3.0),
                               linear_code.encode(crops[1][None], 3.0))
    with pytest.raises(ValueError, match="arch"):
        JSCCConfig(arch="transformer")


def test_decode_checks_its_input(shipped):
    with pytest.raises(ValueError, match="needs"):
        shipped.decode(torch.zeros(1, 10, dtype=torch.complex64), 0.0, 64, 64)
    with pytest.raises(ValueError, match="complex"):
        shipped.decode(torch.zeros(1, 2048), 0.0, 64, 64)
    with pytest.raises(ValueError, match="image"):
        shipped.encode(torch.zeros(1, 1, 64, 64), 0.0)
    with pytest.raises(ValueError, match="snr_db"):
        shipped.encode(torch.zeros(2, 3, 64, 64), torch.tensor([1.0, 2.0, 3.0]))


def test_save_load_round_trip(tmp_path):
    model = DeepJSCC(JSCCConfig(ratio="1/12", channels=8, af_hidden=4)).eval()
    save_jscc(model, tmp_path / "m.safetensors", {"note": "test"})
    again = load_jscc(tmp_path / "m.safetensors")
    x = torch.rand(1, 3, 32, 40)
    torch.testing.assert_close(model.encode(x, 1.0), again.encode(x, 1.0))
    (tmp_path / "bad.safetensors").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_jscc(tmp_path / "bad.safetensors")
    with pytest.raises(GenjsccError, match="unknown model"):
        load_model("jscc-nope")


# ---------------------------------------------------------------------------- channels

def test_awgn_channel_noise_matches_snr():
    x = torch.ones(4, 20000, dtype=torch.complex64)
    y, snr_rx = JSCCChannel("awgn")(x, torch.tensor([0.0, 10.0, 0.0, 10.0]),
                                    torch.Generator().manual_seed(0))
    n0 = ((y - x).abs() ** 2).mean(1)
    torch.testing.assert_close(n0, torch.tensor([1.0, 0.1, 1.0, 0.1]), rtol=0.05, atol=0)
    assert snr_rx.tolist() == [0.0, 10.0, 0.0, 10.0]


def test_rayleigh_channel_reports_effective_snr():
    x = torch.ones(2000, 64, dtype=torch.complex64)
    y, snr_rx = JSCCChannel("rayleigh")(x, 10.0, torch.Generator().manual_seed(1))
    # after zero-forcing the noise of each image is N0 / |h|^2 = 10^(-snr_rx / 10)
    err = ((y - x).abs() ** 2).mean(1)
    ratio = err / 10 ** (-snr_rx / 10)
    assert 0.9 < float(ratio.median()) < 1.1
    # E|h|^2 = 1: the mean effective SNR in linear terms is the average SNR
    assert abs(float((10 ** (snr_rx / 10)).mean()) / 10.0 - 1) < 0.1
    with pytest.raises(ValueError):
        JSCCChannel("rician")


# ---------------------------------------------------------------------------- shipped weights

SHIPPED_JSCC = sorted(m.name for m in list_models() if m.kind == "jscc")


def test_every_ratio_of_the_issue_ships():
    assert {"jscc-r1_6", "jscc-r1_12", "jscc-r1_24"} <= set(SHIPPED_JSCC)


@pytest.mark.parametrize("name", SHIPPED_JSCC)
def test_shipped_model_is_snr_adaptive_and_better_than_gray(name, crops):
    shipped = load_model(name)
    assert model_name(str(shipped.ratio)) == name
    gen = torch.Generator().manual_seed(0)
    ch = JSCCChannel("awgn")
    psnr = {}
    with torch.no_grad():
        for snr in (0.0, 10.0):
            values = []
            for img in crops:
                y, s = ch(shipped.encode(img[None], snr), snr, gen)
                values.append(float(psnr_db(img, shipped.decode(y, s, *img.shape[1:]))))
            psnr[snr] = sum(values) / len(values)
    gray = sum(float(psnr_db(img, torch.full_like(img, 0.5))) for img in crops) / len(crops)
    assert psnr[0.0] > gray + 8
    assert psnr[10.0] > psnr[0.0]


# ---------------------------------------------------------------------------- codecs

@pytest.mark.parametrize("codec", CODECS)
def test_codec_fits_budget_and_decodes(codec, crops):
    img = crops[0]
    enc = encode_to_budget(img, codec, 1500)
    assert enc is not None and len(enc.data) <= 1500
    rec = decode_image(enc.data, codec)
    assert rec.shape == img.shape
    assert float(psnr_db(img, rec)) > 18
    bigger = encode_to_budget(img, codec, 6000)
    assert float(psnr_db(img, decode_image(bigger.data, codec))) > float(psnr_db(img, rec))
    with pytest.raises(GenjsccError):
        decode_image(enc.data[: len(enc.data) // 2] + b"\0" * 7, codec) if codec != "jpeg" \
            else decode_image(b"garbage", codec)


def test_codec_returns_none_when_nothing_fits(crops):
    assert encode_to_budget(crops[0], "jpeg", 50) is None


# ---------------------------------------------------------------------------- separation

@pytest.fixture(scope="module")
def jpeg_link():
    return SeparationLink("jpeg", margin_db=1.0)


def test_separation_uses_the_same_budget_and_energy(jpeg_link, crops):
    img = crops[0]
    k = DeepJSCC.padded_size(*img.shape[1:])
    num_symbols = 3 * k[0] * k[1] // 6
    plan = jpeg_link.plan(num_symbols, 10.0)
    enc = jpeg_link.source_code(img, plan)
    x = jpeg_link.modulate(len(enc.data).to_bytes(4, "big") + enc.data, plan)
    assert x.shape == (num_symbols,)
    assert abs(float((x.abs() ** 2).mean()) - 1.0) < 0.05
    assert len(enc.data) <= plan.max_file_bytes


def test_separation_cliff_and_leveling(jpeg_link, crops):
    img = crops[0]
    num_symbols = 3 * 96 * 128 // 6
    gen = torch.Generator().manual_seed(3)
    matched = jpeg_link.send(img, num_symbols, 10.0, 10.0, generator=gen)
    above = jpeg_link.send(img, num_symbols, 10.0, 16.0, generator=gen)
    below = jpeg_link.send(img, num_symbols, 10.0, 6.0, generator=gen)
    genie = jpeg_link.send(img, num_symbols, 16.0, 16.0, generator=gen)
    assert not matched.failed and not above.failed
    # leveling: above the estimate the same MCS, file and picture
    assert above.mcs_index == matched.mcs_index and above.file_bytes == matched.file_bytes
    assert torch.equal(above.image, matched.image)
    assert genie.mcs_index > matched.mcs_index
    assert float(psnr_db(img, genie.image)) > float(psnr_db(img, above.image))
    # cliff: below the estimate the blocks fail and the image falls back to mid-gray
    assert below.failed and below.reason == "crc" and below.block_errors > 0
    assert torch.all(below.image == FALLBACK_VALUE)


def test_separation_no_fit_is_a_counted_failure(crops):
    link = SeparationLink("jpeg")
    res = link.send(crops[0][:, :64, :64], 600, -8.0, -8.0)
    assert res.failed and res.reason == "no_fit"
    with pytest.raises(ValueError, match="at least"):
        link.plan(100, 0.0)
    with pytest.raises(ValueError, match="codec"):
        SeparationLink("bpg")


# ---------------------------------------------------------------------------- evaluation

def test_pair_snrs():
    assert pair_snrs([0, 5], None) == [(0.0, 0.0), (5.0, 5.0)]
    assert pair_snrs([0, 5], [3]) == [(0.0, 3.0), (5.0, 3.0)]
    assert pair_snrs([0, 5], [1, 2]) == [(0.0, 1.0), (5.0, 2.0)]
    with pytest.raises(ValueError):
        pair_snrs([0, 5], [1, 2, 3])


def test_evaluate_schemes_rows(shipped, crops, jpeg_link):
    points, kept = evaluate_schemes(crops, [4.0, 12.0], shipped, [12.0], separation=[jpeg_link])
    assert [(p.scheme, p.snr_db) for p in points] == [
        ("jscc", 4.0), ("separation-jpeg", 4.0), ("jscc", 12.0), ("separation-jpeg", 12.0)]
    sep_low = points[1]
    assert sep_low.failures == len(crops)  # 8 dB below the estimate: every image lost
    assert points[0].psnr_db > sep_low.psnr_db + 2  # JSCC degrades gracefully
    assert all(0 < p.ms_ssim <= 1 for p in points)
    assert math.isclose(points[0].ebno_db, 4.0 - 10 * math.log10(48), abs_tol=1e-6)
    assert ("jscc", 4.0, 12.0) in kept


def test_ms_ssim_small_images():
    a = torch.rand(1, 3, 40, 48)
    assert float(ms_ssim(a, a)) == pytest.approx(1.0, abs=1e-5)


# ---------------------------------------------------------------------------- commands

def test_jscc_eval_json_plot_grid(tmp_path, capsys):
    from genjscc.core.jscc.images import save_image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, p in enumerate(sample_images()[:2]):
        save_image(load_image(p)[:, :64, :96], folder / f"{i}.png")
    status = main(["jscc-eval", "--images", str(folder), "--snr=-1,9", "--estimated-snr", "9",
                   "--codec", "jpeg", "--json", "--plot", str(tmp_path / "p.png"),
                   "--grid", str(tmp_path / "g.png")])
    assert status == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 4
    for key in ("scheme", "snr_db", "estimated_snr_db", "ratio", "psnr_db", "ms_ssim",
                "failures", "images"):
        assert key in rows[0]
    assert {r["scheme"] for r in rows} == {"jscc", "separation-jpeg"}
    assert rows[0]["ratio"] == "1/6" and rows[0]["images"] == 2
    assert (tmp_path / "p.png").stat().st_size > 1000
    assert (tmp_path / "g.png").stat().st_size > 1000


@pytest.mark.parametrize("argv,message", [
    (["--snr", "a,b"], "not a number"),
    (["--snr", "0,1", "--estimated-snr", "1,2,3"], "estimated"),
    (["--snr", "0", "--ratio", "1/12", "--model", "jscc-r1_6"], "ratio"),
    (["--snr", "0", "--backend", "tcp://127.0.0.1:1"], "cannot connect"),  # no server there
])
def test_jscc_eval_user_errors(tmp_path, capsys, argv, message):
    from genjscc.core.jscc.images import save_image

    save_image(torch.rand(3, 32, 32), tmp_path / "a.png")
    status = main(["jscc-eval", "--images", str(tmp_path), *argv])
    assert status == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_jscc_eval_missing_folder(tmp_path, capsys):
    assert main(["jscc-eval", "--images", str(tmp_path / "none"), "--snr", "0"]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_train_jscc_runs_resumes_and_exports(tmp_path, capsys):
    from genjscc.core.jscc.images import save_image

    for split in ("train", "test"):
        (tmp_path / "data" / split).mkdir(parents=True)
        for i in range(2):
            save_image(torch.rand(3, 40, 48), tmp_path / "data" / split / f"{i}.png")
    common = ["train", "jscc", "--data", str(tmp_path / "data"), "--channels", "8",
              "--batch", "2", "--crop", "32", "--valid-every", "2", "--checkpoint-every", "2",
              "--out", str(tmp_path / "run"), "--no-register", "--ratio", "1/12"]
    assert main([*common, "--steps", "3"]) == 0
    assert main([*common, "--steps", "5", "--resume", "--lr", "5e-4"]) == 0
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["state"]
    assert state["step"] == 5 and len(state["resumed"]) == 1
    assert state["args"]["lr"] == 5e-4  # the card describes the schedule in force
    lines = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["step"] == 5
    model = load_jscc(tmp_path / "run" / "model.safetensors")
    assert model.ratio == Fraction(1, 12) and model_name("1/12") == "jscc-r1_12"
    assert main([*common[:2], "--data", str(tmp_path / "nothing"), "--out",
                 str(tmp_path / "r2")]) == 2


def test_train_jscc_hybrid_starts_from_the_linear_code(tmp_path):
    from genjscc.core.jscc.images import save_image

    for split in ("train", "test"):
        (tmp_path / "data" / split).mkdir(parents=True)
        for i, path in enumerate(sample_images()[:2]):
            save_image(load_image(path)[:, :64, :64], tmp_path / "data" / split / f"{i}.png")
    common = ["train", "jscc", "--data", str(tmp_path / "data"), "--channels", "8",
              "--batch", "2", "--crop", "32", "--valid-every", "2", "--out",
              str(tmp_path / "run"), "--no-register", "--arch", "hybrid", "--loss", "psnr"]
    assert main([*common, "--steps", "2"]) == 0
    model = load_jscc(tmp_path / "run" / "model.safetensors")
    assert model.config.arch == "hybrid"
    line = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[-1])
    assert line["valid_psnr_10db"] > line["valid_psnr_0db"] + 3  # a linear code already
    assert main([*common, "--steps", "3", "--resume", "--arch", "gdn"]) == 2  # not this run's
