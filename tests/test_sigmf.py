"""SigMF read and written per the specification: core:offset, non-conforming datasets
(core:dataset, core:header_bytes, core:trailing_bytes), several captures; what cvstream
writes passes the sigmf package's own validator."""
import json

import numpy as np
from sigmf import sigmffile
from sigmf.validate import validate

from conftest import run_cli


def _meta(tmp_path, name, glob, captures, annotations=()):
    doc = {"global": {"core:datatype": "cf32_le", "core:version": "1.2.0", **glob},
           "captures": list(captures), "annotations": list(annotations)}
    path = tmp_path / f"{name}.sigmf-meta"
    path.write_text(json.dumps(doc))
    return path


def _read(graph_file, tmp_path, meta):
    """Run sigmf_source -> sigmf_sink; returns (samples, written metadata)."""
    path = graph_file(f"""
    blocks:
      rec: {{type: sigmf_source, path: {meta}, chunk: 1000}}
      out: {{type: sigmf_sink, path: {tmp_path / 'copy.sigmf-meta'}}}
    connections: [rec -> out]
    """)
    res = run_cli("run", str(path))
    assert res.returncode == 0, res.stderr
    data = np.fromfile(tmp_path / "copy.sigmf-data", dtype=np.complex64)
    return data, json.loads((tmp_path / "copy.sigmf-meta").read_text())


def test_core_offset_is_an_index_not_samples_to_skip(graph_file, tmp_path):
    x = np.arange(100_000, dtype=np.complex64)
    x.tofile(tmp_path / "big.sigmf-data")
    meta = _meta(tmp_path, "big", {"core:offset": 1_000_000, "core:sample_rate": 1e6},
                 [{"core:sample_start": 0}])
    data, _ = _read(graph_file, tmp_path, meta)
    np.testing.assert_array_equal(data, x)


def test_non_conforming_dataset_with_headers_and_several_captures(graph_file, tmp_path):
    """A .dat file: a 16-byte header before each of two captures, 8 trailing bytes; the
    samples come out in order, each capture's frequency and time at its first sample, and
    the copy keeps both captures."""
    a = np.arange(500, dtype=np.complex64)
    b = np.arange(500, 800, dtype=np.complex64)
    blob = b"H" * 16 + a.tobytes() + b"H" * 16 + b.tobytes() + b"T" * 8
    (tmp_path / "capture.dat").write_bytes(blob)
    meta = _meta(tmp_path, "ncd", {"core:dataset": "capture.dat", "core:trailing_bytes": 8,
                                   "core:sample_rate": 2e6},
                 [{"core:sample_start": 0, "core:header_bytes": 16,
                   "core:frequency": 100e6, "core:datetime": "2026-01-02T03:04:05.25Z"},
                  {"core:sample_start": 500, "core:header_bytes": 16,
                   "core:frequency": 101e6}])
    data, copy = _read(graph_file, tmp_path, meta)
    np.testing.assert_array_equal(data, np.r_[a, b])
    assert copy["global"]["core:sample_rate"] == 2e6
    assert copy["captures"] == [
        {"core:sample_start": 0, "core:frequency": 100e6,
         "core:datetime": "2026-01-02T03:04:05.250000000Z"},
        {"core:sample_start": 500, "core:frequency": 101e6}]
    validate(copy)  # the sigmf package's validator accepts what we wrote
    rec = sigmffile.fromfile(str(tmp_path / "copy.sigmf-meta"))
    assert [c["core:sample_start"] for c in rec.get_captures()] == [0, 500]


def test_samples_before_the_first_capture_are_read_too(graph_file, tmp_path):
    x = np.arange(300, dtype=np.complex64)
    x.tofile(tmp_path / "late.sigmf-data")
    meta = _meta(tmp_path, "late", {}, [{"core:sample_start": 100, "core:frequency": 5e6}])
    data, copy = _read(graph_file, tmp_path, meta)
    np.testing.assert_array_equal(data, x)
    assert copy["captures"][-1] == {"core:sample_start": 100, "core:frequency": 5e6}


def test_bad_annotation_messages_are_counted_not_fatal(graph_file, tmp_path):
    """sigmf_sink fed messages from a peer: one without sample_start, one with a text
    sample_count; both counted, the good one written, and the file validates."""
    from cvstream.blocks.sigmf_io import SigMFSink
    sink = SigMFSink(path=str(tmp_path / "a.sigmf-meta"), rate=1e6)
    sink.process(np.zeros(10, np.complex64))
    sink.on_message("annotations", {"label": "no start"})
    sink.on_message("annotations", {"sample_start": 1, "sample_count": "many"})
    sink.on_message("annotations", {"sample_start": 2, "sample_count": 3, "label": "ok"})
    sink.stop()
    meta = json.loads((tmp_path / "a.sigmf-meta").read_text())
    validate(meta)
    assert [a["core:label"] for a in meta["annotations"]] == ["ok"]
    assert sink.counters == {"bad_annotations": 2}


def test_written_extension_namespaces_are_declared(tmp_path):
    """The cvstream: fields a detection carries and a peer's own namespaced ones are
    declared in core:extensions, so the validator has no undeclared namespace to warn of
    (a ValidationError in its future versions); a file without them declares none."""
    import warnings

    from cvstream.blocks.sigmf_io import CVSTREAM_EXTENSION, SigMFSink
    sink = SigMFSink(path=str(tmp_path / "a.sigmf-meta"), rate=1e6)
    sink.process(np.zeros(10, np.complex64))
    sink.on_message("annotations", {"sample_start": 2, "sample_count": 3, "snr_db": 9.5,
                                    "ntia-sensor:antenna": "dipole"})
    sink.stop()
    meta = json.loads((tmp_path / "a.sigmf-meta").read_text())
    assert meta["global"]["core:extensions"] == [
        {"name": "cvstream", "version": CVSTREAM_EXTENSION, "optional": True},
        {"name": "ntia-sensor", "version": "unspecified", "optional": True}]
    assert meta["annotations"][0]["cvstream:snr_db"] == 9.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validate(meta)
    plain = SigMFSink(path=str(tmp_path / "b.sigmf-meta"), rate=1e6)
    plain.process(np.zeros(10, np.complex64))
    plain.on_message("annotations", {"sample_start": 2, "label": "x"})
    plain.stop()
    assert "core:extensions" not in json.loads((tmp_path / "b.sigmf-meta").read_text())["global"]


def test_each_annotation_shape_is_validated_however_many_come_before(tmp_path):
    """write_meta checks one annotation of each shape: a field of the wrong type that only
    the schema knows (core:generator is text) is refused in the 10001st annotation too,
    naming it, and nothing is written."""
    import pytest

    from cvstream.blocks.sigmf_io import one_of_each_shape, write_meta
    from cvstream.errors import CvstreamError
    good = [{"core:sample_start": k, "core:label": "a"} for k in range(10_000)]
    bad = {"core:sample_start": 10_000, "core:label": "a", "core:generator": 5}
    assert one_of_each_shape(good + [bad]) == [0, 10_000]
    path = tmp_path / "c.sigmf-meta"
    write_meta(str(path), 1e6, [{"core:sample_start": 0}], good)
    assert len(json.loads(path.read_text())["annotations"]) == 10_000
    path.unlink()
    with pytest.raises(CvstreamError, match="annotations/10000/core:generator"):
        write_meta(str(path), 1e6, [{"core:sample_start": 0}], good + [bad])
    assert not path.exists()


def test_annotations_written_beside_a_recording_read_its_samples(graph_file, tmp_path):
    """sigmf_annotations writes metadata for a recording's own samples: core:dataset names
    its data file, its global object and captures kept, its annotations with the new ones
    in order, the cvstream extension declared; sigmf_source reads the same samples through
    it; a bad message is counted; a bare file name goes beside the recording; its own
    metadata file, or a file in another folder (core:dataset is a file name), is refused as
    the output, naming the parameter."""
    import warnings

    import pytest

    from cvstream.blocks.sigmf_annotations import SigMFAnnotations
    from cvstream.errors import ParamError
    x = (np.arange(5000) * (1 + 1j)).astype(np.complex64)
    x.tofile(tmp_path / "rec.sigmf-data")
    meta = _meta(tmp_path, "rec", {"core:sample_rate": 1e6},
                 [{"core:sample_start": 0, "core:frequency": 915e6}],
                 [{"core:sample_start": 3000, "core:label": "theirs"}])
    out = tmp_path / "ann.sigmf-meta"
    block = SigMFAnnotations(recording=str(meta), path=str(out))
    block.start()
    block.on_message("annotations", {"sample_start": 100, "sample_count": 50,
                                     "label": "qam", "snr_db": 12.5})
    block.on_message("annotations", {"label": "no start"})
    block.stop()
    doc = json.loads(out.read_text())
    assert doc["global"]["core:dataset"] == "rec.sigmf-data"
    assert doc["global"]["core:sample_rate"] == 1e6
    assert doc["captures"] == [{"core:sample_start": 0, "core:frequency": 915e6}]
    assert [(a["core:sample_start"], a["core:label"]) for a in doc["annotations"]] == \
        [(100, "qam"), (3000, "theirs")]
    assert doc["annotations"][0]["cvstream:snr_db"] == 12.5
    assert doc["global"]["core:extensions"][0]["name"] == "cvstream"
    assert block.counters == {"bad_annotations": 1}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validate(doc)
    data, _ = _read(graph_file, tmp_path, out)
    assert np.array_equal(data, x)
    assert not out.with_suffix(".sigmf-data").exists()
    bare = SigMFAnnotations(recording=str(meta), path="bare.sigmf-meta")   # beside it
    bare.start()
    bare.stop()
    assert json.loads((tmp_path / "bare.sigmf-meta").read_text())["annotations"] == \
        [{"core:sample_start": 3000, "core:label": "theirs"}]
    with pytest.raises(ParamError, match="path"):
        SigMFAnnotations(recording=str(meta), path=str(meta))
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(ParamError, match="recording's folder"):
        SigMFAnnotations(recording=str(meta), path=str(tmp_path / "elsewhere" / "a"))
