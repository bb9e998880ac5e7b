"""ScaleOT (Yao et al. 2025): importance-aware emulators with harmonizers and Selective Rank Compression.

``policy`` holds the paper's arithmetic (Eqs. 1-5, 8-10), ``harmonizer`` the
module that replaces a block, ``importance`` the Dynamic LayerReplace training
that produces scores and harmonizers once per model; emulator creation from
(N_a, alpha, beta) is in ``fedot.emulator.build_emulator``.
"""

from .harmonizer import HARMONIZERS, Harmonizer, insert_harmonizers, load_harmonizers
from .importance import LayerReplaceConfig, importance_for, learn_importance, plot_importance, read_importance, save_importance
from .policy import groups, rewards, sample_kept, select, sigmoid, update_scores

__all__ = ["HARMONIZERS", "Harmonizer", "LayerReplaceConfig", "groups", "importance_for", "insert_harmonizers",
           "learn_importance", "load_harmonizers", "plot_importance", "read_importance", "rewards", "sample_kept",
           "save_importance", "select", "sigmoid", "update_scores"]
