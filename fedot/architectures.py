"""The one place that knows where each model family keeps its parts.

Everything else in fedot addresses weights by *name*: a block's parameters are
``f"{blocks}.{i}.<rest>"`` and the non-block parts are listed here. Adding a
family means adding one entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .registry import Registry

# Config fields that hold one entry per block and must follow the blocks when they are dropped or inserted.
PER_BLOCK_FIELDS = ("layer_types",)


class UnsupportedModelError(ValueError):
    pass


@dataclass(frozen=True)
class Architecture:
    family: str
    blocks: str  # dotted path of the ModuleList of transformer blocks
    embeddings: tuple[str, ...]  # token (and position) embedding modules, plus any embedding norm
    final_norm: str
    lm_head: str
    num_blocks_key: str  # config attribute holding the block count
    lora_targets: tuple[str, ...]  # default LoRA target modules inside a block
    attention: tuple[str, ...]  # attention projection modules inside a block (ScaleOT's SRC compresses these)
    extra: tuple[str, ...] = field(default=())  # other non-block modules (e.g. OPT's project_in/out)
    fan_in_fan_out: bool = False  # linear weights stored (in, out), as GPT-2's Conv1D does
    block_returns_tuple: bool = False  # a block returns (hidden_states, ...) rather than a tensor (BLOOM)

    @property
    def blocks_pattern(self) -> str:
        """Last component of the block path, as peft's ``layers_pattern`` expects."""
        return self.blocks.rsplit(".", 1)[-1]

    def block_index(self, name: str) -> int | None:
        """Index of the block a parameter name belongs to, or None for non-block parameters."""
        m = re.match(re.escape(self.blocks) + r"\.(\d+)\.", name)
        return int(m.group(1)) if m else None

    def rename_block(self, name: str, mapping: dict[int, int]) -> str:
        """Rename a block parameter from one block numbering to another (non-block names pass through)."""
        i = self.block_index(name)
        if i is None:
            return name
        if i not in mapping:
            raise KeyError(f"{name}: block {i} has no counterpart in the target numbering")
        return f"{self.blocks}.{mapping[i]}." + name[len(f"{self.blocks}.{i}.") :]

    def is_attention_weight(self, name: str) -> bool:
        """Whether a block parameter is the weight of an attention projection."""
        i = self.block_index(name)
        if i is None or not name.endswith(".weight"):
            return False
        return name[len(f"{self.blocks}.{i}."):-len(".weight")] in self.attention

    def is_head(self, name: str) -> bool:
        return name.startswith(self.lm_head + ".")


_LLAMA = dict(
    blocks="model.layers",
    embeddings=("model.embed_tokens",),
    final_norm="model.norm",
    lm_head="lm_head",
    num_blocks_key="num_hidden_layers",
    lora_targets=("q_proj", "v_proj"),
    attention=("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"),
)

ARCHITECTURES: Registry[Architecture] = Registry("model family")
for _arch, _help in ((Architecture(
        family="opt",
        blocks="model.decoder.layers",
        embeddings=("model.decoder.embed_tokens", "model.decoder.embed_positions"),
        final_norm="model.decoder.final_layer_norm",
        lm_head="lm_head",
        num_blocks_key="num_hidden_layers",
        lora_targets=("q_proj", "v_proj"),
        attention=("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj"),
        extra=("model.decoder.project_in", "model.decoder.project_out"),
    ), "Meta's OPT"), (Architecture(
        family="gpt2",
        blocks="transformer.h",
        embeddings=("transformer.wte", "transformer.wpe"),
        final_norm="transformer.ln_f",
        lm_head="lm_head",
        num_blocks_key="n_layer",
        lora_targets=("c_attn",),
        attention=("attn.c_attn", "attn.c_proj"),
        fan_in_fan_out=True,
    ), "OpenAI's GPT-2"), (Architecture(
        family="bloom",
        blocks="transformer.h",
        embeddings=("transformer.word_embeddings", "transformer.word_embeddings_layernorm"),
        final_norm="transformer.ln_f",
        lm_head="lm_head",
        num_blocks_key="n_layer",
        lora_targets=("query_key_value",),
        attention=("self_attention.query_key_value", "self_attention.dense"),
        block_returns_tuple=True,
    ), "BigScience's BLOOM"), (Architecture(family="llama", **_LLAMA), "Llama and its kin (SmolLM2)"),
        (Architecture(family="mistral", **_LLAMA), "Mistral"), (Architecture(family="qwen2", **_LLAMA), "Qwen2")):
    ARCHITECTURES.register(_arch.family, _arch, help=_help)


def architecture(config) -> Architecture:
    """Registry entry for a transformers config (or a ``model_type`` string)."""
    model_type = config if isinstance(config, str) else getattr(config, "model_type", None)
    if model_type not in ARCHITECTURES:
        raise UnsupportedModelError(
            f"model family {model_type!r} is not supported; fedot supports {', '.join(sorted(ARCHITECTURES.names()))}. "
            "Add an entry to fedot/architectures.py to support another decoder-only family."
        )
    return ARCHITECTURES[model_type]


def blocks_of(model):
    """The ModuleList of transformer blocks of a loaded model."""
    return model.get_submodule(architecture(model.config).blocks)


def num_blocks(config) -> int:
    return int(getattr(config, architecture(config).num_blocks_key))


def ties_head(config) -> bool:
    """Whether the LM head shares its weight with the token embedding."""
    return bool(getattr(config, "tie_word_embeddings", True))
