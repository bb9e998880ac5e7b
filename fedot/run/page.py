"""report.html: the page people open instead of JSON, one per run, comparison, frontier and study.

Self-contained (no network, nothing outside the file): the style is inline, figures are inline SVG rendered by the
same matplotlib code as the PNGs (a run's five numbers and its per-round curves) or the PNGs embedded as data URIs
(comparison, frontier, study), and the markdown fedot already writes (results.md, comparison.md, frontier.md,
study.md) is converted, table for table. A run's page adds what the markdown leaves to rounds.jsonl: the per-round
table (accepted, rejected with reasons, train loss, plug-in, bytes down and up, epsilon), the full config and the
versions. Every one of the five numbers sits in an element with ``data-key`` and ``data-value`` (the exact float of
results.json), so a test can compare the page with the JSON; the page runs no script.
"""

from __future__ import annotations

import base64
import html
import re
import tempfile
from pathlib import Path

from ..evaluation.five import FIVE, LABELS, fmt, interval_text
from ..files import write_text
from .log import curve_size, round_evaluations
from .plots import plot_five, plot_rounds

PAGE = "report.html"
STYLE = """body{font:15px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}code,pre{background:#f6f6f6;font-size:13px}pre{padding:.6em;overflow-x:auto}
td.n{text-align:right;font-variant-numeric:tabular-nums}h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.6em}
svg,img{max-width:100%;height:auto}.bad{color:#b00}"""


def _inline(text: str) -> str:
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)
    return re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r'<a href="\2">\1</a>', text)


def markdown_html(text: str) -> str:
    """The subset of markdown fedot writes: headings, pipe tables, fenced code, lists and paragraphs."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            j = next((k for k in range(i + 1, len(lines)) if lines[k].startswith("```")), len(lines))
            out.append("<pre>" + html.escape("\n".join(lines[i + 1:j])) + "</pre>")
            i = j + 1
        elif line.startswith("|"):
            j = i
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            rows = [[c.strip() for c in r.strip().strip("|").split("|")] for r in lines[i:j]]
            body = [r for r in rows[1:] if not all(set(c) <= set("-: ") for c in r)]
            out.append("<table><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in rows[0]) + "</tr>" + "".join(
                "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in body) + "</table>")
            i = j
        elif m := re.match(r"(#{1,4}) (.*)", line):
            out.append(f"<h{len(m[1])}>{_inline(m[2])}</h{len(m[1])}>")
            i += 1
        elif line.startswith(("- ", "* ")):
            j = i
            while j < len(lines) and lines[j].startswith(("- ", "* ")):
                j += 1
            out.append("<ul>" + "".join(f"<li>{_inline(x[2:])}</li>" for x in lines[i:j]) + "</ul>")
            i = j
        elif line.strip():
            j = i
            while j < len(lines) and lines[j].strip() and not lines[j].startswith(("|", "#", "```", "- ")):
                j += 1
            out.append("<p>" + _inline(" ".join(lines[i:max(j, i + 1)])) + "</p>")
            i = max(j, i + 1)
        else:
            i += 1
    return "\n".join(out)


def page(title: str, body: str) -> str:
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")


def _svg(draw) -> str:
    """What ``draw(path)`` plots, as inline SVG."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "figure.svg"
        draw(path)
        text = path.read_text()
    return text[text.index("<svg"):]


def png_tag(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(Path(path).name)}" src="data:image/png;base64,{data}">'


def five_table(record: dict) -> str:
    metric, numbers = record["metric"], record["numbers"]
    rows = []
    for key in FIVE:
        value = numbers.get(key)
        data = f' data-key="{key}" data-value="{value!r}"' if value is not None else ""
        rows.append(f"<tr><td>{LABELS[key]}</td><td class=n{data}>{fmt(value, metric)}</td>"
                    f"<td>{interval_text(record, key)}</td></tr>")
    return f"<table><tr><th>{html.escape(record['task'])} ({html.escape(metric)})</th><th>value</th>" \
           f"<th>95% interval</th></tr>{''.join(rows)}</table>"


def rounds_table(rows: list[dict], metric: str) -> str:
    evaluations = round_evaluations(rows)  # with eval-curve-limit: every round on the curve's first examples
    on = f" (first {n} examples)" if (n := curve_size(rows)) else ""
    head = ["round", "aggregated", "accepted", "rejected (reasons)", "train loss", f"OT plug-in{on}",
            f"OT emulator{on}", "MiB down", "MiB up", "epsilon"]
    body = []
    for r in rows:
        if r["round"] == 0:
            continue
        e = evaluations.get(r["round"], {})
        reasons = "; ".join(html.escape(f"{x['node']}: {x['reason']}") for x in r.get("rejected") or [])
        cells = [r["round"], "yes" if r.get("aggregated") else f"<span class=bad>no: "
                 f"{html.escape(r.get('not_aggregated_reason', ''))}</span>", len(r.get("accepted") or []),
                 f"{len(r.get('rejected') or [])}{' (' + reasons + ')' if reasons else ''}",
                 "—" if r.get("train_loss") is None else f"{r['train_loss']:.4f}", fmt(e.get("plugin"), metric),
                 fmt(e.get("emulator_finetuned"), metric), f"{(r.get('bytes_down') or 0) / 2**20:,.1f}",
                 f"{(r.get('bytes_up') or 0) / 2**20:,.1f}",
                 f"{r['dp']['epsilon']:.3g}" if isinstance(r.get("dp"), dict) and "epsilon" in r["dp"] else "—"]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return "<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>" + "".join(body) + "</table>"


def _kv_table(values: dict) -> str:
    return "<table>" + "".join(f"<tr><td><code>{html.escape(str(k))}</code></td><td>{html.escape(repr(v))}</td></tr>"
                               for k, v in values.items()) + "</table>"


def run_page(out: Path, record: dict, markdown_text: str, rows: list[dict] | None = None) -> Path:
    """A run's report.html: the five numbers, results.md, its figures, the rounds, the config and the versions."""
    parts = [f"<h1>{html.escape(record['title'])}</h1>", five_table(record),
             _svg(lambda p: plot_five(record, p))]
    if rows:
        parts += ["<h2>Rounds</h2>", _svg(lambda p: plot_rounds(rows, record["metric"], p)),
                  rounds_table(rows, record["metric"])]
    body = markdown_text.split("\n", 1)[1] if markdown_text.startswith("# ") else markdown_text
    parts += ["<h2>Details</h2>", markdown_html(body)]
    if record.get("command"):
        parts += ["<h2>Command</h2>", f"<pre>{html.escape(record['command'])}</pre>"]
    parts += ["<h2>Config</h2>", _kv_table(record.get("config") or {}),
              "<h2>Versions</h2>", _kv_table(record.get("versions") or {})]
    path = Path(out) / PAGE
    write_text(path, page(record["title"], "\n".join(parts)))
    return path


def markdown_page(out: Path, title: str, markdown_text: str, figures: list[Path]) -> Path:
    """The page of a comparison, frontier or study: its markdown, then its figures embedded."""
    body = markdown_html(markdown_text) + "".join(png_tag(f) for f in figures if Path(f).exists())
    path = Path(out) / PAGE
    write_text(path, page(title, body))
    return path
