"""A data owner's own store of emulator artifacts: what arrived, verified, under the node's cache dir.

Whatever the delivery mode, an artifact is assembled under ``incoming/<id>/`` (a download or a message stream can
stop half-way and continue later: each file's bytes so far stay there) and moves to ``emulators/<id>/`` only after
the manifest hashes to the id the model owner sent and every file it lists hashes to its entry
(:mod:`fedot.emulator.artifact`). A mismatch deletes what arrived and raises :class:`ArtifactError` with the reason;
nothing unverified is ever loaded. The store is the node's, never the owner's: its root is the node config's
``cache-dir`` (a SuperNode's ``--node-config``), else ``$FEDOT_NODE_CACHE/partition-<id>`` in a simulation, so a
simulated data owner does not share the owner's ``FEDOT_CACHE`` (which holds the full model).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from ..emulator.artifact import MANIFEST, ArtifactError, read_manifest
from ..files import link_or_copy

_ID = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


def node_cache_root(node_config) -> Path:
    """The node's cache dir: node-config ``cache-dir``, else one per simulated partition under FEDOT_NODE_CACHE."""
    explicit = str(node_config.get("cache-dir", "") or "")
    if explicit:
        return Path(explicit).expanduser()
    root = Path(os.environ.get("FEDOT_NODE_CACHE", Path.home() / ".cache" / "fedot-nodes")).expanduser()
    return root / f"partition-{int(node_config.get('partition-id', 0))}"


def check_id(artifact_id: str) -> str:
    if not isinstance(artifact_id, str) or not _ID.match(artifact_id):
        raise ArtifactError(f"emulator id {str(artifact_id)[:80]!r} is not a sha256 hex digest")
    return artifact_id


def check_name(name: str) -> str:
    """A file name of an artifact: a plain name, never a path (a hostile sender cannot write outside the store)."""
    if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
        raise ArtifactError(f"artifact file name {str(name)[:80]!r} is not a plain file name")
    return name


class NodeStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def ready(self, artifact_id: str) -> Path:
        return self.root / "emulators" / check_id(artifact_id)

    def incoming(self, artifact_id: str) -> Path:
        return self.root / "incoming" / check_id(artifact_id)

    def get(self, artifact_id: str) -> Path | None:
        """The verified artifact's directory, or None when this node does not hold it."""
        path = self.ready(artifact_id)
        return path if (path / MANIFEST).exists() else None

    def held(self, artifact_id: str) -> dict[str, int]:
        """Bytes received so far of each file of an incomplete artifact (what a resumed delivery skips)."""
        part = self.incoming(artifact_id)
        return {f.name: f.stat().st_size for f in part.iterdir() if f.is_file()} if part.exists() else {}

    def write(self, artifact_id: str, name: str, offset: int, data: bytes) -> int:
        """Write ``data`` at ``offset`` of an incoming file; returns the file's size after it."""
        path = self.incoming(artifact_id) / check_name(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        size = path.stat().st_size if path.exists() else 0
        if offset > size or offset < 0:
            raise ArtifactError(f"chunk of {name} at byte {offset} but {size} bytes are held; resend from {size}")
        with open(path, "r+b" if path.exists() else "wb") as f:
            f.seek(offset)
            f.write(data)
            f.truncate(offset + len(data))
        return offset + len(data)

    def seed(self, artifact_id: str, files: dict[str, str]) -> int:
        """Start an incoming artifact with the files this node already holds verified in other artifacts (same name
        and sha256 as ``files``, the owner's word for the new manifest's entries; :meth:`finish` checks them all);
        returns the bytes reused. This is how an updated emulator costs only its changed files."""
        if self.get(artifact_id) is not None:
            return 0
        part, have, reused = self.incoming(artifact_id), set(self.held(artifact_id)), 0
        for other in self.artifacts():
            entries = read_manifest(self.ready(other))["files"]
            for name, sha in files.items():
                if name not in have and entries.get(check_name(name)) == sha:
                    part.mkdir(parents=True, exist_ok=True)
                    src = self.ready(other) / name
                    link_or_copy(src, part / name)
                    have.add(name)
                    reused += (part / name).stat().st_size
        return reused

    def drop(self, artifact_id: str) -> None:
        """Delete a verified artifact this node no longer needs (an emulator version the owner replaced)."""
        shutil.rmtree(self.ready(artifact_id), ignore_errors=True)

    def finish(self, artifact_id: str, digests: dict[str, str] | None = None) -> Path:
        """Verify the incoming artifact and make it ready; a mismatch deletes it and raises with the reason.
        ``digests``: sha256 of files hashed as they were written (a ranged download), not read again."""
        part = self.incoming(artifact_id)
        try:
            read_manifest(part, verify=True, expected_id=artifact_id, digests=digests)
        except (ArtifactError, OSError, ValueError) as e:
            shutil.rmtree(part, ignore_errors=True)
            raise ArtifactError(f"emulator {artifact_id[:12]}… failed verification at this data owner and was "
                                f"discarded: {e}") from e
        ready = self.ready(artifact_id)
        ready.parent.mkdir(parents=True, exist_ok=True)
        if ready.exists():  # another worker of this node finished first: keep one copy
            shutil.rmtree(part)
        else:
            os.replace(part, ready)
        return ready

    def artifacts(self) -> list[str]:
        """Ids of the verified artifacts this node holds."""
        root = self.root / "emulators"
        return sorted(p.name for p in root.iterdir() if (p / MANIFEST).exists()) if root.exists() else []
