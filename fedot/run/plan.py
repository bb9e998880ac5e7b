"""``fedot sim SIM --plan``: each role's memory before launch, and whether the sim's resources can hold them.

The plan itself is :mod:`fedot.memory` (no weights loaded). Here it meets the sim's resources: in a simulation Ray
runs as many data owners at once as ``client-resources-num-cpus`` / ``-num-gpus`` allow, and the model owner (the
ServerApp) runs beside them on the same machine (on a GPU run: on the first GPU, which Ray also fills with data
owners). A run whose plan does not fit is refused before Flower starts, with the fix named.
"""

from __future__ import annotations

import math
import os

from ..architectures import num_blocks
from ..data_owner.tuning import TuningConfig
from ..emulator.split import sandwich
from ..emulator.tiers import tier_specs
from ..evaluation.scoring import EVAL_MAX_LENGTH
from ..memory import GIB, RolePlan, alignment_bytes, client_plan, config_for_plan, owner_plan, training_plan
from .config import FederatedConfig

SHRINK = 'lower batch-size or max-length, train with tuning = "lora", or keep fewer emulator-blocks'


def host_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def gpu_memory() -> int | None:
    import torch

    return torch.cuda.get_device_properties(0).total_memory if torch.cuda.is_available() else None


def concurrency(resources: dict, clients: int, cpus: int, gpus: int) -> int:
    """Data owners Ray runs at once: bounded by the CPUs (and GPUs) each one is given."""
    per_cpu = float(resources.get("client-resources-num-cpus", 1) or 1)
    per_gpu = float(resources.get("client-resources-num-gpus", 0) or 0)
    at_once = min(clients, max(1, math.floor(cpus / per_cpu)))
    if per_gpu > 0:
        at_once = min(at_once, max(1, math.floor(gpus / per_gpu)))
    return at_once


def fit(plans: list[RolePlan], resources: dict, clients: int, host: int, gpu: int | None,
        cpus: int | None = None, gpus: int = 0) -> tuple[list[str], list[str]]:
    """(what the plan needs of this machine, problems); no problems means it fits. With emulator tiers the check
    takes the deepest tier, the one a node that names no tier gets."""
    owner, *tiers = plans
    client = tiers[-1]  # the deepest tier: any node may take it
    per_gpu = float(resources.get("client-resources-num-gpus", 0) or 0)
    lines, problems = [], []
    if per_gpu > 0:
        on_first = min(clients, math.floor(1 / per_gpu))
        need = owner.total + on_first * client.total
        lines.append(f"GPU: each data owner gets {per_gpu:g} GPU, so {on_first} share a GPU; the first also holds the "
                     f"model owner: {need / GIB:.1f} GiB needed per GPU")
        if gpu is None:
            lines.append("no GPU is visible here: the fit can only be checked on the machine that runs it")
        else:
            lines.append(f"GPU memory: {gpu / GIB:.1f} GiB per GPU")
            if client.total > per_gpu * gpu:
                problems.append(f"a data owner needs {client.total / GIB:.1f} GiB but {per_gpu:g} of a "
                                f"{gpu / GIB:.0f} GiB GPU is {per_gpu * gpu / GIB:.1f} GiB; {SHRINK}, or raise "
                                f"client-resources-num-gpus in the sim's [tool.fedot.federation]")
            elif need > gpu:
                problems.append(f"the first GPU would hold the model owner and {on_first} data owners: "
                                f"{need / GIB:.1f} GiB of {gpu / GIB:.0f} GiB; raise client-resources-num-gpus "
                                f"(the sim's [tool.fedot.federation]) so fewer share it, or {SHRINK}")
        return lines, problems
    at_once = concurrency(resources, clients, cpus or os.cpu_count() or 1, gpus)
    need = owner.total + at_once * client.total
    lines.append(f"host memory: the model owner and {at_once} data owner(s) at once (client-resources-num-cpus): "
                 f"{need / GIB:.1f} GiB of this machine's {host / GIB:.1f} GiB")
    if need > host:
        problems.append(f"the run needs {need / GIB:.1f} GiB but this machine has {host / GIB:.1f} GiB; raise "
                        f"client-resources-num-cpus (the sim's [tool.fedot.federation]) so fewer data owners train at "
                        f"once, or {SHRINK}")
    return lines, problems


def run_plan(cfg: FederatedConfig, device: str) -> list[RolePlan]:
    """Every role's plan for a run's settings: the model owner, then a data owner of each emulator tier (one without
    ``emulator-tiers``), shallowest first."""
    config = config_for_plan(cfg.emulator.model)
    n, train = num_blocks(config), cfg.data_owner.train
    dtype = cfg.data_owner.precision.torch_dtype(device)
    splits = [spec.split(n)[0] for spec in tier_specs(cfg.emulator, cfg.tiers.levels)]
    clients = [client_plan(config, split, cfg.data_owner.tuning, train.batch_size, train.max_length, device,
                           role=f"data owner (emulator {len(split.kept)} of {n} blocks)", dtype=dtype,
                           checkpointing=train.gradient_checkpointing) for split in splits]
    everything = sandwich(n, 1, 0, -1)  # every block kept; all of them train below
    ft = training_plan(config, everything, everything.kept, TuningConfig.of("full"), train.batch_size,
                       train.max_length, device, "FT baseline", dtype=dtype,
                       checkpointing=train.gradient_checkpointing) if cfg.baseline.enabled else None
    eval_length = min(EVAL_MAX_LENGTH, getattr(config, "max_position_embeddings", EVAL_MAX_LENGTH))
    align = cfg.alignment
    extra = alignment_bytes(config, splits[-1], align.batch_size, align.max_length, device, dtype) \
        if align.enabled else 0
    return [owner_plan(config, splits[-1], eval_length, device, ft, extra, dtype), *clients]  # deepest tier: owner


def sim_plan(sim, cfg, gpus: int | None = None, gpu_gib: float | None = None):
    """The plan of a sim's settings on its device, and (lines, problems) of fitting it here, or on ``gpus`` GPUs of
    ``gpu_gib`` GiB each (a machine one does not have: what-if)."""
    import torch

    resources = sim.resources()
    device = "cuda" if float(resources.get("client-resources-num-gpus", 0) or 0) > 0 else "cpu"
    plans = run_plan(cfg, device)
    gpu = int(gpu_gib * GIB) if gpu_gib else gpu_memory()
    lines, problems = fit(plans, resources, cfg.sampled_per_round, host_memory(), gpu,
                          gpus=gpus if gpus is not None else torch.cuda.device_count())
    return plans, lines, problems


def plan_text(sim, cfg, plans, lines, problems, checked_gpu: bool | None = None) -> str:
    train = cfg.data_owner.train
    weights = f"{str(cfg.data_owner.precision.torch_dtype(plans[0].device)).removeprefix('torch.')} weights"
    head = (f"memory plan of {sim.name}: {cfg.emulator.model}, {plans[0].device}, batch {train.batch_size} x "
            f"{train.max_length} tokens, tuning {cfg.data_owner.tuning.mode} ({weights}, fp32 trainable"
            f"{', gradient checkpointing' if train.gradient_checkpointing else ''})")
    checked_gpu = gpu_memory() is not None if checked_gpu is None else checked_gpu
    unchecked = plans[0].device == "cuda" and not checked_gpu
    verdict = ["does NOT fit:", *problems] if problems else ["fit not checked: no GPU here" if unchecked else "fits"]
    return "\n".join([head, *(p.line() for p in plans), *lines, *verdict])
