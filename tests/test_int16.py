"""Float graph -> int16 graph (lic2cpp.int16): where the shifts come from, the worst-case rule,
and the quantized decoder against PyTorch (the float model, and the fake-quantized training
forward of `lic2cpp train --int16`)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import GDN_CKPT, KODAK, PHOTOS, RELU_CKPT
from PIL import Image

from lic2cpp import fixedpoint as fx
from lic2cpp import int16, qat
from lic2cpp.cli import main as cli_main
from lic2cpp.convert import convert_model
from lic2cpp.errors import LicError
from lic2cpp.load import load_model
from lic2cpp.modelformat import ModelFile, Node, decode_licm, encode_licm, read_licm


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def photo_patches(count: int, size: int) -> np.ndarray:
    """Small crops of training photos (never Kodak)."""
    out = []
    for path in sorted(PHOTOS.glob("*.png"))[:count]:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
        out.append(rgb[100:100 + size, 200:200 + size])
    return np.stack(out)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, ModelFile]:
    """A tiny model from `lic2cpp train --int16` (a few steps), its float g_s graph."""
    from lic2cpp.train import TrainConfig, train

    folder = tmp_path_factory.mktemp("trained")
    images = folder / "photos"
    images.mkdir()
    for src in sorted(PHOTOS.glob("*.png"))[:4]:
        with Image.open(src) as im:
            im.convert("RGB").resize((144, 96), Image.LANCZOS).save(images / src.name)
    torch.manual_seed(0)
    cfg = TrainConfig(images=str(images), out_dir=str(folder / "run"), n=8, m=12,
                      patch_size=32, batch_size=4, steps=12, lr=2e-3, warmup=2, val_count=1,
                      val_every=12, val_size=64, log_every=6, save_every=6, seed=3,
                      settle_steps=20, int16=True)
    path = Path(train(cfg, progress=False))
    net = load_model(path)
    _, gs = convert_model(net, folder / "licm")
    return path, net, read_licm(gs)


def s16_nodes(model: ModelFile, op: str) -> list[Node]:
    return [n for n in model.nodes if n.op == op]


# ------------------------------------------------------------------------------ trained

def test_trained_quantizers_are_used_and_only_lowered_when_needed(trained) -> None:
    path, net, float_gs = trained
    ckpt = torch.load(path, weights_only=False)
    model, report = int16.int16_synthesis(net, float_gs, checkpoint=path)
    assert report.source.startswith("trained")
    acts = ckpt["quant_act"]
    assert model.nodes[0].op == "quantize" and model.nodes[0].attrs["shift"] == acts[0]
    convs = s16_nodes(model, "s16_conv_transpose2d")
    assert [c.attrs["out_shift"] for c in convs] == acts[1:]
    layer = ckpt["quant_layer"]
    float_convs = [n for n in float_gs.nodes if n.op == "conv_transpose2d"]
    s_in = acts[0]
    for k, (conv, ref) in enumerate(zip(convs, float_convs, strict=True)):
        s_w, s_b = layer[2 * k], layer[2 * k + 1]
        lowered = s_w - conv.attrs["weight_shift"]
        assert lowered == report.nodes[1 + k].lowered_bits >= 0
        w = conv.tensors["weight"]
        if lowered == 0:  # the checkpoint's grid values, exactly
            assert np.array_equal(w, np.asarray(ref.tensors["weight"], np.float64) * 2.0**s_w)
        else:  # one bit finer would break the int32 worst case
            finer = fx.quantize_weights(ref.tensors["weight"], conv.attrs["weight_shift"] + 1)
            n = s_in + conv.attrs["weight_shift"] + 1 - conv.attrs["out_shift"]
            b = int16._bias_at(fx.quantize_weights(ref.tensors["bias"], s_b), s_b,
                               s_in + conv.attrs["weight_shift"] + 1)
            lo = 0 if k else -32768
            assert not fx.fits_int32(fx.conv_worst_case(
                finer, b + fx.rounding_constant(n), lo, 32767, True, (2, 2)))
        s_acc = s_in + conv.attrs["weight_shift"]
        bias16 = np.asarray(ref.tensors["bias"], np.float64) * 2.0**s_b
        assert np.array_equal(bias16, np.round(bias16))  # the checkpoint's bias is on its grid
        assert np.array_equal(conv.tensors["bias"], int16._bias_at(bias16.astype(np.int64),
                                                                    s_b, s_acc))
        s_in = conv.attrs["out_shift"]


def fake_quant_synthesis(net, ckpt, y_hat: torch.Tensor) -> torch.Tensor:
    """The training-time forward (qat.py) recomputed from the checkpoint's shifts."""
    acts = iter(ckpt["quant_act"])
    x = qat.snap(y_hat, next(acts))
    for layer in net.g_s:
        if isinstance(layer, torch.nn.ConvTranspose2d):
            x = qat.snap(layer(x), next(acts))
        else:
            x = torch.relu(x)
    return x


def test_int16_decoder_follows_the_fake_quantized_training_forward(trained) -> None:
    path, net, float_gs = trained
    ckpt = torch.load(path, weights_only=False)
    model, report = int16.int16_synthesis(net, float_gs, checkpoint=path)
    patches = photo_patches(2, 64)
    y_hat = int16.codec_latents(net, patches, int16.latent_means(net, patches))
    with torch.no_grad():
        want = fake_quant_synthesis(net, ckpt, torch.from_numpy(y_hat).permute(0, 3, 1, 2))
    want = want.permute(0, 2, 3, 1).numpy()
    out_shift = model.nodes[-2].attrs["out_shift"]
    for yh, w in zip(y_hat, want, strict=True):
        got = fx.run_reference(model, yh)
        # one LSB of the output grid, plus what lowered weight shifts change
        lowered = sum(r.lowered_bits for r in report.nodes)
        tol = 2.0**-out_shift * (1.5 if lowered == 0 else 64)
        assert np.abs(got - w).max() <= tol
        assert np.mean(got == w) > (0.95 if lowered == 0 else 0.2)


# ------------------------------------------------------------------------------ upstream dict

def test_upstream_quantizers_dict_and_file(trained, tmp_path: Path) -> None:
    path, net, float_gs = trained
    ckpt = torch.load(path, weights_only=False)
    names = [n for n, _ in net.g_s.named_parameters()]
    shifts = dict(zip(names, ckpt["quant_layer"], strict=True))
    calib = int16.Calibration(*_small_calibration(net))
    want, _ = int16.int16_synthesis(net, float_gs, checkpoint=path, calib=calib)
    # top-level 'quantizers' (with the checkpoint's quant_act), 'g_s.' prefixes accepted
    up = tmp_path / "up.pth"
    torch.save({"model": net, "quantizers": {f"g_s.{k}": v for k, v in shifts.items()},
                "quant_act": ckpt["quant_act"]}, up)
    got, report = int16.int16_synthesis(net, float_gs, checkpoint=up, calib=calib)
    assert report.source == "checkpoint 'quantizers'"
    assert encode_licm(got) == encode_licm(want)
    # a separate pickle with cdfs/cdflen/cdfoff (ignored); activations then calibrated
    qfile = tmp_path / "q.pkl"
    with open(qfile, "wb") as f:
        pickle.dump({"quantizers": shifts, "cdfs": [[0, 1]], "cdflen": [2], "cdfoff": [0]}, f)
    got, report = int16.int16_synthesis(net, float_gs, quantizers_file=qfile, calib=calib)
    assert "quantizers file q.pkl" in report.source and "activations calibrated" in report.source
    for a, b in zip(s16_nodes(got, "s16_conv_transpose2d"),
                    s16_nodes(want, "s16_conv_transpose2d"), strict=True):
        assert a.attrs["weight_shift"] <= shifts[names[0]] + 8  # sane
        assert a.tensors["weight"].shape == b.tensors["weight"].shape


def _small_calibration(net) -> tuple[np.ndarray, np.ndarray]:
    patches = photo_patches(3, 64)
    return int16.codec_latents(net, patches, int16.latent_means(net, patches)), patches


def test_quantizer_errors_are_one_line(trained, tmp_path: Path) -> None:
    path, net, float_gs = trained
    bad = tmp_path / "bad.pkl"
    with open(bad, "wb") as f:
        pickle.dump({"quantizers": {"0.weight": 8.5}}, f)
    with pytest.raises(LicError, match="not a shift"):
        int16.int16_synthesis(net, float_gs, quantizers_file=bad)
    with open(bad, "wb") as f:
        pickle.dump({"quantizers": {"9.weight": 8}}, f)
    with pytest.raises(LicError, match="names no parameter of g_s"):
        int16.int16_synthesis(net, float_gs, quantizers_file=bad)
    with pytest.raises(LicError, match="cannot read quantizers"):
        int16.load_quantizers_file(tmp_path / "missing.pkl")
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(LicError, match="not a quantizers pickle"):
        int16.load_quantizers_file(tmp_path / "junk.pkl")
    with pytest.raises(LicError, match="quant_layer has 3 shifts"):
        int16.quantizers_from_checkpoint({"quant_layer": [1, 2, 3]}, ["a", "b"])
    # a float model without quantizers and without a training set
    plain = tmp_path / "plain.pth"
    torch.save({"model": net}, plain)
    with pytest.raises(LicError, match="give a training set"):
        int16.int16_synthesis(net, float_gs, checkpoint=plain)
    with pytest.raises(LicError, match="Kodak"):
        int16.calibration_set(net, KODAK)


# ------------------------------------------------------------------------------ calibration

@pytest.mark.parametrize("ckpt", [RELU_CKPT, GDN_CKPT], ids=["relu", "gdn"])
def test_calibrated_fixture_models(ckpt: Path, tmp_path: Path) -> None:
    """Calibration on a few small training crops: nothing saturates on them (1 bit of
    headroom), every worst case fits int32, the file round-trips, and the int16 decoder
    follows the float one (PyTorch) on other crops."""
    net = load_model(ckpt)
    _, gs = convert_model(net, tmp_path)
    float_gs = read_licm(gs)
    patches = photo_patches(4, 64)
    mean = int16.latent_means(net, patches)
    calib = int16.Calibration(int16.codec_latents(net, patches[:3], mean), patches[:3])
    model, report = int16.quantize_model(float_gs, calib=calib)
    assert report.source == "calibrated" and report.expected_psnr_loss is not None
    assert abs(report.expected_psnr_loss) < 0.1
    back = decode_licm(encode_licm(model))  # the reader's checks, worst cases included
    values = fx.run_values(back, calib.inputs[0])
    for i, node in enumerate(back.nodes[:-1]):
        if node.op != "dequantize":
            assert np.abs(values[i + 1]).max() <= 32767 // 2 + 1, node.op  # headroom kept
    # weight shifts: either as fine as int16 allows, or lowered for the worst case
    for r in report.nodes:
        if r.weight_shift is not None:
            assert fx.fits_int32(r.worst_case)
    # another crop, never seen by calibration
    y_hat = int16.codec_latents(net, patches[3:], mean)[0]
    with torch.no_grad():
        want = net.g_s(torch.from_numpy(y_hat).permute(2, 0, 1)[None])[0].permute(1, 2, 0)
    got = fx.run_reference(back, y_hat)
    err = np.mean((got - want.numpy()) ** 2)
    assert 10 * np.log10(1.0 / err) > 45  # PSNR of int16 vs float output (values ~[0, 1])


def test_worst_case_lowers_weights_or_refuses() -> None:
    """A 1x1 convolution of 1024 channels with weights -0.5: its weights are lowered until
    1024 · |W| · 32768 (all inputs -32768) fits int32; with 8x more channels no shift with
    enough weight bits fits and the converter names the node."""

    def graph(cin: int) -> ModelFile:
        a = dict(cin=cin, cout=2, kh=1, kw=1, stride_h=1, stride_w=1, pad_top=0,
                 pad_left=0, pad_bottom=0, pad_right=0)
        w = np.full((2, cin, 1, 1), -0.5, np.float32)
        return ModelFile("t", cin, 2, [Node("conv2d", [0], a, {
            "weight": w, "bias": np.zeros(2, np.float32)})])

    model, report = int16.quantize_model(graph(1024), act_shifts=[8, 4],
                                         conv_shifts={0: (15, 15)}, source="given")
    conv = model.nodes[1]
    # 0.5 · 2^s · 1024 · 32768 + rounding <= 2^31 - 1  ->  s = 6 (s = 7 reaches 2^31)
    assert conv.attrs["weight_shift"] == 6 and report.nodes[1].lowered_bits == 9
    assert int(np.abs(conv.tensors["weight"]).max()) == 32
    with pytest.raises(LicError, match="node 0 .*no weight shift"):
        int16.quantize_model(graph(8192), act_shifts=[8, 4], conv_shifts={0: (15, 15)})


def test_cli_convert_int16(trained, tmp_path: Path, capsys) -> None:
    path, _, _ = trained
    assert cli_main(["convert", "--model", str(path), "-o", str(tmp_path), "--int16"]) == 0
    out = capsys.readouterr().out
    assert "int16 quantizers: trained" in out
    model = read_licm(tmp_path / "g_s_int16.licm")
    assert model.nodes[0].op == "quantize" and model.nodes[-1].op == "dequantize"
    assert cli_main(["convert", str(tmp_path / "g_s.onnx"), "-o", str(tmp_path / "x.licm"),
                     "--int16"]) == 1
    assert "--int16 needs --model" in capsys.readouterr().err


def test_calibration_rounds_around_the_given_offsets(trained) -> None:
    # build passes the entropy tables' offsets: g_s is calibrated on the latents the codec
    # decodes, y_hat = round(y - offset) + offset, not on the patches' own means.
    _, net, _ = trained
    offsets = np.linspace(-0.4, 0.4, net.g_a[-1].out_channels).astype(np.float32)
    calib = int16.calibration_set(net, PHOTOS, patches=2, patch_size=64, offsets=offsets)
    assert np.array_equal(calib.latent_mean, offsets)
    frac = calib.inputs - offsets[None, None, None, :]
    assert np.abs(frac - np.rint(frac)).max() < 1e-5
    own = int16.calibration_set(net, PHOTOS, patches=2, patch_size=64)
    assert not np.array_equal(own.latent_mean, offsets)
