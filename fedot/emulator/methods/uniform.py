"""Uniform layer-drop (offsite-tuning Algorithm 1): the kept middle blocks are copied unchanged."""

from __future__ import annotations

from . import Method, register


@register
class Uniform(Method):
    name = "uniform"
