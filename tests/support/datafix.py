"""A miniature FEDOT_DATA_DIR in the layout of the shared offline data, written by tests."""

from __future__ import annotations

import json
from pathlib import Path

WIKI = (" = Alpha = \n Alpha is a test article . It has @-@ words , and \" quotes \" .\n = = Section = = \n"
        " More text about alpha .\n = Beta = \n Beta is another article ( with brackets ) .\n")


def _jsonl(path: Path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _arc(i):
    return {"id": f"q{i}", "question": f"Which number is {i}?", "answerKey": "B",
            "choices": {"text": [f"not {i}", f"{i}", "neither"], "label": ["A", "B", "C"]}}


def write(root: Path) -> Path:
    n = 30
    (root / "wikitext2/raw").mkdir(parents=True)
    (root / "wikitext2/raw/wiki.test.raw.lf.txt").write_text(WIKI)
    (root / "wikitext2/pytorch_examples_tokens").mkdir(parents=True)
    (root / "wikitext2/pytorch_examples_tokens/valid.txt").write_text(
        "".join(f" = Doc {i} = \n Text number {i} with <unk> words .\n" for i in range(n)))
    _jsonl(root / "piqa/valid.jsonl", [{"goal": f"goal {i}", "sol1": f"good {i}",
                                        "sol2": f"bad {i}"} for i in range(n)])
    (root / "piqa/valid-labels.lst").write_text("\n".join(str(i % 2) for i in range(n)) + "\n")
    for split, file in (("train", "train.jsonl"), ("dev", "dev.from_tsv.jsonl"), ("test", "test.jsonl")):
        _jsonl(root / "openbookqa/original_jsonl" / file, [
            {"id": f"{split}{i}", "answerKey": "A", "question": {"stem": f"{split} stem {i}", "choices": [
                {"text": "yes", "label": "A"}, {"text": "no", "label": "B"}]}} for i in range(n)])
    (root / "arc_easy/hf_format").mkdir(parents=True)
    for split in ("train", "validation", "test"):
        (root / f"arc_easy/hf_format/{split}.json").write_text(json.dumps([_arc(i) for i in range(n)]))
    _jsonl(root / "hellaswag/klosax_text/hellaswag_val.preprocessed.jsonl", [
        {"idx": i, "query": f"Activity [title] step {i}: a man", "label": i % 4,
         "endings": [f"does {j} [header]" for j in range(4)]}
        for i in range(n)])
    (root / "sciq/original_SciQ_dataset-2_3").mkdir(parents=True)
    for split in ("valid", "test"):
        (root / f"sciq/original_SciQ_dataset-2_3/{split}.json").write_text(json.dumps([
            {"question": f"{split} q{i}?", "distractor1": "a", "distractor2": "b", "distractor3": "c",
             "correct_answer": "d", "support": f" support {i}"} for i in range(n)]))
    for split in ("train", "test"):
        _jsonl(root / f"webquestions/{split}.jsonl", [
            {"qId": f"{split}{i}", "question": f"{split} question {i}?", "answers": ["Paris", "Paris, France", "Lyon"]}
            for i in range(n)])
    (root / "wikitext103").mkdir(parents=True)
    (root / "wikitext103/wiki.train.tokens.prefix_complete_articles").write_text(
        "".join(f" = Article {i} = \n Article {i} talks about topic {i % 7} , at some length .\n" for i in range(40)))
    (root / "gutenberg/books").mkdir(parents=True)
    for i in range(40):
        (root / f"gutenberg/books/pg{i}_book{i}.txt").write_text(
            f"BOOK {i}\n\n" + " ".join(f"Chapter {j} of book {i} tells a story." for j in range(12)))
    categories = ["open_qa", "closed_qa", "summarization", "brainstorming"]
    (root / "dolly15k").mkdir(parents=True)
    for shard in range(10):  # 800 records: the fixed held-out 500 + validation 200 leave 100 to train
        (root / f"dolly15k/local_training_{shard}.json").write_text(json.dumps([
            {"instruction": f"Say {shard} {j}.", "context": "Some context." if j % 3 == 0 else "",
             "response": f"I say {shard} and {j}.", "category": categories[(shard + j) % 4]} for j in range(80)]))
    (root / "dolly15k/global_test.json").write_text(json.dumps([
        {"instruction": f"Test {i}?", "context": "", "response": f"Answer {i}.", "category": categories[i % 4]}
        for i in range(8)]))
    for split, size in (("train", 260), ("test", 20)):
        _jsonl(root / f"gsm8k/{split}.jsonl", [{"question": f"What is {i} plus {i}?",
                                                "answer": f"{i} + {i} = <<{i}+{i}={2 * i}>>{2 * i}\n#### {2 * i}"}
                                               for i in range(size)])
    return root
