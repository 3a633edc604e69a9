"""The README's Python API block runs as written (in a scratch folder), twice in a row: the second
time over the first one's folders, with its trainings cut to a few steps (what is checked then is
that a reader's second run does not trip over its own folders, not the training again)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.slow
def test_the_readme_python_block_runs(tmp_path, monkeypatch, one_thread):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has a Python API block"
    import denoiselab

    monkeypatch.chdir(tmp_path)
    load_config = denoiselab.load_config
    for attempt in range(2):  # a reader runs it again: it must not trip over its own folders
        if attempt:
            monkeypatch.setattr(denoiselab, "load_config", lambda name, sets=(): load_config(name, [*sets, "train.steps=20"]))
        scope: dict = {}
        exec(compile(blocks[0], "README.md", "exec"), scope)  # noqa: S102 - our own documentation
        assert scope["x"].shape == (2000, 2) and (tmp_path / "runs" / "api-quick" / "samples.png").is_file(), attempt
        assert scope["circle"].shape == (1000, 2), attempt
        steps = json.loads((tmp_path / "runs" / "api-shapes" / "run.json").read_text())["step"]
        assert steps == (20 if attempt else 2000), (attempt, steps)
