"""gr-zeromq 3.10 stream framing: raw items, or a tag header (pass_tags) before the items.

Header, little-endian: u16 magic 0x5FF0, u8 version 1, u64 offset of the first item,
u64 tag count; per tag: u64 absolute offset, then key, value and srcid as serialized PMTs.
"""
from __future__ import annotations

import struct

from . import pmt
from .chunk import Tag
from .errors import CvstreamError

MAGIC = 0x5FF0
VERSION = 1
HEAD = struct.Struct("<HBQQ")
TAG_OFFSET = struct.Struct("<Q")
#: tags one frame may carry; GNU Radio sends a handful (rx_time, rx_rate, rx_freq, bursts)
MAX_TAGS = 4096


class FrameError(CvstreamError):
    """A ZeroMQ frame that cannot be decoded; the stream goes on without it."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind = kind


def encode_header(offset: int, tags: list[Tag]) -> bytes:
    parts = [HEAD.pack(MAGIC, VERSION, offset, len(tags))]
    for tag in tags:
        parts.append(TAG_OFFSET.pack(tag.offset))
        parts.append(pmt.serialize(tag.key))
        parts.append(pmt.serialize(tag.value))
        parts.append(pmt.serialize(tag.srcid if tag.srcid is not None else False))
    return b"".join(parts)


def decode_header(buf: memoryview) -> tuple[int, list[Tag], int]:
    """(offset, tags, payload start) of a pass_tags frame; raises FrameError (only)."""
    if len(buf) < HEAD.size:
        raise FrameError("truncated", f"frame of {len(buf)} bytes is shorter than the tag header")
    magic, version, offset, ntags = HEAD.unpack_from(buf, 0)
    if magic != MAGIC or version != VERSION:
        raise FrameError("bad_magic", f"bad header magic 0x{magic:04x} version {version} "
                         "(the sender seems to send raw items: set pass_tags: false here, "
                         "or true on both ends)")
    pos = HEAD.size
    tags = []
    if ntags > MAX_TAGS:
        raise FrameError("too_many_tags", f"header claims {ntags} tags (limit {MAX_TAGS})")
    try:
        for _ in range(ntags):
            (toff,) = TAG_OFFSET.unpack_from(buf, pos)
            key, pos = pmt.read(buf, pos + 8)
            value, pos = pmt.read(buf, pos)
            srcid, pos = pmt.read(buf, pos)
            tags.append(Tag(toff, key if isinstance(key, str) else str(key), value, srcid))
    except struct.error:
        raise FrameError("truncated", "tag header ends early") from None
    except pmt.PMTError as exc:
        raise FrameError("bad_pmt", f"undecodable tag: {exc}") from None
    return offset, tags, pos
