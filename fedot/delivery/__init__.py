"""How the emulator reaches the data owners: one registered mode per way it can travel (``emulator-delivery``).

The emulator artifact is the only thing of the model owner a data owner receives. Each mode says what the owner
does before round 1 (:meth:`Mode.deliver`), what the training Message carries (:meth:`Mode.train_config`, never
more than the artifact's id and where to find it) and how a node finds the verified artifact in its own store
(:meth:`Mode.locate`). ``message`` works wherever Flower does (the deployment default); ``url`` suits artifacts
too large for the federation's messages; ``path`` is the one-machine simulation shortcut (the owner's disk).

A lossless "emulator" (every middle block kept exactly) is the full model; a federated run refuses to ship it
unless ``allow-lossless-emulator`` says this is deliberate (a ceiling experiment, not a privacy-preserving run).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..emulator.artifact import ArtifactError, read_manifest
from ..registry import Registry
from ..settings import SettingError, selector, setting
from . import message, url
from .store import NodeStore, node_cache_root

DELIVERY: Registry = Registry("delivery mode")


class DeliveryMode(ABC):
    """A delivery mode: owner side (``train_config``, ``deliver``) and node side (``locate``)."""

    name: ClassVar[str]

    def check(self, cfg: DeliveryConfig) -> None:
        """Settings that cannot work with this mode, before anything starts."""

    def train_config(self, cfg: DeliveryConfig, artifact_dir: Path, manifest: dict) -> dict:
        """What each training Message says about the emulator besides its id."""
        return {}

    def deliver(self, grid, nodes: list[int], artifact_dir: Path, manifest: dict, cfg: DeliveryConfig,
                timeout: float | None, report, drop: tuple[str, ...] = ()) -> dict:
        """The owner's work before a node trains on this artifact (round 1, and after each re-alignment); returns the
        record that goes to delivery.jsonl. ``drop``: earlier versions the node may delete."""
        return {"mode": self.name}

    @abstractmethod
    def locate(self, config, store: NodeStore, progress: bool) -> Path:
        """The verified artifact's directory at this node; raises :class:`ArtifactError` with the reason."""


class MessageMode(DeliveryMode):
    name = "message"

    def deliver(self, grid, nodes, artifact_dir, manifest, cfg, timeout, report, drop=()) -> dict:
        return message.send(grid, nodes, artifact_dir, manifest, int(cfg.chunk_mb * 2**20), timeout, report, drop)

    def locate(self, config, store, progress) -> Path:
        aid = str(config["emulator-id"])
        path = store.get(aid)
        if path is None:
            raise ArtifactError(f"emulator {aid[:12]}… was not delivered to this data owner (its delivery failed or "
                                "never ran; the run dir's delivery.jsonl says why)")
        return path


class UrlMode(DeliveryMode):
    name = "url"

    def check(self, cfg) -> None:
        if not cfg.url:
            raise SettingError("emulator-delivery = 'url' needs emulator-url: the http(s):// or file:// URL where the "
                               "owner published the artifact directory (e.g. `fedot emulator serve DIR`)")
        try:
            url.check_url(cfg.url)
        except ArtifactError as e:
            raise SettingError(str(e)) from None

    def train_config(self, cfg, artifact_dir, manifest) -> dict:
        served = url.published_id(cfg.url)
        if served != manifest["id"]:
            raise ArtifactError(f"emulator-url {cfg.url} serves artifact {served[:12]}…, but this run's emulator is "
                                f"{manifest['id'][:12]}…; publish {artifact_dir} at that URL")
        return {"emulator-url": cfg.url, "emulator-url-streams": cfg.url_streams}

    def deliver(self, grid, nodes, artifact_dir, manifest, cfg, timeout, report, drop=()) -> dict:
        return {"mode": self.name, "url": cfg.url, "artifact_id": manifest["id"]}

    def locate(self, config, store, progress) -> Path:
        streams = config.get("emulator-url-streams", 8)
        streams = int(streams) if isinstance(streams, (int, float)) and 1 <= streams <= 64 else 8
        return url.fetch(str(config["emulator-url"]), str(config["emulator-id"]), store, progress=progress,
                         streams=streams)


class PathMode(DeliveryMode):
    name = "path"

    def train_config(self, cfg, artifact_dir, manifest) -> dict:
        return {"emulator-path": str(artifact_dir)}

    def locate(self, config, store, progress) -> Path:
        """The owner's artifact directory, if it is still the artifact the owner sent: its manifest's hash must be
        the id (which names every file's sha256). The files are not re-hashed here: ten data owners re-reading a
        13.4 GiB emulator each round would cost more than the training; message and url delivery verify them."""
        path = Path(str(config["emulator-path"]))
        read_manifest(path, expected_id=str(config["emulator-id"]))
        return path

DELIVERY.register("message", MessageMode(), help="inside Flower Messages, chunked, once per node, into its cache-dir")
DELIVERY.register("url", UrlMode(), help="downloaded by each node from emulator-url (http(s):// or file://), resumable")
DELIVERY.register("path", PathMode(), help="a path on the owner's disk: one-machine simulations only")


@dataclass
class DeliveryConfig:
    mode: str = selector(DELIVERY, "message", "how the emulator reaches the data owners", key="emulator-delivery")
    chunk_mb: float = setting(32.0, "message delivery: MiB of the artifact per Message (the SuperLink holds at most "
                              "one per node at a time)", gt=0, le=1024)
    url: str = setting("", "url delivery: http(s):// or file:// URL of the directory the owner published the "
                       "artifact in")
    url_streams: int = setting(8, "url delivery: parallel HTTP range streams per file larger than 64 MiB (hashed as "
                               "it arrives)", ge=1, le=64)

    def check(self) -> None:
        DELIVERY[self.mode].check(self)

    @property
    def chosen(self) -> DeliveryMode:
        return DELIVERY[self.mode]


def locate(config, node_config, progress: bool = False) -> Path:
    """The node-side entry: the verified emulator named in a training Message's config, from the node's store."""
    if config.get("emulator-refused"):
        raise ArtifactError("the model owner sent this data owner no emulator: "
                            f"{str(config['emulator-refused'])[:300]}")
    mode = str(config.get("emulator-delivery", ""))
    if mode not in DELIVERY:
        raise ArtifactError(f"training Message names emulator-delivery {mode[:40]!r}; expected one of "
                            f"{sorted(DELIVERY)}")
    return DELIVERY[mode].locate(config, NodeStore(node_cache_root(node_config)), progress)
