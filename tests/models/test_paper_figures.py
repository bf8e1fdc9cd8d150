"""Every registered variant against its paper's printed MACs and params (analytic, no build)."""

import pytest

import cnnlab
from cnnlab.models import get_entry
from tests.paper import matches_printed, printed_tolerance, rounds_to

WITH_PAPER = [n for n in cnnlab.list_models() if get_entry(n).paper is not None]


def test_printed_tolerance():
    assert printed_tolerance("146") == pytest.approx(1.46)
    assert printed_tolerance("0.5") == pytest.approx(0.05)
    assert not matches_printed(40.48, "41")
    assert matches_printed(145.81, "146")


@pytest.mark.parametrize("figure", ["macs", "params"])
@pytest.mark.parametrize("name", WITH_PAPER)
def test_figure_matches_paper_or_documented_exception(name, figure):
    paper = get_entry(name).paper
    ours = getattr(cnnlab.complexity(name), figure) / 1e6
    printed, computed = getattr(paper, figure), getattr(paper, f"computed_{figure}")
    if computed is not None:
        assert paper.note, f"{name}: a documented exception needs a note saying why"
        assert rounds_to(ours, computed), (name, figure, ours, computed)
    elif printed is not None:
        assert matches_printed(ours, printed), (name, figure, ours, printed)
