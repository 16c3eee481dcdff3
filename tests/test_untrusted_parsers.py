"""Property tests: the Python readers of files users send each other never fail with
anything but LicError, whatever the bytes.

Inputs are arbitrary bytes and mutations of real files (byte flips, 32-bit fields set to
boundary values, insertions, deletions, truncations). For the formats with a checksum
(.lice, .licm) the header's size and fingerprint are recomputed after mutating, so the
corruption reaches the field checks behind it instead of stopping at the fingerprint.
A mutated file that is still accepted must be a consistent model: it writes back to the
same bytes (.licm, .lice) or loads into a runnable network (checkpoints).
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lic2cpp import entropy, modelformat
from lic2cpp.entropy import EntropyModel, fit_entropy_model
from lic2cpp.errors import LicError
from lic2cpp.load import load_model
from lic2cpp.modelformat import ModelFile, Node, decode_licm, encode_licm

# LIC2CPP_PROPERTY_SCALE=20 runs 20 times as many examples (a longer campaign).
SCALE = int(os.environ.get("LIC2CPP_PROPERTY_SCALE", "1"))
PROPERTY = settings(max_examples=150 * SCALE, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=50 * SCALE, deadline=None,
                suppress_health_check=list(HealthCheck))

# 32-bit values at the edges of the readers' limits (counts, sizes, channels, codes).
BOUNDARY_U32 = [0, 1, 2, 3, 7, 8, 15, 16, 255, 256, 4095, 4096, 4097, 65535, 65536,
                0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF]


@st.composite
def mutations(draw: st.DrawFn, data: bytes, skip: int = 0) -> bytes:
    """``data`` after 1-4 random edits at offsets >= ``skip``."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "byte", "u32", "insert", "delete", "truncate"]))
        pos = draw(st.integers(skip, max(skip, len(out) - 1)))
        if kind == "flip" and pos < len(out):
            out[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte" and pos < len(out):
            out[pos] = draw(st.integers(0, 255))
        elif kind == "u32" and pos + 4 <= len(out):
            pos -= (pos - skip) % 4  # fields are 4-byte aligned after the header
            out[pos:pos + 4] = struct.pack("<I", draw(st.sampled_from(BOUNDARY_U32)))
        elif kind == "insert":
            out[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del out[pos:pos + draw(st.integers(1, 8))]
        elif kind == "truncate":
            del out[pos:]
    return bytes(out)


# --------------------------------------------------------------------------------- .lice

def small_tables() -> EntropyModel:
    rng = np.random.default_rng(0)
    latents = rng.laplace(0, 1.0, (6, 3, 4, 4)).astype(np.float32)
    latents[:, 1] = 0.0  # a dead channel: one-symbol alphabet
    latents[0, 2, 0, 0] = 200.0  # escapes: the alphabet is capped at mpv +- 127
    return fit_entropy_model(latents)


LICE = small_tables().to_bytes()


def refresh_lice_header(data: bytes) -> bytes:
    """Body size and fingerprint recomputed (docs/entropy-model.md#file-format)."""
    if len(data) < entropy.HEADER.size:
        return data
    magic, major, minor, _size, _fp = entropy.HEADER.unpack_from(data)
    body = data[entropy.HEADER.size:]
    return entropy.HEADER.pack(magic, major, minor, len(body), modelformat.fingerprint(body)) + body


def parse_lice_or_licerror(data: bytes) -> EntropyModel | None:
    try:
        return EntropyModel.from_bytes(data)
    except LicError as exc:
        assert str(exc) and "\n" not in str(exc)
        return None


@PROPERTY
@given(st.binary(max_size=200))
def test_lice_arbitrary_bytes(data: bytes) -> None:
    assert parse_lice_or_licerror(data) is None
    assert parse_lice_or_licerror(refresh_lice_header(entropy.MAGIC + data)) is None


@PROPERTY
@given(mutations(LICE))
def test_lice_mutated(data: bytes) -> None:
    parse_lice_or_licerror(data)  # header fields mutated: refused unless harmless


@PROPERTY
@given(mutations(LICE, skip=entropy.HEADER.size))
def test_lice_mutated_body_with_valid_checksum(data: bytes) -> None:
    data = refresh_lice_header(data)
    model = parse_lice_or_licerror(data)
    if model is not None:  # accepted: every field passed the checks and writes back
        again = model.to_bytes()
        assert EntropyModel.from_bytes(again).to_bytes() == again
        # only the zero padding after odd-length tables may differ
        assert len(again) == len(data)


def test_lice_reader_sees_the_mutations() -> None:
    """The mutated bodies do reach past the checksum: some fail in the field checks."""
    header = entropy.HEADER.size
    cases = {
        "layout": (header + 0, 0),  # zero channels
        "permutation": (header + 12, 7),  # order[0] = 7 with 3 channels
        "channel record": (header + 24 + 12, 0),  # nsym of channel 0 = 0
    }
    for what, (pos, value) in cases.items():
        data = bytearray(LICE)
        data[pos:pos + 4] = struct.pack("<I", value)
        with pytest.raises(LicError, match=what):
            EntropyModel.from_bytes(refresh_lice_header(bytes(data)))


# --------------------------------------------------------------------------------- .licm

def small_licm() -> bytes:
    rng = np.random.default_rng(1)

    def tensor(*shape: int) -> np.ndarray:
        return rng.uniform(0.1, 1.0, shape).astype(np.float32)

    conv = dict(cin=2, cout=3, kh=3, kw=3, stride_h=2, stride_w=2, pad_top=1, pad_left=1,
                pad_bottom=1, pad_right=1)
    nodes = [
        Node("conv2d", [0], conv, {"weight": tensor(3, 2, 3, 3), "bias": tensor(3)}),
        Node("gdn", [1], {"channels": 3, "inverse": 0}, {"beta": tensor(3),
                                                          "gamma": tensor(3, 3)}),
        Node("leaky_relu", [2], {"alpha": 0.1}),
        Node("relu", [3]),
        Node("add", [4, 1]),
        Node("conv_transpose2d", [5], {**conv, "cin": 3, "cout": 2, "out_pad_h": 1,
                                       "out_pad_w": 1},
             {"weight": tensor(3, 2, 3, 3), "bias": tensor(2)}),
    ]
    return encode_licm(ModelFile("fuzz", 2, 2, nodes))


LICM = small_licm()


def refresh_licm_header(data: bytes) -> bytes:
    h = modelformat.HEADER_SIZE
    if len(data) < h:
        return data
    body = data[h:]
    return data[:8] + struct.pack("<QQ", len(body), modelformat.fingerprint(body)) + body


def parse_licm_or_licerror(data: bytes) -> ModelFile | None:
    try:
        return decode_licm(data)
    except LicError as exc:
        assert str(exc) and "\n" not in str(exc)
        return None


@PROPERTY
@given(st.binary(max_size=200))
def test_licm_arbitrary_bytes(data: bytes) -> None:
    assert parse_licm_or_licerror(data) is None
    assert parse_licm_or_licerror(refresh_licm_header(modelformat.MAGIC + data)) is None


@PROPERTY
@given(mutations(LICM))
def test_licm_mutated(data: bytes) -> None:
    parse_licm_or_licerror(data)


@PROPERTY
@given(mutations(LICM, skip=modelformat.HEADER_SIZE))
def test_licm_mutated_body_with_valid_checksum(data: bytes) -> None:
    data = refresh_licm_header(data)
    model = parse_licm_or_licerror(data)
    if model is not None:  # accepted: a self-consistent graph that writes back exactly
        assert encode_licm(model) == data


# ------------------------------------------------------------------------- checkpoints

def small_state_dict() -> dict[str, torch.Tensor]:
    from compressai.models import FactorizedPriorReLU

    torch.manual_seed(0)
    net = FactorizedPriorReLU(2, 3).eval()
    net.update(force=True)
    return net.state_dict()


def saved(obj: object, zipped: bool) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=zipped)
    return buf.getvalue()


STATE_DICT = small_state_dict()
CKPT_ZIP = saved({"state_dict": STATE_DICT, "epoch": 3}, zipped=True)
CKPT_LEGACY = saved(STATE_DICT, zipped=False)  # a bare pickle: mutations reach the unpickler


def load_or_licerror(data: bytes, tmp: Path, weights_only: bool) -> None:
    path = tmp / "ckpt.pth"
    path.write_bytes(data)
    try:
        net = load_model(path, "bmshj2018-factorized-relu", weights_only=weights_only)
    except LicError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    with torch.no_grad():  # accepted: a network that runs
        net.g_s(net.g_a(torch.zeros(1, 3, 16, 16)))


def test_unexpected_key_with_a_newline_gives_one_line(tmp_path: Path) -> None:
    # Keys come from the file: a mutated pickle once gave one starting with a newline, and
    # the error quoted it raw (found by test_checkpoint_mutated).
    sd = dict(STATE_DICT)
    sd["\nntropy_bottleneck._offset"] = torch.zeros(1)
    path = tmp_path / "ckpt.pth"
    path.write_bytes(saved(sd, zipped=True))
    with pytest.raises(LicError) as err:
        load_model(path, "bmshj2018-factorized-relu")
    assert "\n" not in str(err.value)
    assert str(err.value).startswith("checkpoint has '\\nntropy_bottleneck._offset' (1 unexpected")


@pytest.mark.parametrize("weights_only", [True, False])
def test_checkpoint_fixtures_load(tmp_path: Path, weights_only: bool) -> None:
    for data in (CKPT_ZIP, CKPT_LEGACY):
        path = tmp_path / "ckpt.pth"
        path.write_bytes(data)
        net = load_model(path, "bmshj2018-factorized-relu", weights_only=weights_only)
        assert torch.equal(net.state_dict()["g_s.0.weight"], STATE_DICT["g_s.0.weight"])


@SLOW
@given(st.one_of(mutations(CKPT_ZIP), mutations(CKPT_LEGACY), st.binary(max_size=100)),
       st.booleans())
def test_checkpoint_mutated(tmp_path: Path, data: bytes, weights_only: bool) -> None:
    load_or_licerror(data, tmp_path, weights_only)


DTYPES = [torch.float32, torch.float16, torch.float64, torch.int32, torch.int64, torch.bool,
          torch.complex64, torch.uint8]


@st.composite
def state_dict_edits(draw: st.DrawFn) -> dict[str, torch.Tensor]:
    """The small state_dict with 1-3 tensors replaced (any shape and dtype, non-finite
    values), removed or added."""
    sd = dict(STATE_DICT)
    keys = sorted(sd)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["replace", "replace", "scale", "remove", "add"]))
        key = draw(st.sampled_from(keys))
        if kind == "remove":
            sd.pop(key, None)
            continue
        if kind == "scale" and key in sd and sd[key].is_floating_point():
            sd[key] = sd[key] * draw(st.sampled_from([0.0, -1.0, 1e30, float("inf"),
                                                       float("nan")]))
            continue
        shape = draw(st.lists(st.integers(0, 4), max_size=4))
        if draw(st.booleans()) and key in sd:  # the same shape, another dtype or value
            shape = list(sd[key].shape)
        dtype = draw(st.sampled_from(DTYPES))
        value = torch.full(shape, draw(st.sampled_from([0, 1, 3]))).to(dtype)
        sd[key if kind != "add" else key + ".extra"] = value
    return sd


@SLOW
@given(state_dict_edits(), st.booleans())
def test_state_dict_edited(tmp_path: Path, sd: dict[str, torch.Tensor],
                           weights_only: bool) -> None:
    load_or_licerror(saved(sd, zipped=True), tmp_path, weights_only)
