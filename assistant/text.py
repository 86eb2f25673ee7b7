"""Arabic-aware text normalisation, used for lexical search at ingest and query time (and nowhere else:
display and citations always use the original text).

Bump NORMALISATION_VERSION whenever `search_terms` would produce different terms for the same text:
the index records it, so a lexical index built by an older version is rebuilt, never silently mixed.
"""

from __future__ import annotations

import functools
import re
import unicodedata

NORMALISATION_VERSION = 1

# Harakat, shadda, sukun, dagger alef (U+064B-U+065F, U+0670) and Quranic annotation marks (U+06D6-U+06ED).
_DIACRITICS = re.compile("[\u064b-\u065f\u0670\u06d6-\u06ed]")
_TATWEEL = "\u0640"
_DIGITS = {ord(c): str(i) for i, c in enumerate("٠١٢٣٤٥٦٧٨٩")} | {
    ord(c): str(i) for i, c in enumerate("۰۱۲۳۴۵۶۷۸۹")
}
_FOLD_LETTERS = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ة": "ه"})
_WORD = re.compile(r"\w+")
_ARABIC_LETTER = re.compile("[\u0621-\u064a\u0671-\u06d3\u06fa-\u06ff]")
_LATIN_LETTER = re.compile("[A-Za-z]")

# Function words that carry no topic; kept short so that negations and question words survive.
ARABIC_STOPWORDS = frozenset(
    "في من على الى عن ان او ثم حتى مع هذا هذه ذلك تلك التي الذي الذين هو هي هم كان كانت قد لقد و ف ب ل ك "
    "ما اذا اي كل بين عند منذ لدى ايضا حيث بعد قبل كما فيه فيها منه منها عليه عليها اليه له لها به بها".split()
)
ENGLISH_STOPWORDS = frozenset(
    "a an the of in on at to for from by with and or is are was were be been it its this that these those "
    "as do does did what which who whom when where why how about into than then there their they he she "
    "his her them we you i".split()
)


# Bidi embeddings/overrides/isolates (U+202A-202E, U+2066-2069) can make text display as something else;
# zero-width spaces and BOMs are invisible noise. ZWJ/ZWNJ and LRM/RLM are kept: they shape real text.
_INVISIBLE = re.compile("[\u202a-\u202e\u2066-\u2069\u200b\u2060\ufeff]")


def strip_invisible(text: str) -> str:
    """`text` without bidi embeddings, overrides and isolates, zero-width spaces and BOMs."""
    return _INVISIBLE.sub("", text)


def ascii_digits(text: str) -> str:
    """Arabic-Indic and Eastern (Persian) digits as ASCII digits."""
    return text.translate(_DIGITS)


def clean_for_matching(text: str) -> str:
    """NFKC (folds presentation forms), strip diacritics and tatweel, unify digits; letters unchanged."""
    text = unicodedata.normalize("NFKC", text)
    text = _DIACRITICS.sub("", text).replace(_TATWEEL, "")
    return ascii_digits(text)


def fold(text: str) -> str:
    """Normalise for comparison: `clean_for_matching`, then fold alef forms, ى and ة, and case."""
    return clean_for_matching(text).translate(_FOLD_LETTERS).casefold()


def words(text: str) -> list[str]:
    """Folded word tokens (Arabic and Latin letters, digits)."""
    return _WORD.findall(fold(text))


@functools.lru_cache(maxsize=2)
def _stemmer(language: str):
    import Stemmer  # PyStemmer: Snowball stemmers in C

    return Stemmer.Stemmer(language)


def search_terms(text: str, keep_stopwords: bool = False) -> list[str]:
    """Terms for BM25: stem each word, then fold (the Snowball Arabic stemmer needs the original ة)."""
    tokens = _WORD.findall(clean_for_matching(text))
    arabic_stem = _stemmer("arabic").stemWord
    english_stem = _stemmer("english").stemWord
    terms = []
    for token in tokens:
        if _ARABIC_LETTER.search(token):
            folded = token.translate(_FOLD_LETTERS)
            if not keep_stopwords and folded in ARABIC_STOPWORDS:
                continue
            stem = arabic_stem(token).translate(_FOLD_LETTERS)
            terms.append(stem if len(stem) >= 2 else folded)
        else:
            lowered = token.casefold()
            if not keep_stopwords and lowered in ENGLISH_STOPWORDS:
                continue
            terms.append(english_stem(lowered) if _LATIN_LETTER.search(lowered) else lowered)
    return terms


def detect_language(text: str) -> str:
    """'ar' when Arabic words are at least as many as Latin ones, else 'en' (our two answer languages).

    Words, not letters: "ما سعر iPhone؟" is an Arabic question with one long Latin name in it.
    """
    tokens = _WORD.findall(text)
    arabic = sum(1 for token in tokens if _ARABIC_LETTER.search(token))
    latin = sum(1 for token in tokens if _LATIN_LETTER.search(token))
    return "ar" if arabic >= latin and arabic > 0 else "en"


def is_arabic_script(text: str) -> bool:
    return detect_language(text) == "ar"


# --- sentences: chunking (ingest) and answer selection (query) split text the same way ---------------

Span = tuple[int, int]
SENTENCE_END = re.compile(r"[.!?؟]+[\"'”»)\]]*(?=\s|$)|\n+")
CLAUSE_END = re.compile(r"[،؛,;:]+(?=\s)")


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """Spans of the sentences of text[start:end] (ending at . ! ? ؟ or a line break), whitespace trimmed."""
    return split_at(text, start, len(text) if end is None else end, SENTENCE_END)


def split_at(text: str, start: int, end: int, pattern: re.Pattern) -> list[Span]:
    spans, at = [], start
    for match in pattern.finditer(text, start, end):
        spans.append((at, match.end()))
        at = match.end()
    spans.append((at, end))
    return [trimmed for span in spans if (trimmed := trim_span(text, *span))]


def trim_span(text: str, start: int, end: int) -> Span | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None
