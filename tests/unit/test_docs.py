"""The docs cannot rot: every command line they print parses, every config block they show validates.

Commands are taken from the fenced ``bash`` blocks of ``docs/*.md`` and ``README.md``, and from the
comments of the files in ``configs/``. Each ``tunecv train|cv|tune`` command is run through
``tunecv.cli.main`` with ``--print_config`` appended: that reads the config files it names, applies its
overrides and validates every key and value, without training. ``tunecv report`` is checked for its
arguments. YAML blocks written in the pages are validated as config fragments (merged into the digits
config) or as search spaces; Python blocks must compile.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
PAGES = sorted(DOCS.glob("*.md"))
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```+|~~~+)\s*(?P<info>[^\n]*)$")
SHELL_LANGS = {"bash", "sh", "shell", "console"}
RUN_COMMANDS = ("train", "cv", "tune")
SHELL_OPERATORS = {"&&", "||", ";", "|", "&"}


class _MkdocsLoader(yaml.SafeLoader):
    """mkdocs.yml as mkdocs reads it, with ``!!python/name:`` tags kept as plain strings."""


_MkdocsLoader.add_multi_constructor("tag:yaml.org,2002:python/name:", lambda loader, suffix, node: suffix)


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """``(language, body)`` of every fenced code block of a Markdown text (indented ones too)."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m.group("indent"), m.group("fence"), m.group("info").strip()
        lang = info.split()[0].lower() if info else ""
        body = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            line = lines[i]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            i += 1
        blocks.append((lang, "\n".join(body)))
        i += 1
    return blocks


def _logical_lines(script: str) -> list[str]:
    """Shell lines with backslash continuations joined; snippet includes skipped."""
    out, current = [], ""
    for raw in script.splitlines():
        if raw.strip().startswith("--8<--"):
            continue
        line = raw.rstrip()
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        out.append(current + line)
        current = ""
    if current:
        out.append(current)
    return out


def _segments(words: list[str]) -> list[list[str]]:
    parts, current = [], []
    for w in words:
        if w in SHELL_OPERATORS:
            parts.append(current)
            current = []
        else:
            current.append(w)
    parts.append(current)
    return [p for p in parts if p]


def tunecv_commands(script: str) -> list[list[str]]:
    """Every ``tunecv ...`` (also ``python -m tunecv``, ``srun tunecv``, ``torchrun ... -m tunecv``)
    command in a shell script, as the words after ``tunecv`` (see :func:`_expand` for ``$VARIABLES``)."""
    commands = []
    for line in _logical_lines(script):
        text = line.strip()
        if text.startswith("$ "):  # a console prompt
            text = text[2:]
        if not text or text.startswith("#"):
            continue
        try:
            words = shlex.split(text, comments=True)
        except ValueError:
            continue
        for seg in _segments(words):
            start = None
            for j, w in enumerate(seg):
                if w == "tunecv" and (j == 0 or seg[j - 1] in ("-m", "srun", "exec", "time")
                                      or "=" in seg[j - 1] or seg[j - 1].endswith("tunecv")):
                    start = j + 1
                    break
                if w.endswith("/tunecv") and j == 0:
                    start = j + 1
                    break
            if start is not None:
                commands.append(_expand(seg[start:]))
    return commands


_VALUELESS = {"--resume", "--reset", "--dry_run", "--debug", "--print_config", "--quiet", "--help", "--no-plots"}


def _expand(words: list[str]) -> list[str]:
    """Shell variables: one that gives a key's value becomes ``1``; one that stands alone (a flag) goes."""
    out: list[str] = []
    for w in words:
        if w.startswith("$"):
            if out and out[-1].startswith("--") and "=" not in out[-1] and out[-1] not in _VALUELESS:
                out.append("1")
            continue
        out.append(w)
    return out


def check_command(args: list[str], capsys: pytest.CaptureFixture) -> None:
    """Assert that one tunecv command (words after ``tunecv``) would be accepted as printed."""
    from tunecv.cli import COMMANDS, FLAGS, main

    assert args, "a bare `tunecv` command"
    command, rest = args[0], args[1:]
    if command in ("--help", "-h", "--version"):
        return
    assert command in COMMANDS, f"unknown command {command!r} in `tunecv {' '.join(args)}`"
    if command == "report":
        import importlib.util

        assert importlib.util.find_spec("tunecv.report") is not None, "tunecv report: module tunecv.report missing"
        paths = [w for w in rest if not w.startswith("--")]
        if "--format" in rest:
            fmt = rest[rest.index("--format") + 1]
            assert fmt in ("table", "json"), f"--format {fmt}"
            paths.remove(fmt)
        assert len(paths) == 1, f"`tunecv report` takes one PATH; got {paths}"
        assert all(w in ("--format", "--no-plots") or not w.startswith("--") for w in rest), rest
        return
    for word in rest:
        if word.startswith("--") and "." not in word and word.split("=")[0][2:] not in {*_config_keys(), "config"}:
            assert word in FLAGS, f"unknown flag {word!r} in `tunecv {' '.join(args)}`"
    if "--dry_run" in rest:
        assert command in ("cv", "tune"), "--dry_run applies to cv and tune"
    if any("<" in word or ">" in word for word in rest):
        return  # a template such as `--config <your config>`: the reader fills it in
    if "--cli" in rest and not (REPO / rest[rest.index("--cli") + 1]).is_file():
        return  # a command of the reader's project (its main.py and config files): not files of this repository
    runnable = [w for w in rest if w not in ("--resume", "--reset", "--dry_run", "--debug", "--quiet")]
    capsys.readouterr()
    code = main([command, *runnable, "--print_config"])
    err = capsys.readouterr().err
    assert code == 0, f"`tunecv {' '.join(args)}` is rejected: {err.strip()}"


def _config_keys() -> set[str]:
    from tunecv.config import _DEFAULTS

    return set(_DEFAULTS)


def _doc_sources() -> list[Path]:
    return [*PAGES, REPO / "README.md"]


def _shell_commands() -> list[tuple[str, list[str]]]:
    found = []
    for path in _doc_sources():
        for lang, body in fenced_blocks(path.read_text()):
            if lang in SHELL_LANGS:
                found += [(path.name, cmd) for cmd in tunecv_commands(body)]
    return found


def _config_comment_commands() -> list[tuple[str, list[str]]]:
    found = []
    for path in sorted((REPO / "configs").rglob("*")):
        if path.suffix in (".yaml", ".yml", ".toml"):
            comments = "\n".join(line.lstrip("# ").rstrip() for line in path.read_text().splitlines()
                                 if line.lstrip().startswith("#"))
            found += [(str(path.relative_to(REPO)), cmd) for cmd in tunecv_commands(comments)]
        elif path.suffix == ".sbatch":
            text = path.read_text()
            found += [(str(path.relative_to(REPO)), cmd) for cmd in tunecv_commands(text)]
            comments = "\n".join(line.lstrip("# ").rstrip() for line in text.splitlines()
                                 if line.startswith("#") and not line.startswith(("#!", "#SBATCH")))
            found += [(str(path.relative_to(REPO)), cmd) for cmd in tunecv_commands(comments)]
    return found


DOC_COMMANDS = _shell_commands()
CONFIG_COMMANDS = _config_comment_commands()


@pytest.fixture
def in_repo(monkeypatch, tmp_path):
    """Commands are printed for the repository root; storage URLs name no real server."""
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("TUNECV_STORAGE", f"journal:///{tmp_path}/tune.log")


def test_the_docs_print_commands():
    pages = {page for page, _ in DOC_COMMANDS}
    assert len(DOC_COMMANDS) >= 30, DOC_COMMANDS
    for page in ("quickstart.md", "training.md", "cross-validation.md", "tuning.md", "scaling-out.md"):
        assert page in pages, f"{page} shows no tunecv command"
    assert any(cmd[0] == "tune" for _, cmd in CONFIG_COMMANDS)


@pytest.mark.parametrize("page,args", DOC_COMMANDS, ids=[f"{p}:{' '.join(a)[:70]}" for p, a in DOC_COMMANDS])
def test_doc_command_parses(page, args, in_repo, capsys):
    check_command(args, capsys)


@pytest.mark.parametrize("source,args", CONFIG_COMMANDS,
                         ids=[f"{p}:{' '.join(a)[:70]}" for p, a in CONFIG_COMMANDS])
def test_config_comment_command_parses(source, args, in_repo, capsys):
    check_command(args, capsys)


def _yaml_blocks() -> list[tuple[str, str]]:
    out = []
    for path in PAGES:
        for lang, body in fenced_blocks(path.read_text()):
            if lang in ("yaml", "yml") and "--8<--" not in body:
                out.append((path.name, body))
    return out


YAML_BLOCKS = _yaml_blocks()


@pytest.mark.parametrize("page,body", YAML_BLOCKS, ids=[f"{p}:{b.splitlines()[0][:40]}" for p, b in YAML_BLOCKS])
def test_yaml_block_is_a_valid_config_fragment(page, body, in_repo):
    from tunecv.config import load_config
    from tunecv.search_space import SearchSpace

    data = yaml.safe_load(body)
    assert isinstance(data, dict), body
    if "hyperparameters" in data:
        SearchSpace.from_mapping(data, f"{page} block")
        return
    for key in ("model", "data"):
        # a fragment about the reader's own project (my_project.data.X): its class cannot be imported here
        spec = data.get(key)
        path = spec.get("class_path", "") if isinstance(spec, dict) else ""
        if path.startswith(("my_project.", "my_pkg.")):
            data.pop(key)
    load_config("configs/digits/train.yaml", data)


def test_python_blocks_compile():
    n = 0
    for path in [*PAGES, REPO / "README.md"]:
        for lang, body in fenced_blocks(path.read_text()):
            if lang in ("python", "py") and "--8<--" not in body:
                compile(body, f"{path.name} python block", "exec")
                n += 1
    assert n >= 5


def test_snippets_name_existing_files():
    """Every ``--8<-- "path"`` names a file (mkdocs --strict checks it too, but only when building)."""
    for path in PAGES:
        for m in re.finditer(r'--8<--\s+"([^"]+)"', path.read_text()):
            target = m.group(1).split(":")[0]
            assert (REPO / target).is_file(), f"{path.name}: snippet {target} does not exist"


def test_nav_lists_every_page():
    nav = yaml.load((REPO / "mkdocs.yml").read_text(), Loader=_MkdocsLoader)["nav"]
    listed = {next(iter(entry.values())) for entry in nav}
    assert listed == {p.name for p in PAGES}, listed ^ {p.name for p in PAGES}


@pytest.mark.parametrize("script,expected", [
    ("tunecv cv --config a.yaml --cv.n_seeds 2   # comment", [["cv", "--config", "a.yaml", "--cv.n_seeds", "2"]]),
    ("python3 -m venv .venv && . .venv/bin/activate && tunecv tune --config t.yaml",
     [["tune", "--config", "t.yaml"]]),
    ("srun tunecv train --config m.yaml --name x $RESUME &", [["train", "--config", "m.yaml", "--name", "x"]]),
    ('tunecv tune --config w.yaml --tune.seed "$SLURM_ARRAY_TASK_ID" &', [["tune", "--config", "w.yaml", "--tune.seed", "1"]]),
    ("torchrun --nnodes 2 -m tunecv train \\\n  --config m.yaml", [["train", "--config", "m.yaml"]]),
    ("OMP_NUM_THREADS=1 tunecv cv --config c.yaml", [["cv", "--config", "c.yaml"]]),
    ("pip install tunecv", []),
])
def test_command_extraction(script, expected):
    assert tunecv_commands(script) == expected
