"""cvstream: a streaming runtime for complex-valued signal processing and neural inference."""

__version__ = "0.1.0"

from .block import Block, GeneralBlock, RateBlock, Sink, Source, SyncBlock  # noqa: E402
from .chunk import Chunk, Tag  # noqa: E402
from .errors import CvstreamError, EndOfStream, ParamError  # noqa: E402
from .graph import Graph  # noqa: E402
from .params import Param  # noqa: E402
from .ports import In, MsgIn, MsgOut, Out  # noqa: E402
from .registry import register  # noqa: E402
from . import pmt  # noqa: E402


def run(path: str, overrides: dict | None = None, **variables) -> dict:
    """Run the YAML flow graph at ``path`` to its end, as ``cvstream run`` does; keyword
    arguments set variables (``rate=2e6``), ``overrides`` anything ``--set`` takes
    (``{"src.freq": 1e5}``). Returns the per-block stats."""
    from .loader import load_graph
    return load_graph(path, {**(overrides or {}), **variables}).run()


__all__ = ["Block", "GeneralBlock", "RateBlock", "Sink", "Source", "SyncBlock", "Chunk", "Tag",
           "CvstreamError", "EndOfStream", "ParamError", "Graph", "Param", "In", "Out",
           "MsgIn", "MsgOut", "register", "run"]
