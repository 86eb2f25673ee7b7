"""HTML of the chat UI, as pure functions (no Gradio): messages, answers with linked [n] markers, and the
sources panel with each cited span marked.

Every piece of article text or metadata reaches the page through `html.escape` (`inline_html`); the only
markup is the one built here (direction wrappers, <bdi> isolates, citation links, <mark> around each cited
span, the right-to-left block of an Arabic quote in an English answer).
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from ...text import detect_language
from ...types import CITATION_MARKER, Answer, Citation
from ..display import FSI, PDI, isolate_ltr_runs

SUMMARY_CHARS = 160  # of a question, as the heading of its turn in the sources panel

_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")  # stray ones in articles would unbalance <bdi>
# Arabic inside an LTR message, isolated so it keeps its own order: a whole «quote» (with its inner
# punctuation), else a run of Arabic script with the spaces, digits and punctuation inside it.
_ARABIC = "\u0600-\u06ff\u0750-\u077f\ufb50-\ufdff\ufe70-\ufeff"
# An Arabic «quote» in an English answer with the [n] markers that follow it: shown as an RTL block.
_QUOTE_BLOCK = re.compile(rf"«[^«»]*[{_ARABIC}][^«»]*»(?:[ \t]*\[\d{{1,2}}\])*")
_RTL_RUN = re.compile(rf"«[^«»]*[{_ARABIC}][^«»]*»|[{_ARABIC}](?:[^A-Za-z\n«»]*[{_ARABIC}])?")

# --- HTML rendering (pure functions: every string from an article goes through `inline_html`) ------------


def inline_html(text: str, rtl: bool) -> str:
    """Escaped text with runs of the other direction isolated in <bdi>."""
    text = _BIDI_CONTROLS.sub("", text)
    isolated = isolate_ltr_runs(text) if rtl else _RTL_RUN.sub(lambda m: f"{FSI}{m.group(0)}{PDI}", text)
    return html.escape(isolated).replace(FSI, "<bdi>").replace(PDI, "</bdi>")


def with_code(text: str) -> str:
    """Escaped English text in which `backticked` commands show as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", inline_html(text, False))


def direction_of(text: str) -> tuple[str, str]:
    language = detect_language(text) if text.strip() else "en"
    return ("rtl", "ar") if language == "ar" else ("ltr", "en")


def _wrap(inner: str, language: str, classes: str = "isnad-msg") -> str:
    direction = "rtl" if language == "ar" else "ltr"
    return f'<div class="{classes}" dir="{direction}" lang="{language}">{inner}</div>'


def render_question(question: str) -> str:
    direction, language = direction_of(question)
    return _wrap(inline_html(question, direction == "rtl"), language)


def render_pending(text: str, language: str) -> str:
    """An answer while it streams: plain escaped text, citations not yet linked."""
    body = inline_html(text, language == "ar") if text else '<span class="isnad-wait">…</span>'
    return _wrap(body, language, "isnad-msg isnad-streaming")


def _marker_html(number: str, cited: set[int], turn: int) -> str:
    """[n] as a link to source n of this turn, or as plain text when no citation n exists."""
    if int(number) not in cited:
        return f"[{number}]"
    return f'<a class="isnad-cite" href="#isnad-src-{turn}-{number}" title="show source {number}">[{number}]</a>'


def _with_markers(text: str, rtl: bool, cited: set[int], turn: int) -> str:
    pieces = CITATION_MARKER.split(text)
    return "".join(inline_html(piece, rtl) if index % 2 == 0 else _marker_html(piece, cited, turn)
                   for index, piece in enumerate(pieces))


def _english_answer_html(text: str, cited: set[int], turn: int) -> str:
    """An English answer in which each Arabic «quote», with the [n] markers that follow it, is a
    right-to-left block of its own: inline, a wrapped quote would drop its [n] in the middle of a line."""
    parts, at = [], 0
    for quote in _QUOTE_BLOCK.finditer(text):
        parts.append(_with_markers(text[at:quote.start()].strip(), False, cited, turn))
        parts.append(f'<div class="isnad-quote" dir="rtl" lang="ar">'
                     f"{_with_markers(quote.group(0), True, cited, turn)}</div>")
        at = quote.end()
    parts.append(_with_markers(text[at:].strip(), False, cited, turn))
    return "".join(part for part in parts if part)


def render_answer(answer: Answer, turn: int) -> str:
    """The final answer: [n] markers become links to source n of this turn in the sources panel."""
    cited = {c.n for c in answer.citations}
    if answer.language == "ar":
        body = _with_markers(answer.text, True, cited, turn)
    else:
        body = _english_answer_html(answer.text, cited, turn)
    if answer.notice:  # the notices about the question come in its language, those about an endpoint in English
        rtl = detect_language(answer.notice) == "ar"
        body += (f'<div class="isnad-notice" dir="{"rtl" if rtl else "ltr"}" lang="{"ar" if rtl else "en"}" '
                 f'role="status">{inline_html(answer.notice, rtl)}</div>')
    return _wrap(body, answer.language, "isnad-msg" + ("" if answer.has_answer else " isnad-no-answer"))


def render_error(message: str, code: bool = False) -> str:
    text = with_code(message) if code else inline_html(message, False)
    return _wrap(f'<span class="isnad-error">{text}</span>', "en")


def _url_html(url: str) -> str:
    shown = html.escape(url)
    if re.match(r"(?i)https?://", url):  # never a javascript: or data: link from an article
        return f'<a href="{shown}" target="_blank" rel="noopener noreferrer nofollow">{shown}</a>'
    return f"<span>{shown}</span>"


def group_by_article(citations: list[Citation]) -> list[list[Citation]]:
    """One group per cited article, in the order the answer first cites them; each group in article order."""
    groups: dict[str, list[Citation]] = {}
    for citation in citations:
        groups.setdefault(citation.article_id, []).append(citation)
    return [sorted(group, key=lambda c: (c.start, c.n)) for group in groups.values()]


def _excerpts(group: list[Citation]) -> list[tuple[int, str]]:
    """The article text the group's passages cover, as (offset in the article, text) in article order:
    passages that overlap or touch (several sentences of one chunk, neighbouring chunks) become one."""
    excerpts: list[tuple[int, str]] = []
    for start, text in sorted({(c.passage_start, c.passage) if c.passage else (c.start, c.quote) for c in group}):
        if excerpts:
            previous_start, previous = excerpts[-1]
            offset = start - previous_start
            if offset <= len(previous) and previous[offset:offset + len(text)] == text[:len(previous) - offset]:
                excerpts[-1] = (previous_start, previous + text[len(previous) - offset:])
                continue
        excerpts.append((start, text))
    return excerpts


def _locate(c: Citation, excerpts: list[tuple[int, str]]) -> tuple[int, int, int] | None:
    """(excerpt index, start, end) of the cited span; found by its text when the offsets disagree."""
    for index, (offset, text) in enumerate(excerpts):
        start, end = c.start - offset, c.end - offset
        if 0 <= start < end <= len(text) and text[start:end] == c.quote:
            return index, start, end
    for index, (_, text) in enumerate(excerpts):
        found = text.find(c.quote) if c.quote else -1
        if found >= 0:
            return index, found, found + len(c.quote)
    return None


def _marked(text: str, spans: list[tuple[int, int, list[Citation]]], rtl: bool, turn: int) -> str:
    """`text` with each span in a <mark> that the [n] links of its citations find (isnad-span-T-N)."""
    out, at = [], 0
    for start, end, cites in sorted(spans, key=lambda span: span[:2]):
        ids = " ".join(str(c.n) for c in cites)
        out.append(inline_html(text[at:start].lstrip() if at == 0 else text[at:start], rtl))
        out.append(f'<mark id="isnad-span-{turn}-{cites[0].n}" data-n="{ids}" data-start="{cites[0].start}">'
                   f"{inline_html(text[start:end], rtl)}</mark>")
        at = end
    out.append(inline_html(text[at:].rstrip() if at else text.strip(), rtl))
    return "".join(out)


def _article_passage_html(group: list[Citation], turn: int) -> tuple[str, bool]:
    """The cited article's passages with every cited span marked, in article order; a gap between
    passages that do not touch shows as an ellipsis. A span not found in any passage is shown alone."""
    excerpts = _excerpts(group)
    spans: list[list[tuple[int, int, list[Citation]]]] = [[] for _ in excerpts]
    unplaced = []
    for c in group:
        where = _locate(c, excerpts)
        if where is None:
            unplaced.append(c)
            continue
        index, start, end = where
        merged = spans[index]
        if merged and start < merged[-1][1]:  # the same sentence cited twice: one mark for both
            first_start, first_end, cites = merged[-1]
            merged[-1] = (first_start, max(first_end, end), [*cites, c])
        else:
            merged.append((start, end, [c]))
    rtl = direction_of(" ".join(text for _, text in excerpts))[0] == "rtl"
    blocks = [_marked(text, placed, rtl, turn) for (_, text), placed in zip(excerpts, spans, strict=True)]
    blocks += [_marked(c.quote, [(0, len(c.quote), [c])], rtl, turn) for c in unplaced]
    return '\n<span class="isnad-gap">…</span>\n'.join(blocks), rtl


def render_source(group: list[Citation], turn: int) -> str:
    """One card for one article, with every span the answer cites from it highlighted."""
    first = min(group, key=lambda c: c.n)
    title_dir, title_lang = direction_of(first.title)
    passage, rtl = _article_passage_html(group, turn)
    numbers = sorted(c.n for c in group)
    papers = ", ".join(first.sources) or "newspaper not given"
    urls = "".join(f"<div>{_url_html(url)}</div>" for url in first.urls[:3])
    if not first.urls:
        urls = f'<div class="isnad-id">{html.escape(first.article_id)}</div>'
    date_html = f' · <time>{html.escape(first.date)}</time>' if first.date else ""
    labels = " ".join(f'<span class="isnad-n">[{n}]</span>' for n in numbers)
    return (
        f'<article class="isnad-source" id="isnad-src-{turn}-{first.n}" data-n="{" ".join(map(str, numbers))}" '
        f'data-article="{html.escape(first.article_id)}">'
        f'<div class="isnad-source-head" dir="{title_dir}">{labels} '
        f'<span class="isnad-title" lang="{title_lang}">{inline_html(first.title, title_dir == "rtl")}</span></div>'
        f'<div class="isnad-meta"><span class="isnad-papers">{html.escape(papers)}</span>{date_html}</div>'
        f'<div class="isnad-urls">{urls}</div>'
        f'<blockquote class="isnad-passage" dir="{"rtl" if rtl else "ltr"}" lang="{"ar" if rtl else "en"}">'
        f"{passage}</blockquote></article>"
    )


def render_sources(turns: list[dict[str, Any]]) -> str:
    """The sources panel: the latest turn open, earlier ones folded."""
    if not turns:
        return (
            '<div class="isnad-sources"><h3>Sources</h3><p class="isnad-hint">The passages an answer cites '
            "appear here, with the quoted span highlighted. Click a [n] in an answer to jump to it.</p></div>"
        )
    blocks = []
    for turn in reversed(turns):
        number, question, citations = turn["turn"], turn["question"], turn["citations"]
        q_dir, q_lang = direction_of(question)
        inner = "".join(render_source(group, number) for group in group_by_article(citations)) or (
            '<p class="isnad-hint">No passage supports an answer to this question.</p>'
        )
        is_open = " open" if number == turns[-1]["turn"] else ""
        blocks.append(
            f'<details class="isnad-turn" data-turn="{number}"{is_open}><summary>'
            f'<span dir="{q_dir}" lang="{q_lang}">{inline_html(_clipped(question), q_dir == "rtl")}</span></summary>'
            f"{inner}</details>"
        )
    return f'<div class="isnad-sources"><h3>Sources</h3>{"".join(blocks)}</div>'


def _clipped(question: str) -> str:
    """A question short enough for a heading: a pasted page would push the sources out of sight."""
    question = " ".join(question.split())
    return question if len(question) <= SUMMARY_CHARS else question[:SUMMARY_CHARS].rstrip() + "…"


def render_report(report, uploads: dict[str, str]) -> str:
    """The ingest report; skipped items name the uploaded file, not the server's temporary path."""

    def shown(path: str) -> str:
        for temp, name in uploads.items():
            if path.startswith(temp):
                return name + path[len(temp):]
        return Path(path).name

    rows = [
        ("new articles", report.articles_new),
        ("updated", report.articles_updated),
        ("unchanged", report.articles_unchanged),
        ("duplicates (same text elsewhere)", report.duplicates),
        ("passages added", report.chunks_added),
    ]
    table = "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in rows)
    skipped = "".join(
        f"<li><code>{html.escape(shown(item['path']))}</code>: {html.escape(item['reason'])}</li>"
        for item in report.skipped
    )
    skipped_html = (
        f'<h4>Skipped ({len(report.skipped)})</h4><ul class="isnad-skipped">{skipped}</ul>' if skipped else ""
    )
    return (
        f'<div class="isnad-report"><h3>Done in {report.seconds:.1f} s</h3><table>{table}</table>'
        f"{skipped_html}<p>The index now holds {report.articles_total} articles in {report.chunks_total} "
        "passages; the Chat tab already searches them.</p></div>"
    )


def render_progress(progress) -> str:
    if progress is None:
        return '<div class="isnad-progress">Reading the files…</div>'
    if progress.note:  # waiting for another ingest's writer lease, or building the search index
        return f'<div class="isnad-progress">{html.escape(progress.note)}…</div>'
    total = max(progress.articles_total, 1)
    percent = min(100, int(100 * progress.articles_done / total))
    eta = f", about {progress.eta_seconds:.0f} s left" if progress.eta_seconds else ""
    return (
        f'<div class="isnad-progress">{html.escape(progress.phase)}: {progress.articles_done}/'
        f"{progress.articles_total} articles, {progress.chunks_done} passages embedded{eta}"
        f'<div class="isnad-bar"><div style="width:{percent}%"></div></div></div>'
    )


# --- the backend: one Assistant per server, created when an index exists ------------------------------

