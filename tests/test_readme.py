"""The README's Python blocks run as written, each on its own, offline, in an empty folder."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 6


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs_alone_offline(tmp_path, index):
    env = {**os.environ, "ENCODEC_NP_BASE_URL": "http://127.0.0.1:9/", "ENCODEC_NP_CACHE": str(tmp_path / "cache"),
           "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    run = subprocess.run([sys.executable, "-c", BLOCKS[index]], cwd=tmp_path, capture_output=True, text=True,
                         timeout=600, env=env)
    assert run.returncode == 0, f"README block {index + 1}:\n{BLOCKS[index]}\n{run.stderr[-3000:]}"


def test_readme_flag_table_is_the_parsers():
    """The flag table is what the parser defines (regenerate it with encodec_np.cli.flag_table())."""
    from encodec_np.cli import flag_table

    text = README.read_text()
    start = text.index("<!-- flag table")
    table = text[text.index("\n", start) + 1:text.index("\n<!-- end of flag table -->")]
    assert table == flag_table()
