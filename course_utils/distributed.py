"""Moved to ``course_utils.training.distributed`` (this path works until course_utils 0.3, with a warning)."""

from ._deprecation import alias_module

alias_module(__name__)
