"""report.html: the markdown fedot writes becomes tables, and a real run's page opened in headless Chromium shows
the five numbers of its results.json, no console error, and is not blank."""

import json
import re
import shutil
import subprocess

import pytest

from fedot.run.page import markdown_html, markdown_page


def test_markdown_tables_headings_code_and_escaping():
    text = "# Title\n\nTask `pydocs` **no** <x>.\n\n| a | b |\n|---|---|\n| 1 | [r](run/results.md) |\n\n" \
           "```\nfedot sim sims/quickstart\n```\n- one\n- two\n"
    out = markdown_html(text)
    assert "<h1>Title</h1>" in out and "<code>pydocs</code>" in out and "<b>no</b>" in out and "&lt;x&gt;" in out
    assert "<tr><th>a</th><th>b</th></tr><tr><td>1</td><td><a href=\"run/results.md\">r</a></td></tr>" in out
    assert "<pre>fedot sim sims/quickstart</pre>" in out and "<ul><li>one</li><li>two</li></ul>" in out
    assert "---" not in out


def test_a_markdown_page_embeds_its_figures(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([1, 2])
    fig.savefig(tmp_path / "f.png")
    page = markdown_page(tmp_path, "Study x", "# Study x\n", [tmp_path / "f.png", tmp_path / "missing.png"])
    text = page.read_text()
    assert text.count("data:image/png;base64,") == 1 and "http" not in text.replace("http-equiv", "")


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.slow
def test_a_run_page_in_headless_chromium(tiny_models, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium here (scripts/setup.sh installs Debian's chromium where apt can; it could not)")
    from fedot.run.single_site import OffsiteConfig, run
    from fedot.settings import from_flat

    cfg = from_flat(OffsiteConfig, {"model": str(tiny_models["opt"]), "bottom": 1, "top": 1, "emulator-blocks": 2,
                                    "task": "pydocs", "steps": 2, "batch-size": 2, "max-length": 32, "lr": [1e-3],
                                    "full-ft": True, "limit": 2, "val-limit": 2, "train-limit": 4,
                                    "report-to": "none"})
    run(cfg, tmp_path / "run")
    page = tmp_path / "run" / "report.html"
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
             "--window-size=1200,1600"]
    dom = subprocess.run(flags + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0 and "<h1>" in dom.stdout
    assert "CONSOLE" not in dom.stderr, dom.stderr  # no console message at all, errors included
    shown = {k: float(v) for k, v in re.findall(r'data-key="(\w+)" data-value="([^"]+)"', dom.stdout)}
    assert shown == pytest.approx(saved["numbers"]) and set(shown) == set(saved["numbers"])
    shot = tmp_path / "shot.png"
    subprocess.run(flags + [f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120, check=True)
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[0] > 500 and (pixels.min(axis=2) < 0.9).mean() > 0.02  # text, tables and a figure drawn
