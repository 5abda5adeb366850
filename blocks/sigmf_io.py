"""SigMF recordings: sigmf_source (samples + rx_rate/rx_freq tags) and sigmf_sink
(samples + annotations from a message port). Metadata is read, validated and written with
the ``sigmf`` package; samples are streamed in chunks."""
from __future__ import annotations

import json
import os

import numpy as np

from cvstream import EndOfStream, In, MsgIn, Out, Param, Sink, Source, register
from cvstream.chunk import tag_number
from cvstream.errors import CvstreamError
from cvstream.params import INPUT_FILE, OUTPUT_FILE

from .file_io import RawReader
from .formats import FORMATS

#: SigMF datatype -> our sample format
DATATYPES = {"cf32_le": "cf32", "ci16_le": "ci16", "ci8": "ci8", "cu8": "cu8",
             "rf32_le": "f32", "ri16_le": "i16", "ri8": "i8", "ru8": "u8"}


def meta_path(path: str) -> str:
    base = path
    for ext in (".sigmf-meta", ".sigmf-data", ".sigmf"):
        if base.endswith(ext):
            base = base[: -len(ext)]
    return base + ".sigmf-meta"


def read_meta(path: str) -> tuple[dict, list, str, str]:
    """(global info, captures, data file path, sample format) of a recording."""
    from sigmf import sigmffile
    from sigmf.error import SigMFError
    meta = meta_path(path)
    try:
        rec = sigmffile.fromfile(meta, skip_checksum=True)
    except (SigMFError, OSError, ValueError, KeyError) as exc:
        raise CvstreamError(f"'{meta}': not a valid SigMF recording: "
                            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                            ) from None
    datatype = rec.get_global_field("core:datatype")
    if datatype not in DATATYPES:
        raise CvstreamError(f"'{meta}': datatype '{datatype}' is not supported (supported: "
                            f"{', '.join(DATATYPES)})")
    data = meta[: -len(".sigmf-meta")] + ".sigmf-data"
    if not os.path.exists(data):
        raise CvstreamError(f"'{meta}': data file '{data}' is missing")
    if rec.get_num_channels() != 1:
        raise CvstreamError(f"'{meta}': {rec.get_num_channels()} channels; only single-"
                            "channel recordings are supported")
    return rec.get_global_info(), rec.get_captures(), data, DATATYPES[datatype]


@register("sigmf_source")
class SigMFSource(Source):
    """Read a SigMF recording (cf32_le, ci16_le, ci8, cu8 and real rf32/ri16/ri8/ru8).

    Integer data is scaled to [-1, 1). Emits ``rx_rate`` (core:sample_rate) at offset 0 and
    ``rx_freq`` (core:frequency) at the start of every capture segment that has one.
    Ports: out (complex64, or float32 for real recordings). Latency: none.
    Example: ``rec: {type: sigmf_source, path: capture.sigmf-meta}``
    """

    out = Out(None, ())
    path = Param(INPUT_FILE, doc=".sigmf-meta (or .sigmf-data) file")
    chunk = Param(int, default=65536, min=1, doc="items per work call")

    def file_problems(self):
        problems = super().file_problems()
        if not problems:
            try:
                read_meta(self.path)
            except CvstreamError as exc:
                problems.append(("path", str(exc)))
        return problems

    def output_types(self, in_types):
        info, _, _, fmt = read_meta(self.path)
        rate = info.get("core:sample_rate")
        return {"out": FORMATS[fmt].float_type.with_rate(float(rate) if rate else None)}

    def total_items(self):
        return getattr(self, "_reader", None) and self._reader.items

    def start(self):
        g, captures, data, fmt = read_meta(self.path)
        self._reader = RawReader(data, fmt, self.chunk, int(g.get("core:offset", 0) or 0))
        if self._reader.trailing_bytes:
            self.count("trailing_bytes", self._reader.trailing_bytes)
        self.sample_rate = g.get("core:sample_rate")
        self._tags = []
        if self.sample_rate:
            self._tags.append((0, "rx_rate", float(self.sample_rate)))
        for cap in captures:
            if "core:frequency" in cap:
                self._tags.append((int(cap.get("core:sample_start", 0)), "rx_freq",
                                   float(cap["core:frequency"])))
        self._pos = 0

    def work(self):
        x = self._reader.read()
        if x is None:
            raise EndOfStream
        end = self._pos + len(x)
        for off, key, value in self._tags:
            if self._pos <= off < end:
                self.add_tag(off - self._pos, key, value)
        self._pos = end
        return x

    def stop(self):
        if getattr(self, "_reader", None) is not None:
            self._reader.close()


ANNOTATION_KEYS = ("sample_start", "sample_count", "freq_lower_edge", "freq_upper_edge",
                   "label", "comment")


def annotation_from_message(msg: dict) -> dict:
    """Detection message -> SigMF annotation fields (``core:`` keys)."""
    out = {}
    for key, value in msg.items():
        short = key[5:] if key.startswith("core:") else key
        if short in ANNOTATION_KEYS:
            out["core:" + short] = value
        elif ":" in key:
            out[key] = value
        elif isinstance(value, (int, float, str, bool)):
            out["cvstream:" + key] = value  # extra fields (confidence, snr_db...) namespaced
    if "core:sample_start" not in out:
        raise CvstreamError(f"annotation message without sample_start: {msg}")
    return out


@register("sigmf_sink")
class SigMFSink(Sink):
    """Write a SigMF recording (cf32_le) with annotations taken from a message port.

    Messages need ``sample_start`` and may carry ``sample_count``, ``freq_lower_edge``,
    ``freq_upper_edge``, ``label``, ``comment`` (with or without the ``core:`` prefix).
    Sample rate and centre frequency come from parameters or the rx_rate / rx_freq tags.
    Ports: in (complex64), annotations (message, optional). Latency: none.
    Example: ``rec: {type: sigmf_sink, path: out.sigmf-meta, rate: 20e6}``
    """

    inp = In("complex64")
    annotations = MsgIn(doc="annotations (dicts)", optional=True)
    path = Param(OUTPUT_FILE, doc="output .sigmf-meta path (the .sigmf-data goes beside it)")
    rate = Param(float, default=0.0, min=0.0, unit="Hz", doc="sample rate (0: rx_rate tag)")
    freq = Param(float, default=None, unit="Hz", doc="centre frequency (default: rx_freq tag)")
    description = Param(str, default="", doc="core:description")
    author = Param(str, default="", doc="core:author")

    def start(self):
        base = meta_path(self.path)[: -len(".sigmf-meta")]
        self._meta_path = base + ".sigmf-meta"
        self._data_path = base + ".sigmf-data"
        self._fh = open(self._data_path, "wb")
        self._rate = self.rate or None
        self._freq = self.freq
        self._annotations: list[dict] = []
        self._count = 0

    def work(self, x):
        for tag in self.input_tags:
            if tag.key not in ("rx_rate", "rx_freq"):
                continue
            value = tag_number(tag)
            if value is None or (tag.key == "rx_rate" and value <= 0):
                self.count("bad_tag_values")
            elif tag.key == "rx_rate" and self._rate is None:
                self._rate = value
            elif tag.key == "rx_freq" and self._freq is None:
                self._freq = value
        np.ascontiguousarray(x).tofile(self._fh)
        self._count += len(x)

    def on_message(self, port, msg):
        self._annotations.append(annotation_from_message(msg))

    def stop(self):
        fh = getattr(self, "_fh", None)
        if fh is None or fh.closed:
            return
        fh.close()
        write_meta(self._meta_path, self._rate, self._freq, self._annotations,
                   self.description, self.author)


def write_meta(path: str, rate, freq, annotations, description="", author="") -> None:
    """Write a validated cf32_le .sigmf-meta file (the data file sits beside it)."""
    from sigmf import sigmffile
    from sigmf.error import SigMFError
    from cvstream import __version__
    glob = {"core:datatype": "cf32_le", "core:version": "1.2.0",
            "core:recorder": f"cvstream {__version__}"}
    if rate:
        glob["core:sample_rate"] = float(rate)
    if description:
        glob["core:description"] = description
    if author:
        glob["core:author"] = author
    capture = {"core:sample_start": 0}
    if freq is not None:
        capture["core:frequency"] = float(freq)
    meta = {"global": glob, "captures": [capture],
            "annotations": sorted(annotations, key=lambda a: a["core:sample_start"])}
    try:
        rec = sigmffile.SigMFFile(metadata=meta, skip_checksum=True)
        rec.validate()
    except SigMFError as exc:
        raise CvstreamError(f"'{path}': invalid SigMF metadata: {exc}") from None
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=2)
        fh.write("\n")
