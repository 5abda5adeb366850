"""The README's Python example runs as printed, and prints what its comments say."""
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def section_code(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}")
    return re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)


def test_use_cvstream_from_python_example_runs(tmp_path):
    code = section_code("Use cvstream from Python")
    (tmp_path / "example.py").write_text(code)
    done = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # the values the example's comments state
    assert done.stdout.splitlines() == ["(97, 1024) 614", "(3907, 256)", "384"]
