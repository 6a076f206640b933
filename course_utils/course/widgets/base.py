"""What every explorer shares: it shows its ``widget`` when it is the last value of a notebook cell.

Each explorer keeps its state in plain attributes (``.current``, ``.alpha_bar``) that its widgets
update, so what a slider drives can be checked without a browser.
"""

from __future__ import annotations

from IPython.display import display


class Explorer:
    """Base of the explorers: ``widget`` is the ipywidgets box to show."""

    widget = None

    def _ipython_display_(self):
        display(self.widget)
