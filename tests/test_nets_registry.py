"""Style registry: round trip, names, safetensors only (pickles refused, never unpickled), damage caught."""
import json
import os
import pickle
import stat

import pytest
import torch
from safetensors.torch import load_file, save_file

from nets_media import one_torch_thread  # noqa: F401 (autouse fixture)
from nets import registry
from nets.registry import StyleError
from nets.transformer_net import build


@pytest.fixture
def folder(tmp_path):
    torch.manual_seed(0)
    net = build("lite")
    registry.register(net, "lite", "probe", tmp_path, painting="Probe", artist="Nobody", year="2024",
                      licence="CC0", recipe={"steps": 1}, metrics={"val_style": 0.5, "val_content": 0.25})
    return tmp_path


def _manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def _write_manifest(folder, data):
    (folder / "manifest.json").write_text(json.dumps(data))


def test_round_trip(tmp_path):
    torch.manual_seed(0)
    net = build("lite").eval()
    entry = registry.register(net, "lite", "probe", tmp_path, painting="Probe", artist="Nobody",
                              metrics={"val_style": 0.5})
    assert registry.list_styles(tmp_path) == ["lite.probe"]
    info = registry.info("lite.probe", tmp_path)
    assert (info.name, info.file, info.sha256) == (entry.name, entry.file, entry.sha256)
    assert info.painting == "Probe" and info.metrics == {"val_style": 0.5}
    assert info.sha256 == registry.sha256(tmp_path / info.file)
    assert registry.info("probe", tmp_path).name == "lite.probe"  # bare painting name, one arch
    loaded = registry.load("lite.probe", tmp_path)
    assert not loaded.training and loaded.config == net.config
    for k, v in net.state_dict().items():  # stored as fp16
        assert torch.equal(loaded.state_dict()[k], v.half().float()), k
    x = torch.rand(1, 3, 32, 40)
    with torch.no_grad():
        assert (loaded(x) - net(x)).abs().max() < 1e-2


def test_register_replaces_and_sorts(folder):
    registry.register(build("full"), "full", "probe", folder)
    registry.register(build("lite"), "lite", "another", folder)
    registry.register(build("lite"), "lite", "probe", folder)  # replace, not duplicate
    assert registry.list_styles(folder) == ["full.probe", "lite.another", "lite.probe"]
    with pytest.raises(StyleError, match=r"'probe' is registered as full\.probe and lite\.probe; name one"):
        registry.info("probe", folder)  # ambiguous bare name: spell the arch


def test_resolve_picks_full_on_cuda_and_lite_elsewhere(folder):
    registry.register(build("full"), "full", "probe", folder)
    registry.register(build("full"), "full", "only_full", folder)
    assert registry.resolve("probe", "cuda", folder) == "full.probe"
    assert registry.resolve("probe", "cuda:1", folder) == "full.probe"
    assert registry.resolve("probe", "cpu", folder) == "lite.probe"
    assert registry.resolve("only_full", "cpu", folder) == "full.only_full"  # the arch there is
    assert registry.resolve("full.probe", "cpu", folder) == "full.probe"  # a spelled arch as it is
    with pytest.raises(StyleError, match=r"Unknown style 'nope'\. Known styles: full\.only_full, full\.probe"):
        registry.resolve("nope", "cpu", folder)


def test_update_metrics_merges_and_keeps_the_rest(folder):
    before = registry.info("lite.probe", folder)
    registry.update_metrics("probe", {"quality": {"style_ratio": 1.2}}, folder)  # bare name resolves
    registry.update_metrics("lite.probe", {"quality": {"style_ratio": 1.1}, "note": "x"}, folder)
    after = registry.info("lite.probe", folder)
    assert after.metrics == {"val_style": 0.5, "val_content": 0.25, "quality": {"style_ratio": 1.1}, "note": "x"}
    assert (after.sha256, after.recipe, after.painting) == (before.sha256, before.recipe, before.painting)
    with pytest.raises(StyleError, match="Unknown style"):
        registry.update_metrics("lite.nothing", {}, folder)


def test_unknown_style_lists_known_names(folder, tmp_path_factory):
    with pytest.raises(StyleError, match=r"Unknown style 'nope'\. Known styles: lite\.probe\."):
        registry.load("nope", folder)
    with pytest.raises(StyleError, match="none"):
        registry.info("nope", tmp_path_factory.mktemp("empty"))


def test_pickle_file_is_refused_and_never_unpickled(folder, tmp_path):
    marker = tmp_path / "unpickled"

    class Payload:  # unpickling this would create `marker`
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = folder / "lite.probe.pt"
    evil.write_bytes(pickle.dumps({"conv1": Payload()}))
    data = _manifest(folder)
    data["styles"]["lite.probe"] |= {"file": evil.name, "sha256": registry.sha256(evil)}
    _write_manifest(folder, data)
    with pytest.raises(StyleError, match="pickle"):
        registry.load("lite.probe", folder)
    with pytest.raises(StyleError, match="pickle"):
        registry.load_state(evil)
    assert not marker.exists()
    torch.save(build("lite").state_dict(), folder / "real.pth")  # an ordinary torch checkpoint too
    with pytest.raises(StyleError, match="only .safetensors"):
        registry.load_state(folder / "real.pth")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_safetensors_refused(folder, damage):
    path = folder / "lite.probe.safetensors"
    path.write_bytes(b"\x07" * 64 if damage == "garbage" else path.read_bytes()[:1000])
    data = _manifest(folder)
    data["styles"]["lite.probe"]["sha256"] = registry.sha256(path)  # the hash agrees: the format must fail
    _write_manifest(folder, data)
    with pytest.raises(StyleError, match="not a valid safetensors") as exc:
        registry.load("lite.probe", folder)
    assert "\n" not in str(exc.value)


def test_changed_file_fails_its_hash(folder):
    path = folder / "lite.probe.safetensors"
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(StyleError, match="sha256"):
        registry.load("lite.probe", folder)


def test_weights_must_fit_the_architecture(folder):
    data = _manifest(folder)
    data["styles"]["lite.probe"]["net"] = {"widths": [32, 64, 128], "blocks": 5, "separable": False,
                                           "stem_kernel": 9, "stem_stride": 1}
    _write_manifest(folder, data)
    with pytest.raises(StyleError, match="does not fit"):
        registry.load("lite.probe", folder)


def test_missing_weight_file(folder):
    (folder / "lite.probe.safetensors").unlink()
    with pytest.raises(StyleError, match="missing"):
        registry.load("lite.probe", folder)


def test_weights_dir_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLECAM_WEIGHTS", str(tmp_path))
    assert registry.weights_dir() == tmp_path and registry.list_styles() == []


def test_register_with_a_damaged_manifest_leaves_the_old_weights(folder):
    """register wrote the weights before reading the manifest: a damaged manifest left the new file in place
    and the old entry's sha256 broken."""
    path = folder / "lite.probe.safetensors"
    before = path.read_bytes()
    (folder / "manifest.json").write_text("{ damaged")
    with pytest.raises(StyleError, match="not valid JSON"):
        registry.register(build("lite"), "lite", "probe", folder)
    assert path.read_bytes() == before and not list(folder.glob("*.tmp"))


def test_a_tensor_of_the_wrong_shape_is_named_with_both_shapes(folder):
    """Only the first line of torch's message was kept: "... Error(s) in loading state_dict for TransformerNet:"."""
    path = folder / "lite.probe.safetensors"
    state = load_file(str(path))
    key = next(iter(build("lite").state_dict()))
    shape = list(state[key].shape)
    state[key] = torch.zeros(shape[0] * 2, *shape[1:], dtype=torch.float16)
    save_file(state, str(path))
    data = _manifest(folder)
    data["styles"]["lite.probe"]["sha256"] = registry.sha256(path)
    _write_manifest(folder, data)
    with pytest.raises(StyleError) as exc:
        registry.load("lite.probe", folder)
    assert f"does not fit the lite network: {key} is {[shape[0] * 2, *shape[1:]]} in the file, {shape} in the network" \
        in str(exc.value)


def test_registered_weights_get_the_usual_mode(folder):
    """safetensors' save_file creates 0600 files; the shipped weights are 0644 (0666 less the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((folder / "lite.probe.safetensors").stat().st_mode) == 0o666 & ~umask
