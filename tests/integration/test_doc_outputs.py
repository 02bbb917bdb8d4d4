"""The docs' command outputs (assets/outputs/) are what the commands print today.

One module-scoped run of the ``ci`` set of ``assets/doc_outputs.py``: the reduced tune of
docs/tracking.md (the Quickstart's config, 5 trials of 3 folds), ``tunecv report`` of it (with its
plots) and of one of its cvs, and a config error, in a fresh folder: about 60 s on 2 idle cores. Each
output must match its committed file, modulo what varies between runs (run ids, durations, elapsed
times; numbers within 2 %: the example is seeded, the tolerance absorbs another CPU's float noise).
The Quickstart's full tune (8 trials of 5 folds, about 1.5 minutes) is not run here: its committed
output must print the same kinds of lines as this fresh tune (below), and the same leaderboard columns
and lines as the committed ci outputs (tests/unit/test_doc_outputs.py).
"""

from __future__ import annotations

import pytest

from tests.unit.test_doc_outputs import GEN, tracking_plot_table

pytestmark = pytest.mark.slow
CI_OUTPUTS = [cmd.name for cmd in GEN.SETS["ci"]]
HOW = f"regenerate the docs' outputs with: {GEN.REGENERATE}"


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("doc-outputs")
    return workdir, GEN.run_set("ci", workdir)


@pytest.mark.parametrize("name", CI_OUTPUTS)
def test_committed_output_is_what_the_command_prints(ci_run, name):
    _, outputs = ci_run
    cmd = next(c for c in GEN.SETS["ci"] if c.name == name)
    committed = (GEN.OUT / f"{name}.txt").read_text()
    diff = GEN.differences(committed, outputs[name])
    assert not diff, (f"assets/outputs/{name}.txt is not what `{cmd.line}` prints now:\n" + "\n".join(diff[:40])
                      + f"\n{HOW}")


def test_the_quickstart_tune_ends_as_a_tune_ends_today(ci_run):
    _, outputs = ci_run
    fresh = GEN.shape(GEN.excerpt_of(outputs["tracking_tune"], "tune digits-tune: best trial", None))
    quick = GEN.shape((GEN.OUT / "quickstart_tune_ending.txt").read_text())
    assert sorted(set(quick)) == sorted(set(fresh)), (
        f"the end of assets/outputs/quickstart_tune.txt has other kinds of lines than a tune prints now:\n"
        f"committed: {sorted(set(quick))}\nfresh:     {sorted(set(fresh))}\n{HOW}")


def test_the_report_writes_the_plots_of_the_tracking_table(ci_run):
    workdir, _ = ci_run
    written = {p.name for p in (workdir / "artifacts" / "digits-tune" / "report").glob("*.png")}
    for_a_tune = {name for name, folders in tracking_plot_table().items() if "tune" in folders}
    assert written == for_a_tune, (f"a tune's report wrote {sorted(written)}; docs/tracking.md's plot table "
                                   f"lists {sorted(for_a_tune)} for a tune")
