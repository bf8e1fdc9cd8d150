"""The README's commands are the ones CI runs, and every line of its code blocks, typed as
written, runs: the Python blocks are executed, every ``cnnlab`` command line parses (the cheap
ones are run for real, the long ones with ``--help`` appended)."""

import re
import shlex
from pathlib import Path

import pytest

from cnnlab.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

# commands quick enough to run for real (analytic: nothing is timed or trained)
RUN_FOR_REAL = ("models", "info", "lint")


def _commands():
    return re.findall(r"```bash\n(.+?)\n```", README)


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.+?)\n```", README, re.S)


def _cnnlab_lines() -> list[list[str]]:
    """Each ``cnnlab`` command of the README's bash blocks as its argument list (after the
    program), continuation lines joined, comments dropped, ``a && b`` split into two."""
    commands = []
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            while words:
                cut = words.index("&&") if "&&" in words else len(words)
                command, words = words[:cut], words[cut + 1 :]
                if command[:1] == ["cnnlab"]:
                    commands.append(command[1:])
                elif command[:1] == ["torchrun"] and "cnnlab" in command:
                    commands.append(command[command.index("cnnlab") + 1 :])
    return commands


def test_ci_runs_the_readme_test_command_exactly():
    test_cmd = next(c for c in _commands() if "[test]" in c)
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_cmd in ci_lines


def test_readme_first_screen_has_both_commands():
    first_screen = "\n".join(README.splitlines()[:24])
    assert 'pip install ".[deploy]" && cnnlab bench' in first_screen
    assert 'pip install ".[test]" && pytest' in first_screen


def test_readme_python_example_runs_and_its_figures_are_true():
    import cnnlab

    block = _blocks("python")[0]
    exec(block, {})  # defines everything it uses, x included
    figures = re.search(r"c\.memory_access  # (\d+) (\d+) (\d+) (\d+)", block).groups()
    c = cnnlab.complexity("shufflenet_v2_x1_0")
    assert [int(v) for v in figures] == [c.params, c.macs, c.activations, c.memory_access]


def _quicker(monkeypatch):
    """The speed lab's calls with short timings and eager only, so the README's block runs in
    seconds: the calls and the attributes it reads are the README's own."""
    import cnnlab

    fast = {
        "measure_latency": {"min_samples": 3, "min_seconds": 0.05, "max_seconds": 2.0},
        "compare_latency": {"rounds": 3, "min_seconds": 0.05, "warmup_seconds": 0.1},
        "deploy": {"candidates": ("eager",)},
    }
    for name, settings in fast.items():
        real = getattr(cnnlab, name)

        def call(*args, _real=real, _settings=settings, **kwargs):
            return _real(*args, **{**_settings, **kwargs})

        monkeypatch.setattr(cnnlab, name, call)


def test_every_readme_python_block_runs_as_written(monkeypatch):
    _quicker(monkeypatch)
    blocks = _blocks("python")
    assert len(blocks) >= 2
    for block in blocks:
        exec(block, {})


def test_readme_code_blocks_have_no_placeholders():
    # a line typed as written must run: no elided options, no optional parts in brackets
    for block in _blocks("bash") + _blocks("python"):
        for line in block.splitlines():
            code = line.split("#")[0]
            assert "..." not in code and "[--" not in code, line


def test_readme_has_the_commands_it_shows():
    commands = {c[0] for c in _cnnlab_lines()}
    assert {"models", "info", "bench", "latency", "deploy", "train", "eval", "lut"} <= commands


@pytest.mark.parametrize("argv", _cnnlab_lines(), ids=lambda a: " ".join(a)[:60])
def test_every_readme_cnnlab_line_parses(capsys, argv):
    if ">" in argv:  # cnnlab models --markdown > docs/models.md: the file is what it prints
        argv, target = argv[: argv.index(">")], argv[argv.index(">") + 1]
        assert main(argv) == 0
        assert capsys.readouterr().out == (ROOT / target).read_text()
    elif argv[0] in RUN_FOR_REAL:
        assert main(argv) == 0, capsys.readouterr().err
        assert capsys.readouterr().out
    else:  # timing or training: its options must parse (an unknown one is refused first)
        code = main([*argv, "--help"])
        out, err = capsys.readouterr()
        assert (code, err) == (0, ""), err
        assert "Usage: cnnlab" in out
