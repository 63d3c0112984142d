"""The report: ``report.json`` (everything), ``report.md`` (tables for people) and plots.

Files written into the report folder:

- ``report.json``: ``meta``, ``methods``, ``tables`` (each a ``Table`` as a dict), ``floors``;
- ``report.md``: the floors first (missed ones said plainly), a headline table of averages, then
  every table with its chance and real-data rows and item counts;
- ``averages.png`` (each table's average per method), ``noise.png`` (accuracy and R@1 against
  the noise level) and, when generation ran, ``samples.png`` (text→image outputs per method).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from .floors import Floor, missed
from .table import Table


def fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown_table(table: Table) -> str:
    """One table with settings as rows and methods, reference rows and counts as columns."""
    methods, references = list(table.rows), list(table.references)
    header = ["setting", *methods, *references, "n"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for column in table.columns:
        values = [fmt(table.value(m, column)) for m in methods]
        values += [fmt(table.references[r].get(column), 4) for r in references]
        lines.append(f"| {column} | " + " | ".join(values) + f" | {table.counts.get(column, '')} |")
    averages = [fmt(table.average(m)) for m in methods]
    lines.append("| **average** | " + " | ".join(averages) + " |" + " |" * (len(references) + 1))
    return "\n".join(lines)


def headline(tables: Sequence[Table]) -> str:
    """Each table's average for each method (over all the columns the method has)."""
    methods = list(dict.fromkeys(m for t in tables for m in t.rows))
    lines = ["| table | " + " | ".join(methods) + " |", "|" + "---|" * (len(methods) + 1)]
    for table in tables:
        arrow = "↑" if table.higher_is_better else "↓"
        cells = [fmt(table.average(m)) + ("*" if partial(table, m) else "") for m in methods]
        lines.append(f"| {table.name} {arrow} | " + " | ".join(cells) + " |")
    lines += ["", "\\* over only the columns the method can do (the floors compare shared columns only)."]
    return "\n".join(lines)


def partial(table: Table, method: str) -> bool:
    """Whether ``method`` has values in some but not all of the columns that have any value."""
    measured = [c for c in table.columns if any(table.value(m, c) is not None for m in table.rows)]
    mine = table.shared_columns(method)
    return 0 < len(mine) < len(measured)


def floors_section(floors: Sequence[Floor]) -> str:
    failing = missed(floors)
    if failing:
        summary = f"**{len(failing)} of {len(floors)} floors are MISSED.**"
    else:
        summary = f"**All {len(floors)} floors are met.**"
    lines = [
        summary, "",
        "The interval is a paired bootstrap over the held-out items of the difference (proposed minus the other "
        "method: above zero favours the proposed model for scores, below zero for distances); a miss whose "
        "interval holds zero is within the noise of the held-out set.", "",
        "| floor | measured | required | met | difference, 95% interval |", "|---|---|---|---|---|",
    ]
    for floor in floors:
        interval = "" if floor.interval is None else f"{floor.interval[0]:+.3f} to {floor.interval[1]:+.3f}"
        lines.append(f"| {floor.name} | {fmt(floor.measured)} | {fmt(floor.required)} | {'yes' if floor.passed else '**MISSED**'} | {interval} |")
    if failing:
        lines += ["", "Missed:", ""] + [f"- {floor.name}: {floor.detail}." for floor in failing]
    return "\n".join(lines)


def markdown_report(meta: Mapping[str, Any], methods: Mapping[str, str], tables: Sequence[Table], floors: Sequence[Floor], plots: Sequence[str]) -> str:
    title = f"# Evaluation of {meta.get('studio', 'the studio')} ({meta.get('weights_version', '?')})"
    mode = "quick subset" if meta.get("quick") else "full evaluation"
    parts = [title, "", f"{mode}; {meta.get('heldout_items', '?')} held-out items; {meta.get('date', '')}; "
             f"{meta.get('seconds', 0):.0f} s.", ""]
    parts += [f"> {note}" for note in meta.get("notes", [])]
    parts += ["", "## Floors", "", floors_section(floors), "", "## Headline: table averages", "", headline(tables), ""]
    parts += ["## Methods", ""] + [f"- **{name}**: {text}" for name, text in methods.items()] + [""]
    for table in tables:
        parts += [f"## {table.title}", "", table.note, "", markdown_table(table), ""]
    parts += ["## Settings", "", "```json", json.dumps(meta.get("settings", {}), indent=2, ensure_ascii=False), "```", ""]
    parts += [f"![{Path(p).stem}]({p})" for p in plots]
    return "\n".join(parts) + "\n"


def write_report(
    folder: Path, meta: Mapping[str, Any], methods: Mapping[str, str], tables: Sequence[Table], floors: Sequence[Floor],
    samples: Mapping[str, list[Image.Image | None]] | None = None, sample_prompts: Sequence[str] = (),
) -> dict[str, Path]:
    """Writes the report files into ``folder``; returns them by name."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    plots = plot_averages(tables, folder / "averages.png"), plot_noise(tables, folder / "noise.png")
    plots = [p for p in plots if p is not None]
    if samples and any(samples.values()):
        plots.append(plot_samples(samples, sample_prompts, folder / "samples.png"))
    report = {
        "meta": dict(meta), "methods": dict(methods),
        "tables": {t.name: t.to_dict() for t in tables}, "floors": [f.to_dict() for f in floors],
    }
    files = {"json": folder / "report.json", "md": folder / "report.md"}
    files["json"].write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    files["md"].write_text(markdown_report(meta, methods, tables, floors, [p.name for p in plots]), encoding="utf-8")
    files.update({p.stem: p for p in plots})
    return files


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def method_colours(tables: Sequence[Table]) -> dict[str, str]:
    """One colour per method, the same in every plot."""
    methods = dict.fromkeys(m for t in tables for m in t.rows)
    return {m: f"C{i}" for i, m in enumerate(methods)}


def plot_averages(tables: Sequence[Table], path: Path) -> Path:
    """One panel per table: each method's average."""
    plt = _pyplot()
    colours = method_colours(tables)
    columns = 3
    rows = (len(tables) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    for axis, table in zip(axes.flat, tables, strict=False):
        names = list(table.rows)
        values = [table.average(m) or 0.0 for m in names]
        bars = axis.bar(range(len(names)), values, color=[colours[m] for m in names])
        for bar, method in zip(bars, names, strict=True):
            if partial(table, method):
                bar.set_hatch("//")  # averaged over fewer columns than the others

        axis.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=7)
        axis.set_title(f"{table.name} ({'higher' if table.higher_is_better else 'lower'} is better)", fontsize=9)
    for axis in list(axes.flat)[len(tables):]:
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_noise(tables: Sequence[Table], path: Path) -> Path | None:
    """Accuracy (and R@1) against the noise level, one line per method, one panel per noisy modality."""
    noisy = [t for t in tables if t.name.startswith("noisy_")]
    if not noisy:
        return None
    plt = _pyplot()
    colours = method_colours(noisy)
    modalities = list(dict.fromkeys(c.split(" σ=")[0].split("→")[0] for t in noisy for c in t.columns))
    figure, axes = plt.subplots(len(noisy), len(modalities), figsize=(3.6 * len(modalities), 3 * len(noisy)), squeeze=False)
    for row, table in enumerate(noisy):
        for col, modality in enumerate(modalities):
            axis = axes[row][col]
            for method in table.rows:
                levels: dict[float, list[float]] = {}
                for column in table.columns:
                    if column.split(" σ=")[0].split("→")[0] == modality and table.value(method, column) is not None:
                        levels.setdefault(float(column.split("σ=")[1]), []).append(table.value(method, column))
                if levels:
                    xs = sorted(levels)
                    axis.plot(xs, [sum(levels[x]) / len(levels[x]) for x in xs], marker="o", color=colours[method])
            axis.set_title(f"{table.name}: {modality} noisy", fontsize=9)
            axis.set_xlabel("noise level (× std)", fontsize=8)
    handles = [plt.Line2D([], [], color=colour, marker="o", label=method) for method, colour in colours.items()]
    figure.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_samples(samples: Mapping[str, list[Image.Image | None]], prompts: Sequence[str], path: Path) -> Path:
    """A grid of text→image outputs: one row per method (and real data), one column per prompt."""
    plt = _pyplot()
    names = list(samples)
    count = max(len(v) for v in samples.values())
    figure, axes = plt.subplots(len(names), count, figsize=(1.3 * count + 1.2, 1.4 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        for col in range(count):
            axis = axes[row][col]
            axis.axis("off")
            if col < len(samples[name]) and samples[name][col] is not None:
                axis.imshow(samples[name][col])
            if row == 0 and col < len(prompts):
                axis.set_title(prompts[col][:18], fontsize=6)
        axes[row][0].text(-0.1, 0.5, name, transform=axes[row][0].transAxes, ha="right", va="center", fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
