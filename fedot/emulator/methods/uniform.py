"""Uniform layer-drop (offsite-tuning Algorithm 1): the kept middle blocks are copied unchanged."""

from __future__ import annotations

from . import METHODS, Method

METHODS.register("uniform", Method, help="kept middle blocks copied unchanged (Algorithm 1 layer-drop only)")
