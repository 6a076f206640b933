"""course_utils.course.widgets.base: an explorer, as the last value of a cell, displays its widget."""

import pytest

from course_utils.course.widgets import base


@pytest.mark.widgets
def test_an_explorer_displays_its_widget(monkeypatch):
    shown = []
    monkeypatch.setattr(base, "display", shown.append)

    class Mine(base.Explorer):
        widget = "the box"

    Mine()._ipython_display_()
    assert shown == ["the box"]
