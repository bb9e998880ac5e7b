"""A corpus split tokenised once into a flat file of token ids, memory-mapped and cached by content.

Documents are tokenised one at a time (``add_special_tokens=False``, an EOS after each, exactly as
:func:`fedot.tasks.tokenize.corpus_examples` packs them) and appended to ``$FEDOT_CACHE/corpora/<key>.tokens``
(uint16 when the vocabulary fits, else uint32), so 17M tokens cost 35 MB on disk and nothing in memory until a block
is read. The key hashes the documents' text, the tokenizer (its full serialisation) and the stream format: the same
text under the same tokenizer is tokenised once per machine, a changed book or tokenizer makes a new stream. Block
``i`` of length L is tokens[i L : (i+1) L]: consecutive, no padding, the trailing partial block unused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ..files import write_json

STREAM_VERSION = 1


def tokenizer_fingerprint(tokenizer) -> str:
    """A tokenizer's identity: its full serialisation (fast tokenizers) or vocabulary, and its EOS id."""
    try:
        blob = tokenizer.backend_tokenizer.to_str()
    except AttributeError:
        blob = json.dumps(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(f"{blob}|eos={tokenizer.eos_token_id}".encode()).hexdigest()


def id_dtype(tokenizer) -> str:
    return "uint16" if len(tokenizer) <= np.iinfo(np.uint16).max else "uint32"


@dataclass(frozen=True)
class TokenStream:
    path: Path
    n_tokens: int
    documents: int
    dtype: str
    key: str

    @cached_property
    def tokens(self) -> np.ndarray:
        return np.memmap(self.path, dtype=self.dtype, mode="r", shape=(self.n_tokens,))

    def num_blocks(self, length: int) -> int:
        return self.n_tokens // length

    def block(self, i: int, length: int) -> list[int]:
        if not 0 <= i < self.num_blocks(length):
            raise IndexError(f"block {i} of length {length} is outside this stream ({self.num_blocks(length)} blocks)")
        return self.tokens[i * length:(i + 1) * length].astype(np.int64).tolist()


def stream_dir() -> Path:
    from ..models import cache_dir

    return cache_dir() / "corpora"


def load_stream(key: str) -> TokenStream | None:
    """The cached stream of ``key``, if it is there and complete."""
    meta_path = stream_dir() / f"{key}.json"
    if not meta_path.exists():
        return None
    meta = json.loads(meta_path.read_text())
    path = stream_dir() / f"{key}.tokens"
    if not path.exists() or path.stat().st_size != meta["n_tokens"] * np.dtype(meta["dtype"]).itemsize:
        return None
    return TokenStream(path, meta["n_tokens"], meta["documents"], meta["dtype"], key)


def write_stream(key: str, documents: Iterable[list[int]], dtype: str, info: dict) -> TokenStream:
    """Write ``documents`` (token ids each) as the stream ``key``: to a partial file, renamed when complete."""
    folder = stream_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path, tmp = folder / f"{key}.tokens", folder / f"{key}.tokens.partial"
    n_tokens = n_docs = 0
    with open(tmp, "wb") as f:
        for ids in documents:
            f.write(np.asarray(ids, dtype=dtype).tobytes())
            n_tokens, n_docs = n_tokens + len(ids), n_docs + 1
    tmp.rename(path)
    write_json(folder / f"{key}.json", {**info, "n_tokens": n_tokens, "documents": n_docs, "dtype": dtype})
    return TokenStream(path, n_tokens, n_docs, dtype, key)


def stream_key(*parts) -> str:
    return hashlib.sha256(json.dumps([STREAM_VERSION, *parts], sort_keys=True, default=str).encode()).hexdigest()[:24]


def token_stream(corpus: str, split: str, tokenizer, root=None) -> TokenStream:
    """The tokenised ``split`` of a text corpus (``fedot.corpora.CORPORA``), from the cache when it is there."""
    from .sources import CORPORA, OWNER_SPLITS

    if split not in OWNER_SPLITS:
        raise ValueError(f"owner corpora have the splits {OWNER_SPLITS}, not {split!r}: the owner never trains or "
                         "selects on a test split")
    source = CORPORA[corpus]
    digest = hashlib.sha256()
    for text in source.documents(split, root):  # first pass: the content's identity (nothing kept)
        digest.update(hashlib.sha256(text.encode("utf-8")).digest())
    key = stream_key(corpus, split, digest.hexdigest(), tokenizer_fingerprint(tokenizer))
    cached = load_stream(key)
    if cached is not None:
        return cached
    eos = tokenizer.eos_token_id
    documents = (tokenizer.encode(text, add_special_tokens=False) + [eos] for text in source.documents(split, root))
    return write_stream(key, documents, id_dtype(tokenizer), {"corpus": corpus, "split": split})
