"""Emulators: the lossy, shareable stand-in for a model's frozen middle (model owner -> split/compress -> artifact).

``spec`` says what to build and builds it, ``split`` holds Algorithm 1, ``methods`` the registered compression
methods, ``writer`` writes an artifact tensor by tensor, ``artifact`` reads and verifies one, ``loader`` loads it as
a model (completed by its method); ``middle`` names the emulator's middle and Eq. 1's distance for whatever trains
it; ``tiers`` sizes emulators to data owners' hardware, ``alignment`` re-aligns the emulator to the full model every
round (FedBiOT) and ``shards`` writes each version block by block, so only the changed blocks travel.
"""

from .artifact import ArtifactError, adapter_local, artifact_id, blocks, read_manifest, to_local, to_original
from .loader import load_emulator
from .methods import METHODS
from .spec import EmulatorSpec, build_emulator

__all__ = ["METHODS", "ArtifactError", "EmulatorSpec", "adapter_local", "artifact_id", "blocks", "build_emulator",
           "load_emulator", "read_manifest", "to_local", "to_original"]
