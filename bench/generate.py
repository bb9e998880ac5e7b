"""fedot's batched greedy generation against a plain ``model.generate`` loop, one prompt at a time, side by side.

Same model, same prompts (the first N of a task's test split, built with the model's chat template), same greedy
settings and stop strings; the texts must be identical (the script says which differ, if any). Reports generated
tokens per second of each and the ratio, measured in one run.

    python bench/generate.py --task dolly --n 32 --out bench/results/generate.json
"""

from __future__ import annotations

import argparse
import time

import torch
from record import command_of, machine, save


def main() -> None:
    from transformers import GenerationConfig

    from fedot.evaluation.generation import BATCH_SIZE, cut, generate
    from fedot.models import DEFAULT_MODEL, load_model, load_tokenizer, resolve
    from fedot.tasks import get_task

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--task", default="dolly")
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="most prompts per batch (fedot's default)")
    p.add_argument("--max-new-tokens", type=int, default=0, help="0: the task's own")
    p.add_argument("--out", default="")
    args = p.parse_args()

    torch.manual_seed(0)
    model_dir = resolve(args.model)
    model, tok = load_model(model_dir), load_tokenizer(model_dir)
    task = get_task(args.task)
    docs = task.docs("test")[:args.n]
    prompts = [task.prompt(tok, d) for d in docs]
    new = args.max_new_tokens or task.max_new_tokens

    t0 = time.perf_counter()
    batched, _ = generate(model, tok, prompts, new, task.stop, batch_size=args.batch_size)
    fedot_s = time.perf_counter() - t0

    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    config = GenerationConfig(max_new_tokens=new, do_sample=False, num_beams=1, pad_token_id=pad,
                              eos_token_id=tok.eos_token_id, stop_strings=list(task.stop) or None)
    t0, plain = time.perf_counter(), []
    with torch.no_grad():
        for prompt in prompts:
            ids = torch.tensor([tok.encode(prompt, add_special_tokens=False)])
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config,
                                 tokenizer=tok if task.stop else None)
            plain.append(cut(tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True), task.stop))
    plain_s = time.perf_counter() - t0

    generated = sum(len(tok.encode(t, add_special_tokens=False)) for t in plain)
    differ = [i for i, (a, b) in enumerate(zip(batched, plain)) if a != b]
    result = {"command": command_of("generate.py", args),
              "model": args.model, "task": args.task, "prompts": len(prompts), "max_new_tokens": new,
              "batch_size": args.batch_size, "generated_tokens": generated, "fedot_seconds": fedot_s,
              "plain_seconds": plain_s, "fedot_tokens_per_s": generated / fedot_s,
              "plain_tokens_per_s": generated / plain_s, "speedup": plain_s / fedot_s, "identical": not differ,
              "differing_prompts": differ, **machine()}
    save(result, args.out)


if __name__ == "__main__":
    main()
