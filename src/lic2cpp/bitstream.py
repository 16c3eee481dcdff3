"""The codec's bitstream container (docs/bitstream.md), read in Python.

The C++ decoder is what decodes payloads; this independent reader of the header and of
the table of sub-streams lets tests and tools check what the encoder writes against the
specification (1.0, 1.1 and 2.0 streams), and turn a one-band 2.0 stream (which encoders
never write: they write such a latent as 1.x) into the 1.0 stream of the same image.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from lic2cpp.errors import LicError

MAGIC = b"LICB"
VERSION_MAJOR = 2
VERSION_MINOR = 0
OLDEST_MAJOR = 1
# magic, major, minor, mode, reserved, width, height, channels, latent_h, latent_w,
# band_rows (1.x: reserved), fingerprint, payload_size, checksum
HEADER = struct.Struct("<4sBBBBIIHHHHQII")
HEADER_SIZE = HEADER.size  # 40
FNV32_OFFSET = 0x811C9DC5
FNV32_PRIME = 0x01000193


def fnv1a32(data: bytes, h: int = FNV32_OFFSET) -> int:
    """FNV-1a 32-bit, the bitstream's checksum."""
    for byte in data:
        h = ((h ^ byte) * FNV32_PRIME) & 0xFFFFFFFF
    return h


@dataclass
class StreamInfo:
    version: tuple[int, int]
    mode: int
    width: int
    height: int
    channels: int
    latent_h: int
    latent_w: int
    band_rows: int  # latent rows per sub-stream (1.x: latent_h)
    fingerprint: int
    payload_size: int
    substreams: list[tuple[int, int]]  # (offset in the file, size) of each band's stream


def band_count(latent_h: int, band_rows: int) -> int:
    return -(-latent_h // band_rows)


def read_stream(data: bytes) -> StreamInfo:
    """Header and sub-stream table of a bitstream; LicError if the container is invalid."""
    if len(data) < HEADER_SIZE or data[:4] != MAGIC:
        raise LicError("not a lic2cpp bitstream (bad magic or short header)")
    (_, major, minor, mode, _, width, height, channels, latent_h, latent_w, band_rows,
     fingerprint, payload_size, checksum) = HEADER.unpack_from(data)
    if not OLDEST_MAJOR <= major <= VERSION_MAJOR:
        raise LicError(f"unsupported bitstream version {major}")
    if payload_size != len(data) - HEADER_SIZE:
        raise LicError("payload size disagrees with the file size")
    if fnv1a32(data[HEADER_SIZE:], fnv1a32(data[:HEADER_SIZE - 4])) != checksum:
        raise LicError("checksum mismatch")
    if major == 1:
        band_rows = latent_h
        subs = [(HEADER_SIZE, payload_size)]
    else:
        if mode != 1:
            raise LicError(f"coding mode {mode} in a 2.0 stream")
        if band_rows < 1:
            raise LicError("band height 0")
        bands = band_count(latent_h, band_rows)
        table = 4 * (bands - 1)
        if table > payload_size:
            raise LicError("truncated sub-stream table")
        sizes = list(struct.unpack_from(f"<{bands - 1}I", data, HEADER_SIZE))
        sizes.append(payload_size - table - sum(sizes))
        if sizes[-1] < 0:
            raise LicError("sub-stream sizes exceed the payload")
        subs, pos = [], HEADER_SIZE + table
        for size in sizes:
            subs.append((pos, size))
            pos += size
    return StreamInfo((major, minor), mode, width, height, channels, latent_h, latent_w,
                      band_rows, fingerprint, payload_size, subs)


def as_version1(data: bytes) -> bytes:
    """The 1.0 stream of a 2.0 stream with a single band (same payload, 1.0 header)."""
    info = read_stream(data)
    if info.version[0] != 2 or len(info.substreams) != 1:
        raise LicError("only a 2.0 stream of one band has a 1.0 equivalent")
    fields = list(HEADER.unpack_from(data))
    fields[1], fields[2], fields[10] = 1, 0, 0  # version 1.0, reserved field zero
    payload = data[HEADER_SIZE:]
    head = HEADER.pack(*fields[:-1], 0)[:HEADER_SIZE - 4]
    return head + struct.pack("<I", fnv1a32(payload, fnv1a32(head))) + payload
