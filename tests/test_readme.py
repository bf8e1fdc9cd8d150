"""The README's commands are the ones CI runs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands():
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text())


def test_ci_runs_the_readme_test_command_exactly():
    test_cmd = next(c for c in _commands() if "[test]" in c)
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_cmd in ci_lines


def test_readme_first_screen_has_both_commands():
    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:24])
    assert 'pip install ".[deploy]" && cnnlab bench' in first_screen
    assert 'pip install ".[test]" && pytest' in first_screen


def test_readme_python_example_runs_and_its_figures_are_true():
    import torch

    import cnnlab

    block = re.findall(r"```python\n(.+?)\n```", (ROOT / "README.md").read_text(), re.S)[0]
    exec(block, {"x": torch.randn(1, 3, 224, 224)})
    figures = re.search(r"c\.memory_access  # (\d+) (\d+) (\d+) (\d+)", block).groups()
    c = cnnlab.complexity("shufflenet_v2_x1_0")
    assert [int(v) for v in figures] == [c.params, c.macs, c.activations, c.memory_access]
