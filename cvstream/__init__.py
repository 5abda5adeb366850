"""cvstream: a streaming runtime for complex-valued signal processing and neural inference."""

__version__ = "0.1.0"

import os as _os  # noqa: E402

_here = _os.path.dirname(_os.path.abspath(__file__))
_root = _os.path.dirname(_here)
if not _os.path.isdir(_os.path.join(_here, "blocks")) and \
        _os.path.isfile(_os.path.join(_root, "blocks", "__init__.py")) and \
        _os.path.isfile(_os.path.join(_root, "pyproject.toml")):
    # imported from the source tree (e.g. python run in the repository root, which shadows
    # an installed copy): blocks/ and models/ are cvstream.blocks and cvstream.models there
    __path__.append(_root)  # noqa: F821 - a package's __path__

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
