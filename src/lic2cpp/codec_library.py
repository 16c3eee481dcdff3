"""``lic2cpp.Codec``: the C library of a ``lic2cpp build`` output folder, from Python.

    from lic2cpp import Codec
    codec = Codec("OUT/")                # OUT/lib/liblic2cpp_codec.so, OUT/include/lic2cpp.h
    data = codec.encode(rgb)             # H x W x 3 uint8 array -> bytes
    rgb2 = codec.decode(data)            # bytes -> H x W x 3 uint8 array

The binding is cffi in ABI mode over the shared library (docs/library.md#python): the
function declarations are read from the very header C users compile against, so the two
cannot drift apart; nothing is compiled at import or install time; and cffi releases the GIL
for the duration of every C call, so several threads (each with its own Codec, or one Codec
used in turn) encode and decode in parallel. No subprocess: the bytes and pixels are the
programs' (the same library code runs).
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from lic2cpp.errors import LicError

LIBRARY = Path("lib") / "liblic2cpp_codec.so"
HEADER = Path("include") / "lic2cpp.h"
_CDEF = re.compile(r"/\* lic2cpp-cdef-begin.*?\*/(.*)/\* lic2cpp-cdef-end \*/", re.S)
_UNITS = {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}


def parse_size(text: str | int) -> int:
    """Bytes of a size such as ``256M``, ``2G`` or ``1048576`` (K, M, G, T: powers of 1024)."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise LicError("a memory size cannot be negative")
        return text
    m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(?:I?B)?\s*", str(text), re.I)
    if not m:
        raise LicError(f"invalid memory size {text!r} (write e.g. 256M or 2G)")
    return int(m.group(1)) << _UNITS[m.group(2).upper()]


def cdef_of(header_text: str) -> str:
    """The declarations of lic2cpp.h that cffi parses (between its cdef markers)."""
    m = _CDEF.search(header_text)
    if not m:
        raise LicError("lic2cpp.h lacks its cdef markers (a header of another version?)")
    return m.group(1).replace("LIC2CPP_API ", "")


@cache
def _ffi(header_text: str) -> Any:
    import cffi

    ffi = cffi.FFI()
    ffi.cdef(cdef_of(header_text))
    return ffi


@cache
def _open(library: str, stamp: tuple[int, int], header_text: str) -> tuple[Any, Any]:
    """(ffi, lib) of a shared library; ``stamp`` (size, mtime) reopens a rebuilt file."""
    del stamp
    ffi = _ffi(header_text)
    try:
        return ffi, ffi.dlopen(library)
    except OSError as e:
        raise LicError(f"cannot load the codec library {library}: {e}") from None


class Codec:
    """A codec context of the library built in ``folder`` (``lic2cpp build -o folder``).

    ``threads``: threads per call (1 to 256; the output never depends on it).
    ``max_memory``: memory budget of each call, bytes or a size such as ``"256M"``; images
    are then decoded (and g_a run) in tiles that fit it, with the same result. None: images
    up to 2^24 pixels in one piece, larger ones in tiles within 1 GiB.
    ``band_rows``: latent rows per independently coded band of the encodes (1 to 65535;
    bitstream 2.0); at least the latent height gives one band, a 1.x stream. None: the
    library's default (16).
    ``rdoq``: the RDOQ λ of encodes (docs/rdoq.md; 0: plain rounding; None: the λ the
    library was built with, ``default_rdoq_lambda``); ``rdoq_sweeps``: its linearisations
    (None: the default).
    Calls on one Codec from several threads run one at a time; separate Codecs run in
    parallel.
    """

    def __init__(self, folder: str | os.PathLike[str], threads: int = 1,
                 max_memory: int | str | None = None, band_rows: int | None = None,
                 rdoq: float | None = None, rdoq_sweeps: int | None = None) -> None:
        folder = Path(folder)
        library, header = folder / LIBRARY, folder / HEADER
        if not library.is_file() or not header.is_file():
            raise LicError(f"{folder} holds no codec library ({LIBRARY} and {HEADER}); build "
                           f"one with `lic2cpp build -o {folder}`")
        st = library.stat()
        self._ffi, self._lib = _open(str(library.resolve()), (st.st_size, st.st_mtime_ns),
                                     header.read_text())
        if not isinstance(threads, int) or not 1 <= threads <= 256:
            raise LicError("threads must be a number from 1 to 256")
        out = self._ffi.new("lic2cpp_codec **")
        status = self._lib.lic2cpp_create(threads, out)
        if status != 0:
            raise LicError("cannot create the codec: " +
                           self._ffi.string(self._lib.lic2cpp_status_string(status)).decode())
        self._codec = self._ffi.gc(out[0], self._lib.lic2cpp_destroy)
        self._lock = threading.Lock()
        self.folder = folder
        self.threads = threads
        if max_memory is not None:
            self._check(self._lib.lic2cpp_set_max_memory(self._codec, parse_size(max_memory)))
        if band_rows is not None:
            if not isinstance(band_rows, int) or not 1 <= band_rows <= 65535:
                raise LicError("band_rows must be a number from 1 to 65535")
            self._check(self._lib.lic2cpp_set_band_rows(self._codec, band_rows))
        if rdoq is not None or rdoq_sweeps is not None:
            if rdoq is not None and not (math.isfinite(rdoq) and rdoq >= 0):
                raise LicError(f"rdoq must be a finite λ >= 0 (0: plain rounding), got {rdoq}")
            if rdoq_sweeps is not None and not 0 <= rdoq_sweeps <= 1000:
                raise LicError("rdoq_sweeps must be a number from 0 to 1000")
            self._check(self._lib.lic2cpp_set_rdoq(
                self._codec, -1.0 if rdoq is None else float(rdoq),
                -1 if rdoq_sweeps is None else int(rdoq_sweeps)))

    @property
    def default_rdoq_lambda(self) -> float:
        """The RDOQ λ the library was built with (``lic2cpp build --rdoq``; 0: none)."""
        return float(self._lib.lic2cpp_default_rdoq_lambda())

    def rdoq_report(self) -> dict[str, float]:
        """What RDOQ did in this codec's last encode: ``lambda`` (0: plain rounding, then
        everything is 0), ``bits_plain``/``sse_plain`` (plain rounding's ideal bits and
        squared error, pixels in [0, 1]), ``bits``/``sse`` (the chosen latent's),
        ``sweeps``, ``accepted``, ``changed``, ``passes``."""
        rep = self._ffi.new("lic2cpp_rdoq_report *")
        with self._lock:
            self._check(self._lib.lic2cpp_get_rdoq_report(self._codec, rep))
        return {k: getattr(rep, k) for k in ("lambda", "bits_plain", "sse_plain", "bits", "sse",
                                             "sweeps", "accepted", "changed", "passes")}

    @property
    def fingerprint(self) -> int:
        """The model's fingerprint, as in the header of its bitstreams."""
        return int(self._lib.lic2cpp_model_fingerprint())

    def _bytes(self, data: bytes | np.ndarray) -> Any:
        """A uint8_t[] pointing into ``data`` (no copy: writes to it land in an array)."""
        return self._ffi.from_buffer("uint8_t[]", data)

    def _check(self, status: int) -> None:
        if status != 0:
            raise LicError(self._ffi.string(self._lib.lic2cpp_error_message(self._codec))
                           .decode("utf-8", "replace"))

    def encode(self, image: np.ndarray) -> bytes:
        """The bitstream of an H x W x 3 uint8 RGB array (any row stride)."""
        a = np.asarray(image)
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
            raise LicError(f"expected an H x W x 3 uint8 RGB array, got {a.dtype} of shape "
                           f"{a.shape}")
        h, w = a.shape[:2]
        if h == 0 or w == 0:
            raise LicError("image is empty (0 width or height)")
        if a.strides[2] != 1 or a.strides[1] != 3 or a.strides[0] < 3 * w:
            a = np.ascontiguousarray(a)  # the C interface takes rows of packed pixels
        if h > 0xFFFFFFFF or w > 0xFFFFFFFF:
            raise LicError(f"image {w}x{h} is larger than the limit")
        ffi = self._ffi
        data = ffi.new("uint8_t **")
        size = ffi.new("size_t *")
        with self._lock:
            self._check(self._lib.lic2cpp_encode(self._codec, ffi.cast("const uint8_t *",
                                                                      a.ctypes.data),
                                                 w, h, a.strides[0], data, size))
        try:
            return bytes(ffi.buffer(data[0], size[0]))
        finally:
            self._lib.lic2cpp_free(data[0])

    def info(self, data: bytes) -> tuple[int, int]:
        """(width, height) of a bitstream, after every check of its container."""
        ffi = self._ffi
        w, h = ffi.new("uint32_t *"), ffi.new("uint32_t *")
        with self._lock:
            self._check(self._lib.lic2cpp_get_info(self._codec, self._bytes(data), len(data),
                                                   w, h))
        return int(w[0]), int(h[0])

    def decode(self, data: bytes) -> np.ndarray:
        """The H x W x 3 uint8 RGB pixels of a bitstream."""
        w, h = self.info(data)
        out = np.empty((h, w, 3), dtype=np.uint8)
        with self._lock:
            self._check(self._lib.lic2cpp_decode(self._codec, self._bytes(data), len(data),
                                                 self._bytes(out), 3 * w, out.nbytes))
        return out

    def decode_rows(self, data: bytes,
                    callback: Callable[[int, np.ndarray], bool | None]) -> None:
        """Decodes band by band: ``callback(first_row, rows)`` gets each band of rows (an
        n x W x 3 array valid during the call, top to bottom); returning True stops."""
        ffi = self._ffi
        failure: list[BaseException] = []

        def on_rows(_user: Any, rgb: Any, stride: int, first: int, rows: int) -> int:
            band = np.frombuffer(ffi.buffer(rgb, stride * rows), dtype=np.uint8)
            band = band.reshape(rows, stride)[:, : 3 * width].reshape(rows, width, 3)
            return 1 if callback(int(first), band) else 0

        def on_error(exc: type[BaseException], value: BaseException, _tb: Any) -> int:
            failure.append(value)
            return 1

        width, _ = self.info(data)
        c_callback = ffi.callback("lic2cpp_rows_callback", on_rows, onerror=on_error)
        with self._lock:
            status = self._lib.lic2cpp_decode_rows(self._codec, self._bytes(data), len(data),
                                                   c_callback, ffi.NULL)
        if failure:
            raise failure[0]
        if status != 7:  # LIC2CPP_ABORTED: the callback asked to stop
            self._check(status)

    def plan(self, data: bytes) -> dict[str, int]:
        """How :meth:`decode_rows` tiles a bitstream within the budget, without decoding it:
        ``tiles_down``, ``tiles_across``, ``window_height``, ``window_width`` (latent cells),
        ``working_set``, ``least`` (the smallest budget that works), ``whole`` (bytes in
        one piece), ``budget`` (0: none). LicError when the budget is too small."""
        plan = self._ffi.new("lic2cpp_plan *")
        with self._lock:
            self._check(self._lib.lic2cpp_plan_decode(self._codec, self._bytes(data),
                                                      len(data), plan))
        return _plan_dict(plan)

    def plan_encode(self, width: int, height: int) -> dict[str, int]:
        """How :meth:`encode` tiles the analysis transform of a width x height image (the
        fields of :meth:`plan`)."""
        plan = self._ffi.new("lic2cpp_plan *")
        with self._lock:
            self._check(self._lib.lic2cpp_plan_encode(self._codec, width, height, plan))
        return _plan_dict(plan)

    def latent(self, data: bytes) -> np.ndarray:
        """The de-quantised latent of a bitstream, float32 (h, w, C) (`decoder --dump-latent`)."""
        ffi = self._ffi
        y = ffi.new("float **")
        dims = [ffi.new("uint32_t *") for _ in range(3)]
        with self._lock:
            self._check(self._lib.lic2cpp_decode_latent(self._codec, self._bytes(data),
                                                        len(data), y, *dims))
        try:
            shape = tuple(int(d[0]) for d in dims)
            n = shape[0] * shape[1] * shape[2]
            return np.frombuffer(ffi.buffer(y[0], 4 * n), dtype=np.float32).reshape(shape).copy()
        finally:
            self._lib.lic2cpp_free(y[0])


def _plan_dict(plan: Any) -> dict[str, int]:
    fields = ("tiles_down", "tiles_across", "window_height", "window_width", "working_set",
              "least", "whole", "budget")
    return {name: int(getattr(plan, name)) for name in fields}
