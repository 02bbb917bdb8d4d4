"""The README's first lines give the two commands; CI runs exactly the test one."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _commands() -> list[str]:
    lines = (REPO / "README.md").read_text().splitlines()
    return [ln for ln in lines[:20] if ln.startswith("python3 -m venv")]


def test_readme_starts_with_two_commands():
    cmds = _commands()
    assert len(cmds) == 2
    assert "tunecv tune --config configs/digits/" in cmds[0]
    assert cmds[1].endswith("python -m pytest")


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert _commands()[1] in ci


def test_readme_example_config_exists():
    cmd = _commands()[0]
    path = cmd.split("--config ", 1)[1].split()[0]
    assert (REPO / path).is_file()
