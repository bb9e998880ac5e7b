"""The owner's corpora: carving by document, content-keyed token streams, mixtures, generated text, teacher cache."""

from __future__ import annotations

import random

import pytest
import torch

from fedot.corpora import CORPORA, OwnerText, parse_mixture, text_corpora, token_stream
from fedot.corpora.mixture import allocate
from fedot.corpora.sources import OWNER_SPLITS
from fedot.models import load_tokenizer
from fedot.tasks.tokenize import token_blocks


@pytest.fixture
def data(tmp_path, monkeypatch):
    from support import datafix

    root = datafix.write(tmp_path / "data")
    monkeypatch.setenv("FEDOT_DATA_DIR", str(root))
    return root


def test_every_corpus_is_registered_with_help_and_generated_needs_the_model():
    assert set(CORPORA.names()) == {"wikitext2", "pydocs", "wikitext103", "gutenberg", "generated"}
    assert "generated" not in text_corpora() and all(e.help for e in CORPORA.entries())
    with pytest.raises(ValueError, match="unknown owner corpus 'gutenburg'.*did you mean 'gutenberg'"):
        CORPORA["gutenburg"]


@pytest.mark.parametrize("corpus", ["gutenberg", "wikitext103", "wikitext2"])  # pydocs: "if" and "else" share a page
def test_train_and_validation_are_disjoint_whole_documents(data, corpus):
    train, val = (list(CORPORA[corpus].documents(s, data)) for s in OWNER_SPLITS)
    assert train and val and not set(train) & set(val)
    if corpus == "gutenberg":
        assert all(t.startswith("BOOK ") for t in train + val) and len(train) + len(val) == 40  # whole books
    with pytest.raises(ValueError, match="never trains or selects on a test split"):
        token_stream(corpus, "test", None, data)


def test_a_stream_packs_documents_as_the_training_examples_do_and_is_cached_by_content(data, tokenizer_dir,
                                                                                     monkeypatch):
    tok = load_tokenizer(tokenizer_dir)
    stream = token_stream("gutenberg", "train", tok, data)
    texts = list(CORPORA["gutenberg"].documents("train", data))
    expected = token_blocks(tok, texts, 32)
    assert stream.num_blocks(32) == len(expected) and [stream.block(i, 32) for i in range(len(expected))] == expected
    assert stream.dtype == "uint16" and stream.documents == len(texts)
    calls = []
    monkeypatch.setattr(tok, "encode", lambda *a, **k: calls.append(1) or [])
    assert token_stream("gutenberg", "train", tok, data).key == stream.key and not calls  # cached: no tokenising
    book = next(b for b in sorted((data / "gutenberg/books").glob("*.txt")) if b.read_text() in texts)  # a train book
    book.write_text(book.read_text() + " One more sentence.")
    monkeypatch.undo()
    changed = token_stream("gutenberg", "train", load_tokenizer(tokenizer_dir), data)
    assert changed.key != stream.key and changed.n_tokens > stream.n_tokens  # new content, new stream


def test_mixture_spec_is_parsed_and_refused_with_the_key_named():
    assert parse_mixture("gutenberg", text_corpora()) == [("gutenberg", 1.0)]
    assert parse_mixture("gutenberg:3, wikitext103:1", text_corpora()) == [("gutenberg", 0.75), ("wikitext103", 0.25)]
    for bad, why in (("piqa", "not one of"), ("gutenberg:x", "not a number"), ("gutenberg:0", "positive"),
                     ("gutenberg,gutenberg", "twice"), ("", "empty")):
        with pytest.raises(ValueError, match=f"my-key = .*{why}"):
            parse_mixture(bad, text_corpora(), "my-key")
    assert allocate(32, [0.75, 0.25]) == [24, 8] and allocate(5, [0.9, 0.05, 0.05]) == [3, 1, 1]


def test_one_corpus_draws_the_blocks_fedot_drew_from_a_list_and_a_mixture_draws_by_weight(data, tokenizer_dir):
    tok = load_tokenizer(tokenizer_dir)
    one = OwnerText("gutenberg", tok, 16, data)
    blocks = token_blocks(tok, list(CORPORA["gutenberg"].documents("train", data)), 16)
    assert one.batch("0:7", 4) == random.Random("0:7").sample(blocks, 4)  # the draw before streams existed
    assert one.batch("0:7", 4) == one.batch("0:7", 4) != one.batch("0:8", 4)
    mix = OwnerText("gutenberg:0.8,wikitext103:0.2", tok, 16, data)
    picks = [c for step in range(300) for c, _ in mix.draw(f"0:{step}", 4)]
    assert 0.74 < picks.count(0) / len(picks) < 0.86
    held = mix.held_out_picks(10)
    assert [c for c, _ in held].count(0) == 8 and len(set(held)) == 10
    n = mix.validation[0].num_blocks(16)
    assert max(i for c, i in held if c == 0) >= n // 2  # spread over the split, not its first pages


def test_generated_text_is_sampled_once_reproducibly_and_keyed_by_its_settings(tiny_models, monkeypatch):
    from fedot.corpora.generated import GenerationSettings, generated_stream

    tok = load_tokenizer(tiny_models["llama"])
    cfg = GenerationSettings(tokens=300, length=20, batch_size=4, seed=1)
    a = generated_stream(tiny_models["llama"], tok, cfg, "train", progress=False)
    assert a.n_tokens >= 300 and a.tokens[-1] == tok.eos_token_id
    import fedot.models

    monkeypatch.setattr(fedot.models, "load_model", lambda *a, **k: pytest.fail("the cached text was regenerated"))
    assert generated_stream(tiny_models["llama"], tok, cfg, "train", progress=False).key == a.key
    monkeypatch.undo()
    b = generated_stream(tiny_models["llama"], tok, GenerationSettings(tokens=300, length=20, batch_size=4, seed=2),
                         "train", progress=False)
    v = generated_stream(tiny_models["llama"], tok, cfg, "validation", progress=False)
    assert b.key != a.key and list(b.tokens[:40]) != list(a.tokens[:40]) and v.key != a.key


def test_cached_and_uncached_teacher_targets_give_the_same_training_loss(data, tiny_models, tmp_path):
    from fedot.emulator import build_emulator, load_emulator
    from fedot.emulator.methods.distill import DistillSettings
    from fedot.emulator.methods.distill.loop import Objective
    from fedot.emulator.methods.distill.teacher import TeacherCache
    from fedot.models import load_model

    emu = build_emulator(str(tiny_models["llama"]), tmp_path / "emu", bottom=1, top=1, emulator_blocks=2)
    student, manifest = load_emulator(emu)
    teacher = load_model(tiny_models["llama"]).eval()
    tok = load_tokenizer(emu)
    text = OwnerText("gutenberg", tok, 16, data)
    objective = Objective(student, teacher, manifest, DistillSettings(), "float32")
    cache = TeacherCache(tmp_path / "teacher", text.train[0].num_blocks(16), 16, 32)
    for step in range(3):
        picks = text.draw(f"0:{step}", 4)
        blocks = [i for _, i in picks]
        computed = []
        cached = cache.targets(blocks, lambda missing: computed.append(missing) or objective.target(
            text.blocks([(0, i) for i in missing])))
        uncached = objective(text.blocks(picks))
        from_cache = objective(text.blocks(picks), cached)
        assert torch.allclose(uncached[0], from_cache[0], rtol=1e-6) and torch.equal(uncached[1], from_cache[1])
    cache.close()
    again = TeacherCache(tmp_path / "teacher", text.train[0].num_blocks(16), 16, 32)
    assert len(again) == len(cache) > 0
    blocks = [i for _, i in text.draw("0:1", 4)]
    reread = again.targets(blocks, lambda missing: pytest.fail(f"blocks {missing} were recomputed"))
    assert torch.allclose(reread, objective.target(text.blocks([(0, i) for i in blocks])), rtol=1e-6)
