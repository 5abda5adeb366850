"""Block declarations drive validation, documentation and the YAML schema."""
import numpy as np
import pytest

from cvstream import In, Out, Param, ParamError, SyncBlock
from cvstream.docs import graph_schema, render
from cvstream.registry import block_types, lookup


class Scale(SyncBlock):
    """Scale a stream.

    Example: ``s: {type: scale, k: 2}``
    """

    inp = In("float32")
    out = Out("float32")
    k = Param(float, default=1.0, doc="factor", unit="x", min=0)
    mode = Param(str, default="a", choices=("a", "b"))
    taps = Param(int, doc="required count")

    def work(self, x):
        return x * np.float32(self.k)


def test_params_are_coerced_from_yaml_style_values():
    b = Scale(k="2.5e1", taps="1e3")
    assert b.k == 25.0 and isinstance(b.k, float)
    assert b.taps == 1000 and isinstance(b.taps, int)
    assert b.mode == "a"


@pytest.mark.parametrize("kwargs, field, words", [
    ({"taps": 1, "kk": 2}, "kk", "did you mean 'k'"),
    ({}, "taps", "missing"),
    ({"taps": 1.5}, "taps", "expected an integer"),
    ({"taps": True}, "taps", "expected an integer"),
    ({"taps": 1, "k": -1}, "k", "below the minimum"),
    ({"taps": 1, "mode": "c"}, "mode", "not one of a, b"),
    ({"taps": 1, "k": "fast"}, "k", "not a number"),
])
def test_bad_params_name_the_field(kwargs, field, words):
    with pytest.raises(ParamError) as err:
        Scale(**kwargs)
    assert err.value.field == field
    assert words in str(err.value)
    assert "\n" not in str(err.value)


def test_process_outside_a_graph():
    out = Scale(k=3, taps=1).process(np.arange(4, dtype=np.float32))
    np.testing.assert_array_equal(out, [0, 3, 6, 9])


def test_docs_and_schema_come_from_declarations():
    page = render(Scale)
    assert "k" in page and "factor [x]" in page and "required" in page
    assert "one of a, b" in page
    schema = graph_schema({"scale": Scale})
    block = schema["properties"]["blocks"]["additionalProperties"]["oneOf"][0]
    assert block["required"] == ["type", "taps"]
    # the value itself, or the same written as text ("4e6"), or a ${variable}
    k_value, k_text, k_var = block["properties"]["k"]["anyOf"]
    assert k_value["minimum"] == 0 and k_text["type"] == k_var["type"] == "string"
    assert block["properties"]["mode"]["anyOf"][0]["enum"] == ["a", "b"]


def test_every_builtin_block_is_documented():
    types = block_types()
    assert len(types) >= 20
    for name, cls in types.items():
        doc = cls.__doc__ or ""
        assert "Example" in doc, f"{name} docstring lacks an example"
        assert "Ports" in doc or "ports" in doc.lower(), f"{name} docstring lacks ports"
        assert lookup(name) is cls
        render(cls)


def test_unknown_type_suggests_nearest():
    with pytest.raises(Exception) as err:
        lookup("multiply_cnst")
    assert "did you mean 'multiply_const'" in str(err.value)


def test_readme_block_table_lists_every_block():
    from pathlib import Path
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for name in block_types():
        assert f"| `{name}` |" in readme, f"README block table lacks {name}"


def test_blocks_have_real_signatures_and_readable_params():
    import inspect

    from cvstream.blocks.fft import FFT
    sig = inspect.signature(FFT)
    assert list(sig.parameters)[:3] == ["name", "size", "hop"]
    assert sig.parameters["size"].default == 1024
    assert sig.parameters["size"].annotation is int
    assert sig.parameters["size"].kind is inspect.Parameter.KEYWORD_ONLY
    assert inspect.signature(Scale).parameters["taps"].default is inspect.Parameter.empty
    assert repr(Scale._param_decls["mode"]) == "Param(str, default='a', choices=('a', 'b'))"


def test_the_source_tree_imports_blocks_and_models_like_an_install():
    """python run in the repository root finds the source tree's cvstream/ first (it shadows
    any installed copy); cvstream.blocks and cvstream.models still import from there."""
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).parent.parent
    code = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path "
            "if 'editable' not in repr(f).lower()]; "
            "from cvstream.blocks.fft import FFT; from cvstream.blocks import ZmqSource; "
            "import cvstream.models, cvstream; print(cvstream.__file__, FFT.__module__)")
    res = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [str(root / "cvstream" / "__init__.py"), "cvstream.blocks.fft"]


def test_one_block_module_imports_without_the_others():
    """cvstream.blocks loads its modules when asked: the segmenter's module (what its
    worker process imports) brings neither ZeroMQ nor the audio and radar blocks; a class
    by name, ``__all__`` and the registry load them all."""
    import subprocess
    import sys
    code = ("import sys; import cvstream.blocks.segmenter; "
            "print(sorted(m for m in ('zmq', 'soundfile', 'cvstream.blocks.aec', "
            "'cvstream.blocks.radar_imaging', 'cvstream.blocks.zmq_io') if m in sys.modules)); "
            "from cvstream.blocks import ZmqSource; import cvstream.blocks as b; "
            "print('cvstream.blocks.aec' in sys.modules, ZmqSource.type_name, "
            "'SpectrumSegmenter' in b.__all__, 'FFT' in dir(b))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:2] == ["[]", "True zmq_source True True"]
    from cvstream.registry import block_types
    import cvstream.blocks as blocks
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchBlock'"):
        blocks.NoSuchBlock
    assert {cls.type_name for cls in blocks.block_classes().values()} <= set(block_types())
    assert len(blocks.__all__) == len(blocks.block_classes()) >= 40
