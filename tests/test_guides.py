"""Execute the Python code blocks of every user guide in ``guides/*.md``.

For each guide, the fenced code blocks whose info string is exactly ``python`` are run in
order in one shared namespace (so a block can use names defined by earlier blocks), with a
temporary folder as working directory and matplotlib's Agg backend. Blocks fenced as
````` ```python no-run ````` (any extra word ``no-run`` after the language) are shown to
readers but not executed; blocks in other languages (``bash``, ``text``, ...) are skipped.
A failure names the guide, the block number (1-based, counting executed and skipped Python
blocks) and the line where the block starts.
"""
import linecache
import re
import sys
import traceback
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

GUIDES_DIR = Path(__file__).resolve().parent.parent / "guides"
GUIDES = sorted(GUIDES_DIR.glob("*.md"))
FENCE = re.compile(r"^(?P<indent>[ ]{0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


def extract_python_blocks(text):
    """Return ``[(number, first_line, code, run)]`` for the fenced ``python`` blocks.

    ``number`` counts Python blocks from 1, ``first_line`` is the 1-based line of the
    opening fence, ``run`` is False for ``python no-run`` blocks.
    """
    blocks = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, info, start = match["fence"], match["info"].strip(), i
        body = []
        i += 1
        while i < len(lines):
            close = FENCE.match(lines[i])
            if close and close["fence"][0] == fence[0] and len(close["fence"]) >= len(fence) \
                    and not close["info"].strip():
                break
            body.append(lines[i][len(match["indent"]):] if lines[i].startswith(
                match["indent"]) else lines[i])
            i += 1
        else:
            raise ValueError(f"unterminated code fence opened on line {start + 1}")
        words = info.split()
        if words and words[0] == "python":
            blocks.append((len(blocks) + 1, start + 1, "\n".join(body) + "\n",
                           "no-run" not in words[1:]))
        i += 1
    return blocks


def test_extract_python_blocks():
    text = "\n".join([
        "# Title",
        "```python",
        "x = 1",
        "```",
        "```bash",
        "echo hi",
        "```",
        "````python no-run",
        "```",
        "raise SystemExit",
        "````",
        "```python",
        "y = x + 1",
        "```",
    ])
    blocks = extract_python_blocks(text)
    assert [(b[0], b[1], b[3]) for b in blocks] == [(1, 2, True), (2, 8, False), (3, 12, True)]
    assert blocks[0][2] == "x = 1\n" and blocks[1][2] == "```\nraise SystemExit\n"
    with pytest.raises(ValueError, match="unterminated"):
        extract_python_blocks("```python\nx = 1\n")


def test_guides_exist():
    assert "generating_data.md" in [g.name for g in GUIDES]


@pytest.mark.parametrize("guide", GUIDES, ids=[g.name for g in GUIDES])
def test_guide_runs(guide, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = extract_python_blocks(guide.read_text(encoding="utf-8"))
    assert blocks, f"{guide.name} has no python code blocks"
    namespace = {"__name__": "__main__"}
    filenames = []
    try:
        for number, line, code, run in blocks:
            if not run:
                continue
            filename = f"<{guide.name} block {number} (line {line})>"
            linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
            filenames.append(filename)
            error = None
            try:
                exec(compile(code, filename, "exec"), namespace)
            except Exception:
                error = traceback.format_exc()
            if error is not None:
                pytest.fail(
                    f"{guide.name}: python block {number} (fence on line {line}) failed:\n"
                    f"{error}",
                    pytrace=False,
                )
    finally:
        for filename in filenames:
            linecache.cache.pop(filename, None)
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")
