"""Convert an exported ONNX transform to lic2cpp's `.licm` format (docs/model-format.md).

The ONNX graph is walked in its (topological) node order and each node becomes one
`.licm` node: Conv, ConvTranspose, Relu, LeakyRelu and Add map one to one; Identity and
Constant disappear; GDN / inverse GDN are recognised as the pattern

    Mul(x, x) | Pow(x, 2) -> Conv 1x1 (weight gamma, bias beta)
        -> Sqrt | Pow(., 0.5)                      -> Div(x, .)  (GDN)  | Mul(x, .) (IGDN)
        -> Sqrt + Reciprocal | Pow(., -0.5)        -> Mul(x, .)  (GDN)  | Div(x, .) (IGDN)

Anything else stops the conversion with the op type and the node name.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, inliner, numpy_helper
from tqdm import tqdm

from lic2cpp.errors import LicError
from lic2cpp.export import add_model_args, export_onnx
from lic2cpp.load import TRANSFORMS, load_model, model_transforms
from lic2cpp.modelformat import (
    MAX_KERNEL,
    MAX_NAME,
    MAX_STRIDE,
    ModelFile,
    Node,
    decode_licm,
    header_fingerprint,
    write_licm,
)


def _node_name(node: Any) -> str:
    return node.name or (node.output[0] if node.output else "?")


def _where(node: Any) -> str:
    """How error messages name an ONNX node: op type and node name (or its output)."""
    return f"{node.op_type} node '{_node_name(node)}'"


def _unsupported(node: Any, why: str = "") -> LicError:
    op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
    return LicError(f"unsupported ONNX op {op} (node '{_node_name(node)}'){why}")


def _attrs(node: Any) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class _Converter:
    """State of one conversion: ONNX tensor names -> constants or runtime values."""

    graph: Any
    consts: dict[str, np.ndarray] = field(default_factory=dict)
    values: dict[str, int] = field(default_factory=dict)  # tensor name -> value id
    channels: list[int] = field(default_factory=list)  # value id -> channel count
    nodes: list[Node] = field(default_factory=list)
    consumers: dict[str, list[Any]] = field(default_factory=dict)
    # First outputs of ONNX nodes already emitted (as part of a GDN): output names are
    # unique in ONNX, protobuf wrapper objects need not be.
    done: set[str] = field(default_factory=set)

    # ------------------------------------------------------------------ helpers

    def const(self, name: str) -> np.ndarray | None:
        return self.consts.get(name)

    def value(self, name: str, node: Any) -> int:
        if name in self.values:
            return self.values[name]
        if name in self.consts:
            raise LicError(f"{_where(node)}: a constant operand '{name}' is not supported here")
        raise LicError(f"{_where(node)}: input '{name}' is not computed by a supported op")

    def emit(self, node: Node, out_channels: int, output: str) -> None:
        self.nodes.append(node)
        self.channels.append(out_channels)
        self.values[output] = len(self.nodes)  # node i gives value i+1

    def only_consumer(self, name: str) -> Any | None:
        users = self.consumers.get(name, [])
        outputs = {o.name for o in self.graph.output}
        if len(users) != 1 or name in outputs:
            return None
        return users[0]

    def scalar(self, name: str) -> float | None:
        c = self.const(name)
        if c is None or c.size != 1:
            return None
        return float(c.reshape(()))

    # ------------------------------------------------------------------ ops

    def conv_common(self, node: Any, attrs: dict[str, Any], kernel: tuple[int, int],
                    transpose: bool) -> dict[str, int]:
        where = _where(node)
        if attrs.get("group", 1) != 1:
            raise LicError(f"{where}: group={attrs['group']} is not supported (only 1)")
        if any(d != 1 for d in attrs.get("dilations", [1, 1])):
            raise LicError(f"{where}: dilations {attrs['dilations']} are not supported")
        if "kernel_shape" in attrs and tuple(attrs["kernel_shape"]) != kernel:
            raise LicError(f"{where}: kernel_shape {attrs['kernel_shape']} disagrees with "
                           f"the weight's {kernel}")
        if len(kernel) != 2:
            raise LicError(f"{where}: only 2-D convolutions are supported")
        strides = [int(s) for s in attrs.get("strides", [1, 1])]
        pads = [int(p) for p in attrs.get("pads", [0, 0, 0, 0])]
        auto_pad = _text(attrs.get("auto_pad", "NOTSET"))
        if auto_pad == "VALID":
            pads = [0, 0, 0, 0]
        elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            # The padding of SAME depends on the input size unless the stride is 1.
            if transpose or strides != [1, 1]:
                raise LicError(f"{where}: auto_pad={auto_pad} depends on the input size; "
                               "export with explicit pads")
            pads = []
            for k in kernel:
                total = k - 1
                small = total // 2
                pads.append(small if auto_pad == "SAME_UPPER" else total - small)
            pads += [kernel[0] - 1 - pads[0], kernel[1] - 1 - pads[1]]
        elif auto_pad != "NOTSET":
            raise LicError(f"{where}: unknown auto_pad '{auto_pad}'")
        if max(kernel) > MAX_KERNEL:
            raise LicError(f"{where}: kernel {kernel} is larger than {MAX_KERNEL}")
        if not all(1 <= s <= MAX_STRIDE for s in strides):
            raise LicError(f"{where}: strides {strides} are outside 1..{MAX_STRIDE}")
        top, left, bottom, right = pads
        if min(pads) < 0 or max(top, bottom) >= kernel[0] or max(left, right) >= kernel[1]:
            raise LicError(f"{where}: pads {pads} must be non-negative and smaller than "
                           f"the kernel {kernel}")
        return {"kh": kernel[0], "kw": kernel[1], "stride_h": strides[0],
                "stride_w": strides[1], "pad_top": top, "pad_left": left,
                "pad_bottom": bottom, "pad_right": right}

    def weights(self, node: Any) -> tuple[np.ndarray, np.ndarray | None]:
        w = self.const(node.input[1]) if len(node.input) > 1 else None
        if w is None:
            raise LicError(f"{_where(node)}: the weight must be a constant")
        if w.ndim != 4:
            raise LicError(f"{_where(node)}: only 2-D convolutions are supported "
                           f"(weight shape {w.shape})")
        b = None
        if len(node.input) > 2 and node.input[2]:
            b = self.const(node.input[2])
            if b is None:
                raise LicError(f"{_where(node)}: the bias must be a constant")
        return w.astype(np.float32), None if b is None else b.astype(np.float32)

    def check_input_channels(self, node: Any, vid: int, expected: int) -> None:
        if self.channels[vid] != expected:
            raise LicError(f"{_where(node)}: expects {expected} input channels, "
                           f"gets {self.channels[vid]}")

    def conv(self, node: Any, transpose: bool) -> None:
        attrs = _attrs(node)
        vid = self.value(node.input[0], node)
        w, b = self.weights(node)
        if transpose:
            cin, cout = w.shape[0], w.shape[1]
        else:
            cout, cin = w.shape[0], w.shape[1]
        kernel = (int(w.shape[2]), int(w.shape[3]))
        a: dict[str, int | float] = {"cin": int(cin), "cout": int(cout)}
        a.update(self.conv_common(node, attrs, kernel, transpose))
        if transpose:
            if "output_shape" in attrs:
                raise LicError(f"{_where(node)}: output_shape depends on the input size; "
                               "export with pads and output_padding")
            out_pad = [int(p) for p in attrs.get("output_padding", [0, 0])]
            if not (0 <= out_pad[0] < a["stride_h"] and 0 <= out_pad[1] < a["stride_w"]):
                raise LicError(f"{_where(node)}: output_padding {out_pad} must be smaller "
                               "than the stride")
            a["out_pad_h"], a["out_pad_w"] = out_pad
        self.check_input_channels(node, vid, int(cin))
        if b is None:
            b = np.zeros(int(cout), np.float32)
        if b.shape != (cout,):
            raise LicError(f"{_where(node)}: bias shape {b.shape}, expected ({cout},)")
        op = "conv_transpose2d" if transpose else "conv2d"
        self.emit(Node(op, [vid], a, {"weight": w, "bias": b}), int(cout), node.output[0])

    def add(self, node: Any) -> None:
        lhs, rhs = (self.value(n, node) for n in node.input)
        if self.channels[lhs] != self.channels[rhs]:
            raise LicError(f"{_where(node)}: adds {self.channels[lhs]} and "
                           f"{self.channels[rhs]} channels")
        self.emit(Node("add", [lhs, rhs]), self.channels[lhs], node.output[0])

    def constant(self, node: Any) -> None:
        attrs = node.attribute
        if len(attrs) != 1:
            raise LicError(f"{_where(node)}: expected exactly one value attribute")
        a = attrs[0]
        value = _attrs(node)[a.name]
        if a.name == "value":
            self.consts[node.output[0]] = numpy_helper.to_array(value)
        elif a.name in ("value_float", "value_floats", "value_int", "value_ints"):
            self.consts[node.output[0]] = np.asarray(value)
        else:
            raise LicError(f"{_where(node)}: constant attribute '{a.name}' is not supported")

    # ------------------------------------------------------------------ GDN pattern

    def match_gdn(self, square: Any) -> tuple[list[Any], str, np.ndarray, np.ndarray, bool] \
            | None:
        """If ``square`` starts a GDN/IGDN pattern: (its nodes, x, beta, gamma, inverse)."""
        x = square.input[0]
        if square.op_type == "Mul" and square.input[1] != x:
            return None
        if square.op_type == "Pow" and self.scalar(square.input[1]) != 2.0:
            return None
        if x not in self.values:
            return None
        conv = self.only_consumer(square.output[0])
        if conv is None or conv.op_type != "Conv" or conv.input[0] != square.output[0]:
            return None
        gamma = self.const(conv.input[1]) if len(conv.input) > 1 else None
        beta = self.const(conv.input[2]) if len(conv.input) > 2 and conv.input[2] else None
        channels = self.channels[self.values[x]]
        if (gamma is None or beta is None or gamma.shape != (channels, channels, 1, 1)
                or beta.shape != (channels,)):
            return None
        a = _attrs(conv)
        if (a.get("group", 1) != 1 or any(s != 1 for s in a.get("strides", [1, 1]))
                or any(p != 0 for p in a.get("pads", [0, 0, 0, 0]))
                or any(d != 1 for d in a.get("dilations", [1, 1]))):
            return None
        chain = [square, conv]
        step = self.only_consumer(conv.output[0])
        if step is None:
            return None
        exponent = 0.5 if step.op_type == "Sqrt" else (
            self.scalar(step.input[1]) if step.op_type == "Pow" else None)
        if exponent not in (0.5, -0.5) or step.input[0] != conv.output[0]:
            return None
        chain.append(step)
        root = step.output[0]
        final = self.only_consumer(root)
        if final is not None and exponent == 0.5 and final.op_type == "Reciprocal":
            chain.append(final)
            exponent = -0.5
            root = final.output[0]
            final = self.only_consumer(root)
        if final is None or final.op_type not in ("Mul", "Div") or x not in final.input:
            return None
        if final.op_type == "Mul" and sorted(final.input) != sorted([x, root]):
            return None
        if final.op_type == "Div" and list(final.input) != [x, root]:
            return None
        chain.append(final)
        # x * sqrt(n) and x / rsqrt(n) are the inverse GDN; x / sqrt(n), x * rsqrt(n) GDN.
        inverse = (final.op_type == "Mul") == (exponent == 0.5)
        return chain, x, beta.astype(np.float32), \
            gamma[:, :, 0, 0].astype(np.float32), inverse

    def gdn_or_fail(self, node: Any) -> None:
        found = self.match_gdn(node) if node.op_type in ("Mul", "Pow") else None
        if found is None:
            raise _unsupported(node, ": element-wise math is supported only as part of a "
                               "GDN pattern (Mul(x, x) -> Conv 1x1 -> Sqrt -> Div or Mul)")
        chain, x, beta, gamma, inverse = found
        vid = self.values[x]
        c = self.channels[vid]
        gdn = Node("gdn", [vid], {"channels": c, "inverse": int(inverse)},
                   {"beta": beta, "gamma": gamma})
        self.emit(gdn, c, chain[-1].output[0])
        self.done.update(n.output[0] for n in chain)

    # ------------------------------------------------------------------ driver

    def run(self) -> tuple[int, list[Node], int]:
        for init in self.graph.initializer:
            self.consts[init.name] = numpy_helper.to_array(init)
        inputs = [i for i in self.graph.input if i.name not in self.consts]
        if len(inputs) != 1 or len(self.graph.output) != 1:
            raise LicError(f"expected one input and one output, the graph has {len(inputs)} "
                           f"and {len(self.graph.output)}")
        in_channels = _input_channels(inputs[0])
        self.values[inputs[0].name] = 0
        self.channels.append(in_channels)
        for node in self.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        handlers = {
            "Conv": lambda n: self.conv(n, transpose=False),
            "ConvTranspose": lambda n: self.conv(n, transpose=True),
            "Relu": self.relu,
            "LeakyRelu": self.leaky_relu,
            "Add": self.add,
            "Identity": self.identity,
            "Constant": self.constant,
        }
        for node in self.graph.node:
            if node.output and node.output[0] in self.done:
                continue
            if node.domain not in ("", "ai.onnx"):
                raise _unsupported(node)
            if node.op_type in ("Mul", "Pow", "Sqrt", "Div", "Reciprocal"):
                self.gdn_or_fail(node)
                continue
            handler = handlers.get(node.op_type)
            if handler is None:
                raise _unsupported(node)
            handler(node)
        output = self.graph.output[0].name
        if output not in self.values:
            raise LicError(f"the graph output '{output}' is not computed by a supported op")
        return in_channels, *_prune(self.nodes, self.values[output], self.channels)

    def relu(self, node: Any) -> None:
        vid = self.value(node.input[0], node)
        self.emit(Node("relu", [vid]), self.channels[vid], node.output[0])

    def leaky_relu(self, node: Any) -> None:
        vid = self.value(node.input[0], node)
        alpha = float(_attrs(node).get("alpha", 0.01))
        self.emit(Node("leaky_relu", [vid], {"alpha": alpha}), self.channels[vid],
                  node.output[0])

    def identity(self, node: Any) -> None:
        src = node.input[0]
        if src in self.consts:
            self.consts[node.output[0]] = self.consts[src]
        else:
            self.values[node.output[0]] = self.value(src, node)


def _input_channels(value_info: Any) -> int:
    dims = value_info.type.tensor_type.shape.dim
    if len(dims) != 4:
        raise LicError(f"the graph input '{value_info.name}' must be 4-D NCHW, "
                       f"it has {len(dims)} dimensions")
    if dims[0].HasField("dim_value") and dims[0].dim_value != 1:
        raise LicError(f"the graph input has batch size {dims[0].dim_value}; only 1 is "
                       "supported")
    if not dims[1].HasField("dim_value") or dims[1].dim_value < 1:
        raise LicError(f"the graph input '{value_info.name}' has no fixed channel count")
    return int(dims[1].dim_value)


def _prune(nodes: Sequence[Node], output: int, channels: Sequence[int]) \
        -> tuple[list[Node], int]:
    """Drop nodes the output does not depend on and renumber values; returns the kept
    nodes (the output's node last) and the output channel count."""
    if output == 0:
        raise LicError("the graph output is its input: nothing to convert")
    live = {output}
    for index in range(output, 0, -1):
        if index in live:
            live.update(nodes[index - 1].inputs)
    keep = [i for i in range(1, output + 1) if i in live]
    renumber = {0: 0, **{old: new for new, old in enumerate(keep, start=1)}}
    kept = []
    for old in keep:
        n = nodes[old - 1]
        kept.append(Node(n.op, [renumber[v] for v in n.inputs], n.attrs, n.tensors))
    return kept, channels[output]


def onnx_to_model(onnx_model: Any, name: str) -> ModelFile:
    """The `.licm` model of an in-memory ONNX model (raises LicError on anything it
    cannot represent)."""
    if len(name.encode("utf-8")) > MAX_NAME:
        raise LicError(f"model name longer than {MAX_NAME} bytes")
    if len(onnx_model.functions):
        onnx_model = inliner.inline_local_functions(onnx_model)
    in_channels, nodes, out_channels = _Converter(onnx_model.graph).run()
    return ModelFile(name, in_channels, out_channels, nodes)


def load_onnx(path: Path) -> Any:
    if not path.is_file():
        raise LicError(f"ONNX file not found: {path}")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # protobuf DecodeError and friends
        raise LicError(f"{path} is not an ONNX model ({type(exc).__name__})") from None


def convert_onnx(onnx_path: Path, licm_path: Path, name: str) -> None:
    """Convert one exported transform (``g_a`` or ``g_s``) to a `.licm` file."""
    model = onnx_to_model(load_onnx(Path(onnx_path)), name)
    Path(licm_path).parent.mkdir(parents=True, exist_ok=True)
    write_licm(Path(licm_path), model)


def convert_model(net: Any, out_dir: Path, *, exporter: str = "dynamo",
                  progress: bool = False, transforms: tuple[str, ...] = TRANSFORMS
                  ) -> tuple[Path, ...]:
    """Export ``net``'s transforms to ONNX and convert them: ``out_dir/g_a.licm``,
    ``out_dir/g_s.licm`` (and ``h_a``, ``h_s`` when ``transforms`` names them; the
    ``.onnx`` files stay beside them). ``progress`` shows tqdm bars (on a terminal only)."""
    out_dir = Path(out_dir)
    onnx_paths = export_onnx(net, out_dir, exporter=exporter, progress=progress,
                             transforms=transforms)
    licm_paths = []
    for onnx_path in tqdm(onnx_paths, desc="convert to .licm", unit="transform",
                          disable=None if progress else True):
        licm = onnx_path.with_suffix(".licm")
        convert_onnx(onnx_path, licm, onnx_path.stem)
        licm_paths.append(licm)
    return tuple(licm_paths)


# ------------------------------------------------------------------------------ CLI

def _describe(path: Path) -> str:
    data = path.read_bytes()
    count = len(decode_licm(data).nodes)
    return (f"{path} ({count} nodes, {len(data) / 1e6:.1f} MB, "
            f"fingerprint {header_fingerprint(data):016x})")


def run(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if (args.onnx is None) == (args.model is None):
        raise LicError("give exactly one of FILE.onnx and --model M.pth")
    if args.onnx is not None:
        if args.arch is not None:
            raise LicError("--arch only applies with --model")
        if args.int16:
            raise LicError("--int16 needs --model (the quantizers come with the checkpoint "
                           "or from calibration)")
        if out.is_dir():
            out = out / Path(args.onnx).with_suffix(".licm").name
        convert_onnx(Path(args.onnx), out, args.name or Path(args.onnx).stem)
        print(f"wrote {_describe(out)}")
        return 0
    net = load_model(args.model, args.arch, weights_only=args.weights_only)
    paths = convert_model(net, out, exporter=args.exporter, progress=True,
                          transforms=model_transforms(net))
    for path in paths:
        print(f"wrote {_describe(path)}")
    if args.int16:
        from lic2cpp.int16 import int16_synthesis
        from lic2cpp.modelformat import read_licm

        model, report = int16_synthesis(
            net, read_licm(paths[1]), checkpoint=args.model, quantizers_file=args.quantizers,
            training_set=args.training_set, patches=args.calib_patches,
            headroom_bits=args.headroom_bits, progress=True)
        int16_path = out / "g_s_int16.licm"
        write_licm(int16_path, model)
        print(report.summary())
        print(f"wrote {_describe(int16_path)}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert", help="convert a model (or one ONNX file) to lic2cpp's .licm format",
        description="Either export and convert a CompressAI checkpoint "
                    "(--model M.pth -o DIR: writes DIR/g_a.onnx, g_s.onnx, g_a.licm, "
                    "g_s.licm), or convert one ONNX file (FILE.onnx -o FILE.licm). "
                    "See docs/conversion.md for the supported layers.",
        epilog="examples:  lic2cpp convert --model fp_relu.pth -o out/\n"
               "           lic2cpp convert out/g_s.onnx -o out/g_s.licm",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("onnx", nargs="?", metavar="FILE.onnx", help="one ONNX transform to convert")
    add_model_args(p, required=False)
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output folder (with --model) or .licm file (with FILE.onnx)")
    p.add_argument("--name", default=None,
                   help="model name stored in the .licm (default: the ONNX file's stem)")
    q = p.add_argument_group("int16 fixed point (docs/int16.md)")
    q.add_argument("--int16", action="store_true",
                   help="also write OUT/g_s_int16.licm, the decoder in int16 fixed point")
    q.add_argument("--quantizers", default=None, metavar="FILE",
                   help="pickle with a 'quantizers' dict {param name: shift} (upstream "
                        "convention; default: the checkpoint's own, else calibration)")
    q.add_argument("--training-set", default=None, metavar="PATH",
                   help="training images or patches for calibration and the PSNR estimate "
                        "(never the evaluation images)")
    q.add_argument("--calib-patches", type=int, default=16, metavar="N",
                   help="256x256 calibration patches drawn from the training set (default 16)")
    q.add_argument("--headroom-bits", type=int, default=1, metavar="B",
                   help="calibrated activations keep B bits of headroom above the largest "
                        "value seen (default 1)")
    p.set_defaults(func=run)
