"""Which ipywidgets the widget tests ran against.

`make unit` runs every `widgets`-marked test against the ipywidgets in .venv (8.x, as JupyterLab 4
uses); `make widgets7` reruns them with ipywidgets 7.7 first on the path (as Colab ships) and sets
COURSE_EXPECT_IPYWIDGETS=7.7, so this test fails if that run silently picked up 8.x instead.
"""

import os

import pytest


@pytest.mark.widgets
def test_running_against_the_expected_ipywidgets():
    import ipywidgets

    expected = os.environ.get("COURSE_EXPECT_IPYWIDGETS")
    if expected is None:
        assert int(ipywidgets.__version__.split(".")[0]) >= 7
    else:
        assert ipywidgets.__version__.startswith(expected), (
            f"expected ipywidgets {expected}.x, imported {ipywidgets.__version__} from {ipywidgets.__file__}")


@pytest.mark.widgets
def test_widgets_render_to_a_notebook_bundle():
    """What a front end receives: a widget-view mime bundle with a model id, in both versions."""
    import ipywidgets

    from course_utils.course.exercises import ask_number

    box = ask_number("Exercise X", "How many?", 3.0)
    bundle = box._repr_mimebundle_() if hasattr(box, "_repr_mimebundle_") else None
    if bundle is None:  # ipywidgets 7 sends the view through the display hook instead
        assert box.model_id
    else:
        view = bundle[0] if isinstance(bundle, tuple) else bundle
        assert view["application/vnd.jupyter.widget-view+json"]["model_id"] == box.model_id
    assert isinstance(box, ipywidgets.Box)
