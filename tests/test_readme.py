"""README's examples run as written: a user copying them gets what the README says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_each_python_example_in_the_readme_runs(
    number: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # examples that open SQLite files write them here
    namespace: dict[str, object] = {}
    for earlier in BLOCKS[:number]:  # later examples build on the names of earlier ones
        exec(compile(earlier, "README.md", "exec"), namespace)
    exec(compile(BLOCKS[number], "README.md", "exec"), namespace)


def test_the_readme_opens_with_the_two_commands() -> None:
    first_block = README.read_text().split("```")[1]
    assert "make demo" in first_block
    assert "make test" in first_block
