"""The outputs the docs show are the commands' own (assets/doc_outputs.py), and every plot is documented.

Fast checks of the committed files; ``tests/integration/test_doc_outputs.py`` runs the commands again.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from tests.unit.test_docs import FENCE, PAGES, REPO

SNIPPET = re.compile(r'^--8<--\s+"assets/outputs/([\w-]+)\.txt"$')
ILLUSTRATIVE = "<!-- illustrative"
TRACKING = REPO / "docs" / "tracking.md"


def _generator():
    spec = importlib.util.spec_from_file_location("doc_outputs", REPO / "assets" / "doc_outputs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


GEN = _generator()
REGENERATE = f"regenerate them with: {GEN.REGENERATE}"


def _output(name: str) -> str:
    return (GEN.OUT / f"{name}.txt").read_text()


def _text_blocks() -> list[tuple[str, int, str, list[str]]]:
    """``(page, line number, line before the fence, body lines)`` of every ``text`` block of the docs."""
    blocks = []
    for path in PAGES:
        lines = path.read_text().splitlines()
        i = 0
        while i < len(lines):
            m = FENCE.match(lines[i])
            if not m:
                i += 1
                continue
            start, fence = i, m.group("fence")
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(fence):
                i += 1
            if m.group("info").strip().split()[:1] == ["text"]:
                before = next((ln for ln in reversed(lines[:start]) if ln.strip()), "")
                blocks.append((path.name, start + 1, before.strip(), lines[start + 1:i]))
            i += 1
    return blocks


BLOCKS = _text_blocks()


@pytest.mark.parametrize("page,line,before,body", BLOCKS, ids=[f"{p}:{n}" for p, n, _, _ in BLOCKS])
def test_an_output_block_is_generated_or_marked_illustrative(page, line, before, body):
    included = [SNIPPET.match(b.strip()) for b in body]
    if all(included) and len(included) == 1:
        assert (GEN.OUT / f"{included[0].group(1)}.txt").is_file(), f"{page}:{line}: {body[0]} is missing; " + REGENERATE
        return
    assert before.startswith(ILLUSTRATIVE), (
        f"{page}:{line}: a text block must be one `--8<-- \"assets/outputs/NAME.txt\"` line (a command's output, "
        f"written by assets/doc_outputs.py) or follow a `{ILLUSTRATIVE}: why -->` line; it is:\n" + "\n".join(body))


def test_every_generated_output_is_committed_and_shown():
    included = {SNIPPET.match(b.strip()).group(1) for _, _, _, body in BLOCKS for b in body
                if SNIPPET.match(b.strip())}
    commands = [cmd for cmds in GEN.SETS.values() for cmd in cmds]
    names = {cmd.name for cmd in commands} | set(GEN.EXCERPTS)
    for name in sorted(names):
        assert (GEN.OUT / f"{name}.txt").is_file(), f"assets/outputs/{name}.txt is missing; " + REGENERATE
    shown = {cmd.name for cmd in commands if cmd.shown} | set(GEN.EXCERPTS)
    assert included == shown, f"outputs written but not shown, or shown but not written: {included ^ shown}"
    assert {p.stem for p in GEN.OUT.glob("*.txt")} == names, "assets/outputs/ holds files no command writes"


def test_the_quickstart_outputs_have_the_shape_of_the_ci_set():
    """The Quickstart's tune is too slow for CI; the ci set (the same config, fewer trials and folds) is
    run there. Its committed outputs and the Quickstart's must print the same kinds of lines and the same
    leaderboard columns: a change to what a tune or a report prints shows in both or fails here."""
    def header(text: str) -> list[str]:
        lines = text.splitlines()
        top = next(i for i, ln in enumerate(lines) if ln.startswith("┏"))
        bottom = next(i for i, ln in enumerate(lines) if ln.startswith("┡"))
        rows = [[cell.strip() for cell in ln.strip("┃").split("┃")] for ln in lines[top + 1:bottom]]
        return [" ".join(filter(None, col)) for col in zip(*rows)]

    assert header(_output("quickstart_report")) == header(_output("tracking_report")), REGENERATE
    quick, ci = GEN.shape(_output("quickstart_tune_ending")), GEN.shape(GEN.excerpt_of(
        _output("tracking_tune"), "tune digits-tune: best trial", None))
    assert sorted(set(quick)) == sorted(set(ci)), REGENERATE


def test_the_quickstart_says_what_its_output_shows():
    text = (REPO / "docs" / "quickstart.md").read_text()
    tune = _output("quickstart_tune")
    pruned = re.findall(r"(digits-tune-cv(\d+)) pruned after (\d+) runs", tune)
    assert pruned, tune
    _cv, trial, runs = pruned[0]
    sentence = f"Trial {trial} was\npruned after {runs} of its 5 folds"
    assert " ".join(sentence.split()) in " ".join(text.split()), (
        f"docs/quickstart.md should say: {sentence!r} (the first pruned trial of assets/outputs/quickstart_tune.txt)")
    best = re.search(r"tune digits-tune: best trial (\d+) score", tune).group(1)
    prose = " ".join(text.split()).lower()
    assert f"the best, trial {best}," in prose, f"docs/quickstart.md should name the best trial, {best}"
    told_apart = "cannot be told apart from the runner-up" in tune
    assert told_apart == ("cannot be told apart from the runner-up" in prose), (
        "docs/quickstart.md and assets/outputs/quickstart_tune.txt disagree on whether the best trial can be "
        "told apart from the runner-up")


# -- plots --------------------------------------------------------------------------------------------------

def report_plot_names() -> set[str]:
    """The PNG files ``tunecv report`` can write, read from its source."""
    source = (REPO / "src" / "tunecv" / "report" / "plots.py").read_text()
    optuna = re.search(r"_OPTUNA_PLOTS = \(([^)]*)\)", source).group(1)
    names = set(re.findall(r'"(\w+)"', optuna))
    names |= set(re.findall(r'out_dir / "(\w+)\.png"', source))
    return {f"{n}.png" for n in names}


def tracking_plot_table() -> dict[str, str]:
    """``{file: folders}`` of the plot table of docs/tracking.md."""
    section = TRACKING.read_text().split("### Plots", 1)[1].split("\n### ", 1)[0]
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"^\| `([\w.]+\.png)` \| ([^|]+) \|", section, re.M)}


def test_every_plot_of_the_report_is_in_the_tracking_table():
    drawn, table = report_plot_names(), tracking_plot_table()
    assert len(drawn) >= 7, drawn
    assert set(table) == drawn, (f"docs/tracking.md's plot table lists {sorted(table)}; tunecv report draws "
                                 f"{sorted(drawn)}: missing {sorted(drawn - set(table))}, extra {sorted(set(table) - drawn)}")


@pytest.mark.parametrize("best", ["digits-tune-cv5", "a-much-longer-tune-name-of-a-real-project-cv12"])
def test_the_paired_differences_labels_fit_in_the_figure(tmp_path, monkeypatch, best):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tunecv.report import plots

    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or fig.savefig(path, dpi=100) or path)
    entries = [{"cv_name": f"{best[:-1]}{i}", "indistinguishable_from_best": i == 1,
                "vs_best": {"difference": {"mean": -0.1 * i, "low": -0.2 * i, "high": 0.05 - 0.1 * i},
                            "p_value": 0.06, "p_can_reach_alpha": False, "n_pairs": 5}} for i in (1, 2, 3)]
    summary = {"leaderboard": entries, "statistics": {"best": best}, "direction": "maximize"}
    path = plots._paired_plot(tmp_path, summary)
    assert Path(path).name == "paired_differences.png" and Path(path).is_file()
    fig = figures[0]
    fig.set_dpi(100)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    ax = fig.axes[0]
    label, title = fig._supxlabel, fig._suptitle  # centred on the figure: the trial names make the axes narrow
    for text in (label, title, *ax.get_yticklabels()):
        extent = text.get_window_extent(renderer)
        assert (extent.x0 >= box.x0 - 0.5 and extent.x1 <= box.x1 + 0.5 and extent.y0 >= box.y0 - 0.5
                and extent.y1 <= box.y1 + 0.5), f"{text.get_text()!r} is cut: {extent} outside {box}"
    assert "score is better" in " ".join(label.get_text().split()) and best in label.get_text().replace("\n", "")
    plt.close(fig)
