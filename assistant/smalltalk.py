"""Replies to messages that are not questions about the articles.

A greeting, a thank-you, "who are you", "tell me a joke", "write a poem" or a pasted `<script>` is not
something the news can answer: retrieving passages for it would only produce a strange citation.
`reply(message, language)` returns a short reply for those, saying what Isnad answers and giving an example
question, and None for everything else, which the assistant then answers from the articles as usual.

It is a handful of patterns, not a classifier, and it errs towards None: a message is small talk only when
it *is* a greeting or thanks from start to end ("Hello, who is the interior minister?" is a question), or
when it *starts* with a request that no article answers. Matching is done on a canonical form (see
`_canonical`): folded like the index folds Arabic (alef forms, ى/ي, ة/ه, diacritics, case), punctuation
and emoji turned into spaces, so "مرحباً!!" and "مرحبا" are the same message.
"""

from __future__ import annotations

import re

from .text import fold

__all__ = ["reply"]

# What Isnad is for, with an example question from the bundled sample (README's first example).
_ABOUT = {
    "en": (
        "I answer questions about the news articles in the index, quoting them with their sources. "
        "For example: “What did the chief of staff order about unregistered vehicles?”"
    ),
    "ar": (
        "أجيب عن الأسئلة حول الأخبار المفهرسة، مقتبسًا منها مع ذكر مصادرها. "
        "مثلًا: «ماذا أمر رئيس الأركان بشأن السيارات غير المسجلة؟»"
    ),
}

# The first words of the reply, by what the message was.
_OPENING = {
    "hello": {"en": "Hello!", "ar": "أهلًا!"},
    "how": {"en": "Fine, thank you!", "ar": "بخير، شكرًا!"},
    "thanks": {"en": "You're welcome!", "ar": "العفو!"},
    "ok": {"en": "All right.", "ar": "حسنًا."},
    "bye": {"en": "Goodbye!", "ar": "مع السلامة!"},
    "identity": {"en": "I am Isnad.", "ar": "أنا إسناد."},
    "request": {"en": "That is not something the articles can answer.", "ar": "هذا ليس مما تجيب عنه الأخبار."},
    "markup": {"en": "That looks like code or markup, not a question.", "ar": "يبدو هذا شيفرة أو وسومًا، لا سؤالًا."},
}


def _canonical(text: str) -> str:
    """Folded text with every run of non-word characters (punctuation, emoji, `_`) as one space."""
    return " ".join(re.sub(r"[\W_]+", " ", fold(text)).split())


# --- greetings and thanks: the whole message must be made of these (and of the fillers below) -------------

_GREETINGS = {
    "hello": [
        "hello", "hi", "hey", "hiya", "yo", "greetings", "good morning", "good afternoon", "good evening",
        "مرحبا", "مرحبتين", "أهلا", "أهلا وسهلا", "أهلين", "هلا", "هلا والله", "السلام عليكم", "سلام",
        "وعليكم السلام", "عليكم السلام", "ورحمة الله", "وبركاته", "صباح الخير", "مساء الخير", "صباح النور",
        "مساء النور", "هاي",
    ],
    "how": [
        "how are you", "how are you doing", "how is it going", "how s it going", "what s up", "whats up",
        "كيف حالك", "كيف الحال", "كيفك", "شلونك", "اخبارك", "ايش اخبارك", "عامل ايه",
    ],
    "thanks": [
        "thanks", "thank you", "thanks a lot", "many thanks", "thx", "ty", "cheers",
        "شكرا", "شكرا لك", "شكرا جزيلا", "مشكور", "يعطيك العافية", "جزاك الله خيرا",
    ],
    "ok": ["ok", "okay", "great", "cool", "nice", "تمام", "حسنا", "طيب", "ممتاز"],
    "bye": ["bye", "goodbye", "bye bye", "see you", "good night", "مع السلامة", "إلى اللقاء", "تصبح على خير"],
}
# Words that may sit around a greeting without making it a question ("hi there", "شكرا جزيلا يا إسناد").
_FILLERS = {_canonical(w) for w in ["isnad", "there", "everyone", "again", "so", "very", "much", "يا", "إسناد", "جدا"]}
# Canonical phrase -> kind, longest first so that "thank you" is taken before "thanks"-like prefixes.
_PHRASES = sorted(
    ((_canonical(p), kind) for kind, phrases in _GREETINGS.items() for p in phrases), key=lambda pk: -len(pk[0])
)


def _greeting(message: str) -> str | None:
    """The kind of the last greeting when `message` is nothing but greetings and fillers, else None."""
    words, kind = message.split(), None
    while words:
        if words[0] in _FILLERS:
            words = words[1:]
            continue
        for phrase, phrase_kind in _PHRASES:
            n = phrase.count(" ") + 1
            if words[:n] == phrase.split():
                words, kind = words[n:], phrase_kind
                break
        else:
            return None  # a word that is neither greeting nor filler: a question, maybe after a "hello"
    return kind


# --- requests no article answers: the message starts with one (anything may follow) ----------------------


def _any(*phrases: str) -> str:
    """A regex alternative of canonical `phrases` (written naturally, folded here like the message)."""
    return "(?:" + "|".join(re.escape(_canonical(p)) for p in phrases) + ")"


_FOR_ME = rf"(?: {_any('me', 'us', 'for me', 'لي', 'لنا')})?"
_A = rf"(?: {_any('a', 'an', 'another', 'some', 'one more')})?"
_REQUESTS = [
    # Who or what Isnad is.
    ("identity", _any(
        "who are you", "what are you", "who made you", "who created you", "who built you", "what is your name",
        "what s your name", "whats your name", "your name", "are you a bot", "are you a robot", "are you human",
        "are you an ai", "are you real",
        "من أنت", "من انتي", "مين انت", "ما أنت", "ما اسمك", "ما هو اسمك", "شو اسمك", "ايش اسمك", "اسمك",
        "من صنعك", "من برمجك", "من طورك", "هل أنت روبوت", "هل أنت إنسان", "هل أنت ذكاء اصطناعي",
        "ماذا يمكنك", "ما الذي يمكنك",
    )),
    # Write me a poem / a story / some code.
    ("request", _any("write", "compose", "generate", "create", "make", "اكتب", "اكتبي", "ألف", "نظم", "أنشئ")
     + _FOR_ME + _A + " " + _any(
         "poem", "poems", "story", "song", "joke", "essay", "haiku", "limerick", "code", "program", "script",
         "قصيدة", "قصيدتين", "شعر", "شعرا", "قصة", "نكتة", "أغنية", "مقالا", "مقالة", "كود", "برنامج",
    )),
    # Tell me a joke / make me laugh.
    ("request", _any("tell", "say", "قل", "قول", "احك", "احكي", "احكيلي", "اروي") + _FOR_ME + _A + " "
     + _any("joke", "jokes", "something funny", "نكتة", "نكت", "شيئا مضحكا")),
    ("request", _any("make me laugh", "joke", "a joke", "sing me a song", "let s play", "play a game",
                     "i love you", "do you love me", "نكتة", "اضحكني", "أحبك", "هل تحبني", "لنلعب")),
]
_REQUEST_PATTERNS = [(kind, re.compile(rf"^{pattern}(?: |$)")) for kind, pattern in _REQUESTS]
# Only as the whole message: "ماذا تفعل" is also "what does she do", as in "ماذا تفعل الحكومة ...؟".
_WHOLE = _any("what can you do", "what do you do", "how do you work", "help", "ماذا تستطيع", "ماذا تفعل",
              "ماذا تستطيع أن تفعل", "ما الذي تستطيع فعله", "كيف تعمل", "ساعدني", "مساعدة")
_REQUEST_PATTERNS.append(("identity", re.compile(rf"^{_WHOLE}$")))


# --- markup and code pasted instead of a question ---------------------------------------------------------

_TAG = re.compile(r"<\s*/?\s*[A-Za-z!?][^<>]*>")  # <script>, </div>, <!-- ... -->, <?php
_CODE = re.compile(r"```|\{\{|\}\}|javascript:|\b(?:drop table|union select|console\.log|document\.cookie)\b", re.I)
_SYMBOLS = re.compile(r"[<>{}\[\];=$`|\\]")


def _markup(text: str) -> bool:
    """Tags, template or code fences, injection classics, or a text that is mostly code symbols."""
    if _TAG.search(text) or _CODE.search(text):
        return True
    symbols, visible = len(_SYMBOLS.findall(text)), len("".join(text.split()))
    return symbols >= 3 and symbols > 0.15 * visible


def reply(question: str, language: str) -> str | None:
    """A short reply in `language` ("ar" or "en") when `question` is small talk, None for a real question."""
    if _markup(question):
        kind = "markup"
    else:
        message = _canonical(question)
        if not message:
            return None  # empty input is the assistant's to refuse, with its own message
        kind = _greeting(message) or next((k for k, p in _REQUEST_PATTERNS if p.match(message)), None)
    if kind is None:
        return None
    language = "ar" if language == "ar" else "en"
    return f"{_OPENING[kind][language]} {_ABOUT[language]}"
