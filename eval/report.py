"""A run's reports: results.json, report.md and charts, each compared with the run before."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .metrics import RETRIEVE_K

if TYPE_CHECKING:
    from .results import EvalResult, ItemResult

SUMMARY_METRICS = (
    ("hit_at_1", "hit@1"),
    ("hit_at_5", "hit@5"),
    ("hit_at_10", "hit@10"),
    ("mrr", "MRR"),
    ("citation_precision", "citation P"),
    ("citation_recall", "citation R"),
    ("answer_correct", "answer correct"),
    ("answer_f1", "answer F1"),
    ("evidence_containment", "evidence contained"),
    ("unanswerable_declined", "unanswerable declined"),
    ("answerable_declined", "answerable declined"),
    ("abstention_accuracy", "abstention accuracy"),
    ("judge", "LLM judge"),
    ("follow_up_answer_correct", "follow-up correct"),
    ("standalone_answer_correct", "same alone: correct"),
    ("follow_up_citation_recall", "follow-up citation R"),
    ("standalone_citation_recall", "same alone: citation R"),
    ("follow_up_declined", "follow-up declined"),
    ("standalone_declined", "same alone: declined"),
    ("follow_up_repeated", "follow-up repeats turn"),
    ("ask_p50", "ask p50 s"),
    ("ask_p95", "ask p95 s"),
    ("retrieve_p50", "retrieve p50 s"),
    ("retrieve_p95", "retrieve p95 s"),
)
GROUP_COLUMNS = (
    ("n", "n"),
    ("hit_at_1", "hit@1"),
    ("hit_at_5", "hit@5"),
    ("mrr", "MRR"),
    ("citation_precision", "cit P"),
    ("citation_recall", "cit R"),
    ("answer_correct", "correct"),
    ("answer_f1", "F1"),
    ("evidence_containment", "evid"),
    ("unanswerable_declined", "unans decl"),
    ("answerable_declined", "ans decl"),
)
CHART_METRICS = (
    ("hit_at_5", "hit@5"),
    ("mrr", "MRR"),
    ("citation_precision", "citation precision"),
    ("citation_recall", "citation recall"),
    ("answer_correct", "answer correct"),
    ("abstention_accuracy", "abstention accuracy"),
)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _delta(value: Any, before: Any) -> str:
    if not isinstance(value, (int, float)) or not isinstance(before, (int, float)):
        return ""
    difference = value - before
    return f"{difference:+.3f}" if abs(difference) >= 0.0005 else "="


def summary_table(metrics: dict[str, Any], previous: dict[str, Any] | None = None) -> str:
    """Plain-text table of the overall and per-language metrics (what the command prints)."""
    languages = sorted(metrics["by_language"])
    header = ["metric", "all", *languages] + (["previous all"] if previous else [])
    rows = [header]
    for key, label in SUMMARY_METRICS:
        row = [label, _fmt(metrics["overall"].get(key))]
        row += [_fmt(metrics["by_language"][name].get(key)) for name in languages]
        if previous:
            row.append(_fmt(previous.get("overall", {}).get(key)))
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"] + [
        "| " + " | ".join(row) + " |" for row in rows
    ]


def failures_of(result: EvalResult) -> list[tuple[ItemResult, str]]:
    """Items that went wrong, each with what went wrong."""
    found = []
    for item in result.items:
        problems = []
        if item.answerable:
            if item.rank is None:
                problems.append(f"gold article not in the top {RETRIEVE_K} passages")
            elif item.rank > 5:
                problems.append(f"gold article only at rank {item.rank}")
            if not item.has_answer:
                problems.append("wrongly declined")
            elif not item.correct_citations:
                problems.append("no correct citation")
            elif not item.answer_correct:
                problems.append("answer does not contain the gold answer")
            if item.follows and item.standalone_answer_correct and not item.answer_correct:
                problems.append("answered correctly when asked alone, not in the conversation")
        elif item.has_answer:
            problems.append("answered an unanswerable question")
        if item.repeats_previous:
            problems.append("repeats the answer to the turn before")
        if problems:
            found.append((item, "; ".join(problems)))
    return found


def render_report(result: EvalResult, previous: dict[str, Any] | None, thresholds: dict[str, Any] | None) -> str:
    metrics = result.metrics
    info = result.info
    lines = [
        f"# Isnad eval: {result.mode} mode",
        "",
        f"{info.get('when', '')} · {metrics['overall']['n']} questions "
        f"({metrics['overall']['answerable']} answerable, {metrics['overall']['unanswerable']} unanswerable) · "
        f"index `{info.get('data_dir', '')}` collection `{info.get('collection', '')}` · "
        f"embedder `{info.get('embedder', '')}` · k={info.get('k', '')}",
        "",
    ]
    if result.failures:
        lines += ["**Below thresholds:**", ""] + [f"- {f}" for f in result.failures] + [""]
    elif thresholds is not None:
        lines += ["All thresholds met.", ""]
    lines += ["## Summary", ""]
    before = (previous or {}).get("metrics", {}).get("overall", {})
    rows = []
    for key, label in SUMMARY_METRICS:
        value = metrics["overall"].get(key)
        limit = ""
        if thresholds:
            if f"min_{key}" in thresholds:
                limit = f"≥ {thresholds[f'min_{key}']}"
            elif f"max_{key}" in thresholds:
                limit = f"≤ {thresholds[f'max_{key}']}"
        rows.append([label, _fmt(value), _fmt(before.get(key)) if previous else "", _delta(value, before.get(key)),
                     limit])
    lines += _markdown_table(["metric", "value", "previous", "change", "threshold"], rows) + [""]
    for group, title in (("by_language", "By language"), ("by_kind", "By kind")):
        lines += [f"## {title}", ""]
        rows = [[name] + [_fmt(values.get(key)) for key, _ in GROUP_COLUMNS]
                for name, values in metrics[group].items()]
        lines += _markdown_table([group.removeprefix("by_")] + [label for _, label in GROUP_COLUMNS], rows) + [""]
    lines += follow_up_section(result)
    lines += ["## Charts", "", "![by language](by_language.png)", "", "![by kind](by_kind.png)", ""]
    failed = failures_of(result)
    lines += [f"## Failures ({len(failed)})", ""]
    for item, problem in failed:
        got = item.answer.replace("\n", " ")
        lines.append(f"- **{item.id}** ({item.language}, {item.kind}, rank {item.rank or '–'}): {problem}.  ")
        lines.append(f"  Q: {item.question}  ")
        lines.append(f"  Gold: {item.gold_answer}  ")
        lines.append(f"  Got: {got[:300]}{'…' if len(got) > 300 else ''}")
    lines += ["", "Metric definitions: eval/README.md."]
    return "\n".join(lines) + "\n"


FOLLOW_UP_ROWS = (
    ("answer correct", "follow_up_answer_correct", "standalone_answer_correct"),
    ("citation recall", "follow_up_citation_recall", "standalone_citation_recall"),
    ("declined", "follow_up_declined", "standalone_declined"),
)


def follow_up_section(result: EvalResult) -> list[str]:
    """Follow-ups in conversation next to the same turns asked alone, overall and by the follow-up's
    language, and the turns where the two differ."""
    metrics = result.metrics
    if not metrics["overall"].get("follow_ups"):
        return []
    groups = [("all", metrics["overall"])] + [(name, metrics["by_language"][name])
                                              for name in sorted(metrics["by_language"])]
    header = ["metric"] + [f"{name}: in conversation / alone" for name, _ in groups]
    rows = [[label] + [f"{_fmt(g.get(key))} / {_fmt(g.get(alone))}" for _, g in groups]
            for label, key, alone in FOLLOW_UP_ROWS]
    rows.append(["repeats the turn before"] + [_fmt(g.get("follow_up_repeated")) for _, g in groups])
    rows.append(["follow-ups compared"] + [str(g.get("follow_ups") or 0) for _, g in groups])
    lines = ["## Follow-ups: in conversation vs asked alone", "",
             "Each answerable follow-up is asked after the conversation before it, and again alone in its gold "
             "standalone form; both are scored against the same gold.", ""]
    lines += _markdown_table(header, rows) + [""]
    differ = [r for r in result.items if r.follows and r.answerable and r.standalone_answer_correct is not None
              and r.answer_correct != r.standalone_answer_correct]
    if differ:
        lines += [f"Turns where the two differ ({len(differ)}):", ""]
        for r in differ:
            better = "alone" if r.standalone_answer_correct else "in conversation"
            lines.append(f"- **{r.id}** (follows {r.follows}) correct only {better}: {r.question}  ")
            lines.append(f"  searched as: {r.standalone_question}  ")
            lines.append(f"  alone: {r.standalone_form}")
        lines.append("")
    return lines


def write_charts(metrics: dict[str, Any], previous: dict[str, Any] | None, out: Path) -> list[Path]:
    """by_language.png and by_kind.png: key metrics per group, this run next to the previous one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    before = (previous or {}).get("metrics") or {}
    paths = []
    for group, title in (("by_language", "language"), ("by_kind", "kind")):
        names = list(metrics[group])
        figure, axes = plt.subplots(2, 3, figsize=(13, 6.5), constrained_layout=True)
        for axis, (key, label) in zip(axes.flat, CHART_METRICS, strict=True):
            now = [metrics[group][n].get(key) or 0.0 for n in names]
            positions = range(len(names))
            width = 0.4 if before else 0.7
            if before:
                then = [(before.get(group, {}).get(n) or {}).get(key) or 0.0 for n in names]
                axis.bar([p - width / 2 for p in positions], then, width, label="previous", color="#bbbbbb")
                axis.bar([p + width / 2 for p in positions], now, width, label="this run", color="#2a6f97")
            else:
                axis.bar(list(positions), now, width, label="this run", color="#2a6f97")
            axis.set_xticks(list(positions), names, rotation=30 if len(names) > 3 else 0)
            axis.set_ylim(0, 1.05)
            axis.set_title(label)
            axis.grid(axis="y", alpha=0.3)
        axes.flat[0].legend(loc="lower left", fontsize=8)
        figure.suptitle(f"Isnad eval by {title}")
        path = out / f"{group}.png"
        figure.savefig(path, dpi=90)
        plt.close(figure)
        paths.append(path)
    return paths


def write_reports(result: EvalResult, out: str | Path, thresholds: dict[str, Any] | None = None) -> dict[str, Path]:
    """results.json, report.md and the charts into `out`; a results.json already there becomes
    previous.json and is what this run is compared with."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results_path, previous_path = out / "results.json", out / "previous.json"
    if results_path.is_file():
        shutil.copyfile(results_path, previous_path)
    previous = previous_run(out)
    results_path.write_text(json.dumps(result.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
    report_path = out / "report.md"
    report_path.write_text(render_report(result, previous, thresholds), encoding="utf-8")
    charts = write_charts(result.metrics, previous, out)
    return {"results": results_path, "report": report_path, **{p.stem: p for p in charts}}




def previous_run(out: str | Path) -> dict[str, Any] | None:
    """The results of the run before the last one written to `out` (its previous.json), if readable."""
    try:
        return json.loads((Path(out) / "previous.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
