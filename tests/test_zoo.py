"""The one model loader (genjscc.zoo.load) and the one writer (genjscc.zoo.export)."""

from __future__ import annotations

from importlib import resources

import pytest
import torch
import yaml

from genjscc import zoo
from genjscc.core.ecct.model import ECCT, ECCTConfig, save_ecct
from genjscc.core.fec.codes import get_code
from genjscc.core.jscc.model import DeepJSCC
from genjscc.errors import GenjsccError


def test_naming_rules() -> None:
    assert zoo.model_name("ecct", "POLAR_N64_K32") == "ecct-polar_n64_k32"
    assert zoo.model_name("jscc", "1/6") == "jscc-r1_6"
    assert zoo.model_name("lm", "small") == "lm-small"
    with pytest.raises(GenjsccError, match="unknown model kind 'nope'"):
        zoo.model_name("nope", "x")


def test_load_each_kind_by_zoo_name() -> None:
    ecct = zoo.load("ecct-polar_n64_k32", "ecct")
    assert isinstance(ecct, ECCT) and ecct.n == 64 and not ecct.training
    assert isinstance(zoo.load("jscc-r1_6", "jscc"), DeepJSCC)
    lm = zoo.load("small", "lm")  # an alias of lm-small
    assert lm.model_id == "lm-small"
    assert lm.weights_sha256 == zoo.get_model("lm-small").sha256


def test_resolve_errors_say_what_to_use(tmp_path) -> None:
    with pytest.raises(zoo.ZooError, match="is a jscc model, not a ecct model"):
        zoo.resolve("jscc-r1_6", "ecct")
    with pytest.raises(zoo.ZooError, match=r"unknown model 'nope'.*ecct-polar_n64_k32"):
        zoo.resolve("nope", "ecct")
    with pytest.raises(ValueError, match="does not exist"):  # ZooError is a ValueError too
        zoo.load(tmp_path / "missing.safetensors", "ecct")
    if not torch.cuda.is_available():
        with pytest.raises(zoo.ZooError, match=r"device 'cuda'.*device='cpu'"):
            zoo.load("ecct-polar_n64_k32", "ecct", "cuda")


def test_a_file_is_named_by_its_file_name_and_hash(tmp_path) -> None:
    torch.manual_seed(0)
    model = ECCT(get_code("POLAR_N64_K32").H, ECCTConfig(num_layers=1, d_model=8, num_heads=2))
    path = tmp_path / "mine.safetensors"
    save_ecct(model, path)
    ref = zoo.resolve(str(path), "ecct")
    assert (ref.name, ref.in_zoo, ref.sha256) == ("file:mine.safetensors", False,
                                                 zoo.sha256_file(path))
    assert torch.equal(zoo.load(ref, "ecct").H, model.H)


def test_export_writes_weights_card_and_manifest_one_way(tmp_path) -> None:
    root = tmp_path / "zoo"
    root.mkdir()
    (root / "manifest.yml").write_text(
        resources.files("genjscc.zoo").joinpath("manifest.yml").read_text())
    before = yaml.safe_load((root / "manifest.yml").read_text())["models"]
    torch.manual_seed(0)
    model = ECCT(get_code("POLAR_N64_K32").H, ECCTConfig(num_layers=1, d_model=8, num_heads=2))
    entry = zoo.export("ecct-test", "ecct", lambda p: save_ecct(model, p),
                       lambda p, sha: f"# ecct-test\n\n{p.name} {sha}\n",
                       description="a test model", zoo_dir=root)
    weights = root / "weights" / "ecct-test.safetensors"
    assert entry.sha256 == zoo.sha256_file(weights) and entry.file == weights.name
    assert (root / "ecct-test.md").read_text() == f"# ecct-test\n\n{weights.name} {entry.sha256}\n"
    text = (root / "manifest.yml").read_text()
    assert text.startswith("# The model zoo")  # the leading comments are kept
    after = yaml.safe_load(text)["models"]
    assert after[:-1] == before and after[-1]["name"] == "ecct-test"
    # again: the entry is replaced, not added twice
    zoo.export("ecct-test", "ecct", lambda p: save_ecct(model, p), "# card\n",
               description="again", zoo_dir=root)
    again = yaml.safe_load((root / "manifest.yml").read_text())["models"]
    assert [m["name"] for m in again].count("ecct-test") == 1
    assert again[-1]["description"] == "again"
    # replacing a shipped entry keeps its place and rewrites nothing else
    first = zoo.ModelEntry(**before[0])
    text = (root / "manifest.yml").read_text()
    zoo.register_model(first, root / "manifest.yml")
    assert (root / "manifest.yml").read_text() == text
    assert torch.equal(zoo.load(weights, "ecct").H, model.H)
