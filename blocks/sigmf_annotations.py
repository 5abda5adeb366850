"""sigmf_annotations: annotate a SigMF recording without copying its samples. The block
writes a metadata file of its own beside them: the recording's global object and captures,
``core:dataset`` naming the recording's data file (a dataset that a metadata file of
another name describes, which SigMF provides for), and the recording's annotations with the
detections added."""
from __future__ import annotations

import os

from cvstream import MsgIn, Param, Sink, register
from cvstream.errors import ParamError
from cvstream.params import INPUT_FILE, OUTPUT_FILE

from .sigmf_io import meta_path, read_recording, take_annotation, write_checked_meta


@register("sigmf_annotations")
class SigMFAnnotations(Sink):
    """Write a SigMF metadata file with the annotations from a message port for the samples
    of an existing recording (``recording``), which stay where they are: the new file goes
    in the recording's folder (``path`` a bare file name, or a path there),
    ``core:dataset`` names its data file, and its global object, captures and annotations
    are kept. The annotations' sample indices are the stream's offsets, as
    ``sigmf_source`` reading that recording gives them. Messages take the fields
    ``sigmf_sink`` takes; one that cannot be an annotation is counted
    (``bad_annotations``), not written.
    Ports: annotations (message). Latency: the file is written when the graph stops.
    Example: ``out: {type: sigmf_annotations, recording: rec.sigmf-meta, path:
    detections.sigmf-meta}``
    """

    annotations = MsgIn(doc="annotations (dicts)")
    recording = Param(INPUT_FILE, doc="the recording annotated (.sigmf-meta)")
    path = Param(OUTPUT_FILE, doc="output .sigmf-meta, in the recording's folder (a bare "
                 "file name goes there; not the recording's own)")
    description = Param(str, default="", doc="core:description (default: the recording's)")

    def check(self):
        rec = os.path.abspath(meta_path(self.recording))
        # a bare file name goes beside the recording
        self._out = meta_path(os.path.join(os.path.dirname(rec), self.path)
                              if not os.path.dirname(self.path) else self.path)
        if os.path.abspath(self._out) == rec:
            raise ParamError("path", "is the recording's own metadata file, which it would "
                             "overwrite")
        if os.path.dirname(os.path.abspath(self._out)) != os.path.dirname(rec):
            raise ParamError("path", f"must be in the recording's folder "
                             f"({os.path.dirname(rec)}): SigMF's core:dataset is a file name, "
                             f"not a path (sigmf_sink writes a copy anywhere)")

    def file_problems(self):
        problem = INPUT_FILE.check(self.recording)
        if problem:   # (and the output's folder is the recording's)
            return [("recording", problem)]
        problem = OUTPUT_FILE.check(self._out)
        return [("path", problem)] if problem else []

    def start(self):
        self._annotations: list[dict] = []

    def on_message(self, port, msg):
        take_annotation(self, msg, self._annotations)

    def stop(self):
        if getattr(self, "_annotations", None) is None:
            return
        rec = read_recording(self.recording)
        doc = rec.doc
        glob = dict(doc["global"], **{"core:dataset": os.path.basename(rec.data)})
        if self.description:
            glob["core:description"] = self.description
        ours = doc.get("annotations", []) + self._annotations
        write_checked_meta(self._out, {"global": glob, "captures": doc["captures"],
                                       "annotations": ours})
        self._annotations = None
