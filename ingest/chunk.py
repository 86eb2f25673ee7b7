"""Sentence-aware chunking measured in the embedder's own tokens, with sentence overlap.

Every chunk is an exact span of the article text (`text[start:end]`), so a citation can quote and
highlight it. Sentences end at . ! ? ؟ and line breaks; a sentence longer than a chunk is cut at the
clause marks ، ؛ , ; and, failing those, at token boundaries. (langchain-text-splitters' recursive
splitter finds offsets by searching the text again and measures overlap in characters; we need exact
offsets and whole-sentence overlap, which this does in one pass.)
"""

from __future__ import annotations

from collections.abc import Callable

from assistant.text import CLAUSE_END, Span, split_at, split_sentences, trim_span

__all__ = ["chunk_spans", "split_sentences"]


def chunk_spans(
    text: str,
    count_tokens: Callable[[str], int],
    token_offsets: Callable[[str], list[tuple[int, int]]],
    max_tokens: int,
    overlap_sentences: int = 1,
) -> list[Span]:
    """Pack sentences into chunks of at most `max_tokens`, repeating the last `overlap_sentences`."""
    units: list[tuple[Span, int]] = []
    for span in split_sentences(text):
        units.extend(_fit(text, span, count_tokens, token_offsets, max_tokens))

    chunks: list[Span] = []
    current: list[tuple[Span, int]] = []
    tokens = 0
    for unit in units:
        if current and tokens + unit[1] > max_tokens:
            chunks.append((current[0][0][0], current[-1][0][1]))
            # Overlap: carry the last sentences over, unless they would fill most of the next chunk.
            carried = current[-overlap_sentences:] if overlap_sentences else []
            carried_tokens = sum(n for _, n in carried)
            if carried_tokens > max_tokens // 3 or carried_tokens + unit[1] > max_tokens:
                carried, carried_tokens = [], 0
            current, tokens = list(carried), carried_tokens
        current.append(unit)
        tokens += unit[1]
    if current:
        last = (current[0][0][0], current[-1][0][1])
        # A tail made only of carried-over sentences adds nothing new.
        if not chunks or last[1] > chunks[-1][1]:
            chunks.append(last)
    return chunks


def _fit(text, span: Span, count_tokens, token_offsets, max_tokens) -> list[tuple[Span, int]]:
    """A sentence as one unit, or cut into clause/token pieces of at most `max_tokens` each."""
    n = count_tokens(text[span[0] : span[1]])
    if n <= max_tokens:
        return [(span, n)]
    clauses = split_at(text, span[0], span[1], CLAUSE_END)
    if len(clauses) > 1:
        pieces: list[tuple[Span, int]] = []
        for clause in clauses:
            pieces.extend(_fit(text, clause, count_tokens, token_offsets, max_tokens))
        return _merge(text, pieces, count_tokens, max_tokens)
    return _cut_by_tokens(text, span, token_offsets, max_tokens)


def _merge(text, pieces: list[tuple[Span, int]], count_tokens, max_tokens) -> list[tuple[Span, int]]:
    """Join adjacent clause pieces back together while they fit."""
    merged: list[tuple[Span, int]] = []
    for span, n in pieces:
        if merged and merged[-1][1] + n <= max_tokens:
            joined = (merged[-1][0][0], span[1])
            merged[-1] = (joined, count_tokens(text[joined[0] : joined[1]]))
        else:
            merged.append((span, n))
    return merged


def _cut_by_tokens(text, span: Span, token_offsets, max_tokens) -> list[tuple[Span, int]]:
    offsets = token_offsets(text[span[0] : span[1]])
    pieces = []
    for at in range(0, len(offsets), max_tokens):
        window = offsets[at : at + max_tokens]
        start = span[0] + window[0][0]
        end = span[0] + (offsets[at + max_tokens][0] if at + max_tokens < len(offsets) else span[1] - span[0])
        if (trimmed := trim_span(text, start, end)) is not None:
            pieces.append((trimmed, len(window)))
    return pieces
