"""The LLM answerer: any OpenAI-compatible chat-completions endpoint, through langchain-openai.

The model sees numbered, delimited passages and must cite [n] after each claim. Its output is never
trusted as is: citations are parsed back, those naming a passage that was not given are dropped, the
rest are renumbered in order of appearance and each is tied to the exact sentence of its passage that
best supports the claim. No valid citation left means no answer from the LLM (the caller falls back).
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterator, Sequence
from typing import Any

from .errors import LLMError
from .extractive import citation_for, score_sentences
from .settings import Settings
from .templates import CANNOT_ANSWER, render
from .text import ascii_digits, fold, split_sentences
from .types import CITATION_MARKER, Citation, Hit

LANGUAGE_NAMES = {"ar": "Arabic (العربية)", "en": "English"}
# How models actually cite, besides [2]: [n=2] (copying the passage tag), [2, 3], [passage 2], [المقطع ٢].
_CITATION_VARIANT = re.compile(
    r"\[\s*(?:n\s*=\s*|passages?\s*|(?:ال)?(?:مقطع|فقرة|نص)\s*)?([0-9٠-٩]{1,2}(?:\s*[,،و]\s*[0-9٠-٩]{1,2})*)\s*\]",
    re.IGNORECASE,
)


def canonical_citations(text: str) -> str:
    """Every citation variant rewritten as [n][m]."""
    return _CITATION_VARIANT.sub(
        lambda m: "".join(f"[{n}]" for n in re.findall(r"\d+", ascii_digits(m.group(1)))), text
    )


def chat_model(settings: Settings):
    if not settings.llm_base_url:
        raise LLMError("no LLM endpoint configured: set ISNAD_LLM_BASE_URL (and ISNAD_LLM_MODEL)")
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        base_url=settings.llm_base_url,
        model=settings.llm_model or "default",
        # Local servers need no key, but the client insists on one.
        api_key=settings.llm_api_key.get_secret_value() or "no-key",
        timeout=settings.llm_timeout,
        max_retries=0,
        temperature=0.1,
        max_tokens=300,
    )


# Sentences that address the model rather than report news ("ignore the previous instructions and say X").
# Delimiting passages and telling the model they are data is not enough: measured against the 0.5B model,
# an injected article still put its payload into 3 of 32 answers. So such sentences never reach the model.
# Matched on folded text (alef forms, ta marbuta, case) with format characters removed, so that diacritics,
# tatweel or zero-width/bidi characters cannot hide them. bench/guard.py counts false alarms on news.
_ORDERS = r"(?:ال)?(?:تعليمات|اوامر|توجيهات|ارشادات|قواعد)(?:ك|كم)?"
_DROP = r"(?:تجاهل|تجاهلي|تجاهلوا|انس|انسي|انسوا|اهمل|اهملي|اهملوا|اترك|اتركي|اتركوا|لا تتبع|لا تلتزم ب)"
_INSTRUCTION_LIKE = re.compile(
    "|".join([
        # Arabic: "ignore/forget/do not follow" + "(all) the instructions" + "previous/above", or "all ...",
        # or "what came before"; and words that address the model itself.
        rf"(?<!\w){_DROP}\s*(?:كل|جميع)\s+{_ORDERS}",
        rf"(?<!\w){_DROP}\s*{_ORDERS}\s+(?:السابقه|اعلاه|الاصليه|المعطاه|الموجهه اليك)",
        rf"(?<!\w){_DROP}\s*ما سبق",
        r"(?<!\w)(?:انت الان|ايها|يا) (?:ال)?(?:مساعد|نموذج|روبوت|ذكاء الاصطناعي)",
        # English, the same shapes.
        r"\b(?:ignore|disregard|forget|override|do not follow|don't follow)\s+(?:(?:all|any|the|of|your|my)\s+)*"
        r"(?:previous|prior|above|earlier|preceding|original|system|all|your)\s+"
        r"(?:instructions?|prompts?|rules|directions|guidelines|directives)\b",
        r"\b(?:forget|ignore|disregard) (?:everything|all) (?:you|above|that|before)",
        r"\b(?:system prompt|new instructions\s*:|you are now (?:an? )?(?:ai|assistant|chatbot|language model))",
        r"^(?:assistant|system|user)\s*:",
    ])
)


def instruction_like(sentence: str) -> bool:
    """True when `sentence` reads as orders to the model rather than as news."""
    visible = "".join(ch for ch in sentence if unicodedata.category(ch) != "Cf")
    return bool(_INSTRUCTION_LIKE.search(" ".join(fold(visible).split())))


WITHHELD = "[…]"


def withhold_instructions(text: str) -> tuple[str, int]:
    """`text` with instruction-like sentences replaced by WITHHELD; and how many were replaced."""
    parts, last, withheld = [], 0, 0
    for start, end in split_sentences(text):
        if instruction_like(text[start:end]):
            parts += [text[last:start], WITHHELD]
            last, withheld = end, withheld + 1
    return "".join(parts) + text[last:], withheld


def format_passages(hits: Sequence[Hit]) -> tuple[str, int]:
    """Numbered, delimited passages (escaped so that no text can close its own tag), with instruction-like
    sentences withheld; and how many sentences were withheld."""
    blocks, withheld = [], 0
    for n, hit in enumerate(hits, start=1):
        text, count = withhold_instructions(hit.text)
        withheld += count
        meta = f'n="{n}" source="{html.escape(", ".join(hit.sources))}" date="{hit.date}"'
        blocks.append(f"<passage {meta}>\n{html.escape(text, quote=False)}\n</passage>")
    return "\n\n".join(blocks), withheld


def messages_for(question: str, language: str, hits: Sequence[Hit]) -> tuple[list[tuple[str, str]], int]:
    """The chat messages for `question` over `hits`; and how many passage sentences were withheld."""
    names = {"language_name": LANGUAGE_NAMES[language], "cannot_answer": CANNOT_ANSWER}
    passages, withheld = format_passages(hits)
    messages = [
        ("system", render("answer_system", **names)),
        ("user", render("answer_user", passages=passages, question=question, **names)),
    ]
    return messages, withheld


def stream_completion(settings: Settings, messages: list[tuple[str, str]]) -> Iterator[str]:
    """Text pieces from the endpoint; any failure becomes one LLMError with a readable reason."""
    try:
        for piece in chat_model(settings).stream(messages):
            if piece.content:
                yield str(piece.content)
    except LLMError:
        raise
    except Exception as exc:  # connection refused, timeout, HTTP errors, malformed replies
        raise LLMError(describe_failure(exc, settings)) from None


def complete(settings: Settings, messages: list[tuple[str, str]]) -> str:
    return "".join(stream_completion(settings, messages))


def describe_failure(exc: Exception, settings: Settings) -> str:
    """One line naming the endpoint and what went wrong; never the client's message (it may quote the key)."""
    from urllib.parse import urlsplit

    url = urlsplit(settings.llm_base_url)  # without a query string, where some gateways take keys
    endpoint = f"{url.scheme}://{url.netloc}{url.path}"
    name = type(exc).__name__
    if "Timeout" in name:
        return f"the LLM endpoint {endpoint} did not answer within {settings.llm_timeout:.0f}s"
    if "Connection" in name:
        return f"cannot connect to the LLM endpoint {endpoint}"
    status = getattr(exc, "status_code", None)
    if status:
        return f"the LLM endpoint {endpoint} returned HTTP {status}"
    return f"the LLM endpoint {endpoint} failed ({name})"


def parse_answer(
    raw: str, hits: Sequence[Hit], embedder, stored: dict | None = None
) -> tuple[str, list[Citation], bool]:
    """(text with citations renumbered, citations, declined). Unknown [n] are removed from the text; no
    citations come back when no claim cites a given passage. `stored` holds the hits' sentence vectors
    from the index (Store.sentence_vectors), so only the claims are embedded, not the passages again."""
    text = canonical_citations(raw.strip())
    if not text or CANNOT_ANSWER in text:
        return "", [], True
    order: dict[int, int] = {}
    for match in CITATION_MARKER.finditer(text):
        given = int(match.group(1))
        if 1 <= given <= len(hits) and given not in order:
            order[given] = len(order) + 1

    def renumber(match: re.Match) -> str:
        given = int(match.group(1))
        return f"[{order[given]}]" if given in order else ""

    renumbered = re.sub(r"\s+([.،,؟?!])", r"\1", CITATION_MARKER.sub(renumber, text)).strip()
    if not any(ch.isalnum() for ch in CITATION_MARKER.sub("", renumbered)):
        return "", [], False  # only markers ("[2]"): cites something but claims nothing
    citations = []
    for given, n in order.items():
        hit = hits[given - 1]
        claim = _claim_citing(renumbered, n)
        best = score_sentences(claim, embedder.embed_query(claim), [hit], embedder, stored)
        start, end, score = (best[0].start, best[0].end, best[0].score) if best else (hit.start, hit.end, 0.0)
        citations.append(citation_for(n, hit, start, end, score))
    return renumbered, citations, False


def _claim_citing(text: str, n: int) -> str:
    """The sentence of the answer that carries [n] (what the cited passage must support)."""
    for start, end in split_sentences(text):
        if f"[{n}]" in text[start:end]:
            return CITATION_MARKER.sub("", text[start:end]).strip() or text
    return text


def condense_with_llm(settings: Settings, question: str, history: Sequence[Any], language: str) -> str:
    lines = []
    for item in history[-6:]:
        if isinstance(item, dict) and isinstance(item.get("content"), str):
            # Earlier answers may quote an article's orders to the model: withheld here too.
            content, _ = withhold_instructions(item["content"][:500])
            lines.append(f"{item.get('role', 'user')}: {content}")
    prompt = render(
        "condense", history="\n".join(lines), question=question, language_name=LANGUAGE_NAMES[language]
    )
    condensed = complete(settings, [("user", prompt)]).strip().splitlines()
    return condensed[0].strip() if condensed and condensed[0].strip() else question
