"""SigMF recordings: sigmf_source (samples + rx_rate/rx_freq tags) and sigmf_sink
(samples + annotations from a message port). Metadata is read, validated and written with
the ``sigmf`` package; samples are streamed in chunks."""
from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone

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


@dataclass
class Segment:
    """One capture segment: ``count`` samples from byte ``start`` of the dataset (None:
    to the end), beginning at sample index ``sample_start`` of the recording."""

    sample_start: int
    start: int
    count: int | None
    capture: dict


@dataclass
class Recording:
    """A SigMF recording as read from its metadata (checked against the SigMF schema with
    the ``sigmf`` package's validator, then for what streaming needs)."""

    meta: str
    data: str
    fmt: str
    doc: dict   # the metadata as read: global object, captures, annotations
    segments: list[Segment]
    end: int  # bytes of the dataset that hold samples (core:trailing_bytes left out)

    @property
    def info(self) -> dict:
        """The global object."""
        return self.doc["global"]

    @property
    def sample_rate(self) -> float | None:
        rate = self.info.get("core:sample_rate")
        return float(rate) if rate else None


def read_recording(path: str) -> Recording:
    """Read and check the metadata of a recording; raises CvstreamError with one line."""
    meta = meta_path(path)
    try:
        with open(meta, encoding="utf-8") as fh:
            doc = json.load(fh)
    except OSError as exc:
        raise CvstreamError(f"'{meta}': {exc.strerror}") from None
    except (ValueError, RecursionError) as exc:
        raise CvstreamError(f"'{meta}': not JSON: {str(exc)[:100]}") from None
    problem = _schema_problem(doc)
    if problem:
        raise CvstreamError(f"'{meta}': not valid SigMF metadata: {problem}")
    info = doc["global"]
    datatype = info["core:datatype"]
    if datatype not in DATATYPES:
        raise CvstreamError(f"'{meta}': datatype '{datatype}' is not supported (supported: "
                            f"{', '.join(DATATYPES)})")
    if info.get("core:num_channels", 1) != 1:
        raise CvstreamError(f"'{meta}': {info['core:num_channels']} channels; only single-"
                            "channel recordings are supported")
    folder = os.path.dirname(meta)
    data = (os.path.join(folder, info["core:dataset"]) if "core:dataset" in info
            else meta[: -len(".sigmf-meta")] + ".sigmf-data")
    if not os.path.isfile(data):
        raise CvstreamError(f"'{meta}': data file '{data}' is missing")
    end = os.path.getsize(data) - int(info.get("core:trailing_bytes", 0))
    fmt = DATATYPES[datatype]
    return Recording(meta, data, fmt, doc, _segments(meta, doc["captures"], fmt), end)


def _schema_problem(doc) -> str | None:
    """The SigMF schema's most relevant complaint about ``doc`` (as ``sigmf.validate``
    raises it), one line, or None."""
    from jsonschema.exceptions import best_match
    if not isinstance(doc, dict):
        return f"the top level is a {type(doc).__name__}, not an object"
    exc = best_match(_sigmf_validator().iter_errors(doc))
    if exc is not None:
        where = "/".join(str(p) for p in exc.absolute_path) or "top level"
        return f"{where}: {exc.message[:120]}"
    return None


@functools.lru_cache(maxsize=1)
def _sigmf_validator():
    """A validator for the sigmf library's schema, the schema itself checked once
    (``sigmf.validate`` checks it on every call: 12 ms, three times a graph)."""
    from jsonschema.validators import validator_for
    from sigmf.schema import get_schema
    schema = get_schema()
    cls = validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _segments(meta: str, captures: list, fmt: str) -> list[Segment]:
    """Where each capture's samples lie in the dataset: its sample_start times the item
    size, plus the header bytes of it and of every capture before it (non-conforming
    datasets put a header in front of each capture)."""
    captures = captures or [{"core:sample_start": 0}]
    starts = [int(c["core:sample_start"]) for c in captures]
    if starts != sorted(starts):
        raise CvstreamError(f"'{meta}': captures are not sorted by core:sample_start")
    item = FORMATS[fmt].item_bytes
    out, headers = [], 0
    for k, cap in enumerate(captures):
        headers += int(cap.get("core:header_bytes", 0))
        count = starts[k + 1] - starts[k] if k + 1 < len(captures) else None
        out.append(Segment(starts[k], headers + starts[k] * item, count, cap))
    if starts[0] != 0:  # samples before the first capture belong to no segment
        out.insert(0, Segment(0, 0, starts[0], {}))
    return out


def rx_time(datetime_text: str) -> tuple | None:
    """core:datetime (ISO 8601, UTC) as GNU Radio's rx_time: (whole seconds, fraction)."""
    text = datetime_text.strip().replace("z", "Z")
    whole, _, frac = text.rstrip("Z").partition(".")
    try:
        stamp = datetime.fromisoformat(whole).replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    fraction = float("0." + frac) if frac.isdigit() else 0.0
    return (np.uint64(int(stamp.timestamp())), fraction)


@register("sigmf_source")
class SigMFSource(Source):
    """Read a SigMF recording (cf32_le, ci16_le, ci8, cu8 and real rf32/ri16/ri8/ru8).

    Per the SigMF specification: every capture segment is read from where it lies (its
    ``core:header_bytes`` skipped, for non-conforming datasets named by ``core:dataset``;
    ``core:trailing_bytes`` ignored); ``core:offset`` is the index the first sample had in
    a larger stream and moves nothing. Integer data is scaled to [-1, 1). Tags: ``rx_rate``
    (core:sample_rate) at item 0; ``rx_freq`` (core:frequency) and ``rx_time``
    (core:datetime) at the first item of every capture that has them.
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
                read_recording(self.path)
            except CvstreamError as exc:
                problems.append(("path", str(exc)))
        return problems

    def output_types(self, in_types):
        rec = read_recording(self.path)
        return {"out": FORMATS[rec.fmt].float_type.with_rate(rec.sample_rate)}

    def total_items(self):
        readers = getattr(self, "_readers", None)
        return sum(r.items for r in readers) if readers else None

    def start(self):
        rec = read_recording(self.path)
        self._readers = [RawReader(rec.data, rec.fmt, self.chunk, seg.start, seg.count,
                                   rec.end) for seg in rec.segments]
        trailing = self._readers[-1].trailing_bytes
        if trailing:
            self.count("trailing_bytes", trailing)
        self._tags = []
        if rec.sample_rate:
            self._tags.append((0, "rx_rate", rec.sample_rate))
        for seg in rec.segments:
            cap = seg.capture
            if "core:frequency" in cap:
                self._tags.append((seg.sample_start, "rx_freq", float(cap["core:frequency"])))
            stamp = rx_time(cap["core:datetime"]) if "core:datetime" in cap else None
            if stamp is not None:
                self._tags.append((seg.sample_start, "rx_time", stamp))
        self._segment = 0
        self._pos = 0

    def work(self):
        x = None
        while x is None and self._segment < len(self._readers):
            x = self._readers[self._segment].read()
            if x is None:
                self._segment += 1
        if x is None:
            raise EndOfStream
        end = self._pos + len(x)
        for off, key, value in self._tags:
            if self._pos <= off < end:
                self.add_tag(off - self._pos, key, value)
        self._pos = end
        return x

    def stop(self):
        for reader in getattr(self, "_readers", []):
            reader.close()


ANNOTATION_KEYS = ("sample_start", "sample_count", "freq_lower_edge", "freq_upper_edge",
                   "label", "comment")


def annotation_from_message(msg: dict) -> dict:
    """Detection message -> SigMF annotation fields (``core:`` keys); raises CvstreamError
    when the message cannot be one (no sample_start, fields of the wrong type)."""
    out = {}
    for key, value in msg.items():
        if not isinstance(key, str):
            continue
        short = key[5:] if key.startswith("core:") else key
        if short in ANNOTATION_KEYS:
            out["core:" + short] = value
        elif ":" in key:
            out[key] = value
        elif isinstance(value, (int, float, str, bool)):
            out["cvstream:" + key] = value  # extra fields (confidence, snr_db...) namespaced
    if "core:sample_start" not in out:
        raise CvstreamError(f"annotation message without sample_start: {str(msg)[:120]}")
    validate_annotation(out)
    return out


def take_annotation(block, msg: dict, annotations: list[dict]) -> None:
    """A sink's message as an annotation appended to ``annotations``, or counted on the
    block as ``bad_annotations`` where it cannot be one."""
    try:
        annotations.append(annotation_from_message(msg))
    except CvstreamError:
        block.count("bad_annotations")


def validate_annotation(ann: dict) -> None:
    for key in ("core:sample_start", "core:sample_count"):
        value = ann.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise CvstreamError(f"annotation {key} must be a whole number >= 0, got "
                                f"{str(value)[:40]}")
    for key in ("core:freq_lower_edge", "core:freq_upper_edge"):
        value = ann.get(key, 0.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not np.isfinite(value):
            raise CvstreamError(f"annotation {key} must be a number, got {str(value)[:40]}")
    for key in ("core:label", "core:comment"):
        if not isinstance(ann.get(key, ""), str):
            raise CvstreamError(f"annotation {key} must be text")


@register("sigmf_sink")
class SigMFSink(Sink):
    """Write a SigMF recording (cf32_le) with annotations taken from a message port.

    Messages need ``sample_start`` and may carry ``sample_count``, ``freq_lower_edge``,
    ``freq_upper_edge``, ``label``, ``comment`` (with or without the ``core:`` prefix); a
    message that cannot be an annotation is counted (``bad_annotations``), not written.
    Sample rate and centre frequency come from parameters or the rx_rate / rx_freq tags; an
    ``rx_freq`` or ``rx_time`` tag later in the stream starts a new capture segment there
    (``core:frequency``, ``core:datetime``). Message fields SigMF has no key for are
    written as ``cvstream:`` keys, the namespaces used declared in ``core:extensions``; the
    metadata passes the SigMF validator.
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
        self._captures = [{"core:sample_start": 0}]
        if self.freq is not None:
            self._captures[0]["core:frequency"] = float(self.freq)
        self._annotations: list[dict] = []
        self._count = 0

    def work(self, x):
        for tag in self.input_tags:
            if tag.key == "rx_time":
                self._time_tag(tag)
            if tag.key not in ("rx_rate", "rx_freq"):
                continue
            value = tag_number(tag)
            if value is None or (tag.key == "rx_rate" and value <= 0):
                self.count("bad_tag_values")
            elif tag.key == "rx_rate" and self._rate is None:
                self._rate = value
            elif tag.key == "rx_freq" and self.freq is None:
                if self._captures[-1].get("core:frequency") != value:
                    self._capture_at(tag.offset)["core:frequency"] = value
        np.ascontiguousarray(x).tofile(self._fh)
        self._count += len(x)

    def _time_tag(self, tag) -> None:
        value = tag.value
        try:
            secs, frac = int(value[0]), float(value[1])
        except (TypeError, ValueError, IndexError, OverflowError):
            self.count("bad_tag_values")
            return
        if not (0 <= secs < 253402300800 and 0 <= frac < 1):  # up to year 9999
            self.count("bad_tag_values")
            return
        stamp = datetime.fromtimestamp(secs, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        self._capture_at(tag.offset)["core:datetime"] = f"{stamp}{f'{frac:.9f}'[1:]}Z"

    def _capture_at(self, offset: int) -> dict:
        """The capture segment starting at ``offset``, started there if need be."""
        last = self._captures[-1]
        if offset <= last["core:sample_start"]:
            return last
        cap = {"core:sample_start": int(offset)}
        if "core:frequency" in last:
            cap["core:frequency"] = last["core:frequency"]
        self._captures.append(cap)
        return cap

    def on_message(self, port, msg):
        take_annotation(self, msg, self._annotations)

    def stop(self):
        fh = getattr(self, "_fh", None)
        if fh is None or fh.closed:
            return
        fh.close()
        write_meta(self._meta_path, self._rate, self._captures, self._annotations,
                   self.description, self.author)


def write_meta(path: str, rate, captures: list[dict], annotations, description="",
               author="") -> None:
    """Write a cf32_le .sigmf-meta file (the data file sits beside it): ``write_checked_meta``
    of its global object, ``captures`` and ``annotations``."""
    from cvstream import __version__
    glob = {"core:datatype": "cf32_le", "core:version": "1.2.0",
            "core:recorder": f"cvstream {__version__}"}
    if rate:
        glob["core:sample_rate"] = float(rate)
    if description:
        glob["core:description"] = description
    if author:
        glob["core:author"] = author
    write_checked_meta(path, {"global": glob, "captures": captures,
                              "annotations": annotations})


def write_checked_meta(path: str, meta: dict) -> None:
    """Write SigMF metadata ``meta`` to ``path``: its annotations in sample order, its
    extension namespaces declared (``declared_extensions``, beside those it declares), and
    checked with the SigMF validator first: the global object, the captures and one
    annotation of each shape (``one_of_each_shape``; ``annotation_from_message`` checked
    each one's core fields), so that the check stays a fraction of a second for a day's
    annotations. A problem raises CvstreamError naming the field, and nothing is written."""
    meta = dict(meta, annotations=sorted(meta["annotations"],
                                         key=lambda a: a["core:sample_start"]))
    declared = list(meta["global"].get("core:extensions", []))
    names = {ext.get("name") for ext in declared if isinstance(ext, dict)}
    declared += [ext for ext in declared_extensions(meta) if ext["name"] not in names]
    if declared:
        meta["global"] = dict(meta["global"], **{"core:extensions": declared})
    shapes = one_of_each_shape(meta["annotations"])
    problem = _schema_problem(dict(meta, annotations=[meta["annotations"][k] for k in shapes]))
    if problem:   # named by the annotation's place in the file
        problem = re.sub(r"^annotations/(\d+)",
                         lambda m: f"annotations/{shapes[int(m.group(1))]}", problem)
        raise CvstreamError(f"'{path}': invalid SigMF metadata: {problem}")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=2)
        fh.write("\n")


#: the version of the ``cvstream:`` SigMF extension namespace: the annotation fields a
#: detection message carries beyond SigMF's own (``cvstream:confidence``,
#: ``cvstream:snr_db``...) and the synthesizer's truth (``cvstream:modulation``)
CVSTREAM_EXTENSION = "1.0.0"


def declared_extensions(meta: dict) -> list[dict]:
    """The ``core:extensions`` entries that a SigMF document's keys need: every namespace
    but ``core`` must be declared. ``cvstream`` at CVSTREAM_EXTENSION; another namespace
    (a message's own ``ns:key`` fields, passed through) as optional, of a version cvstream
    cannot know ("unspecified")."""
    used = {key.split(":")[0] for section in (meta["global"], *meta["captures"],
                                              *meta["annotations"])
            for key in section if ":" in key} - {"core"}
    return [{"name": name, "version": CVSTREAM_EXTENSION if name == "cvstream"
             else "unspecified", "optional": True} for name in sorted(used)]


def one_of_each_shape(annotations: list[dict]) -> list[int]:
    """The indices of the first annotation of each shape (its keys and their values'
    types), in order."""
    seen, out = set(), []
    for k, ann in enumerate(annotations):
        shape = tuple(sorted((key, type(value).__name__) for key, value in ann.items()))
        if shape not in seen:
            seen.add(shape)
            out.append(k)
    return out
