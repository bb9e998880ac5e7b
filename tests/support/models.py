"""Tiny random models of every supported family, saved as real model directories."""

from __future__ import annotations

from pathlib import Path

import torch

FAMILIES = ("opt", "gpt2", "bloom", "llama", "qwen2")
VOCAB = 320


def tiny_config(family: str, layers: int = 6):
    from transformers import BloomConfig, GPT2Config, LlamaConfig, OPTConfig, Qwen2Config

    common = dict(vocab_size=VOCAB, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    if family == "opt":
        return OPTConfig(hidden_size=32, num_hidden_layers=layers, ffn_dim=64, num_attention_heads=4,
                         max_position_embeddings=128, word_embed_proj_dim=32, **common)
    if family == "gpt2":
        return GPT2Config(n_embd=32, n_layer=layers, n_head=4, n_positions=128, **common)
    if family == "bloom":
        return BloomConfig(hidden_size=32, n_layer=layers, n_head=4, **common)
    if family == "llama":
        return LlamaConfig(hidden_size=32, num_hidden_layers=layers, intermediate_size=64, num_attention_heads=4,
                           num_key_value_heads=2, max_position_embeddings=128, tie_word_embeddings=False, **common)
    if family == "qwen2":
        return Qwen2Config(hidden_size=32, num_hidden_layers=layers, intermediate_size=64, num_attention_heads=4,
                           num_key_value_heads=2, max_position_embeddings=128, tie_word_embeddings=True, **common)
    raise ValueError(family)


def train_tokenizer():
    """A small byte-level BPE trained on CPython's docs, saved like a hub tokenizer."""
    from pydoc_data.topics import topics

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(topics.values())[:20], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>")


def make_model_dir(path: Path, family: str, layers: int, tokenizer_dir: Path, seed: int = 0) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(family, layers))
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(path)
    return path
