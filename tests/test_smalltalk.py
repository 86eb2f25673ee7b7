"""Small talk gets a short reply saying what Isnad answers; real questions get None (and are answered)."""

from __future__ import annotations

import pytest

from assistant.smalltalk import reply
from assistant.text import is_arabic_script

SMALL_TALK = [
    # greetings, thanks, goodbyes: the whole message
    "hello", "Hi!", "hi there", "Hey Isnad", "Good morning :)", "thanks", "Thank you very much!", "bye",
    "مرحبا", "مرحباً!!", "أهلا وسهلا", "السلام عليكم", "السلام عليكم ورحمة الله وبركاته", "شكرا", "شكراً جزيلاً يا إسناد",
    "صباح الخير", "كيف حالك؟", "مع السلامة",
    # chit-chat and instructions that are not questions about the articles
    "Tell me a joke", "tell me another joke about football", "Write a poem", "write me a poem about Jeddah",
    "Who are you?", "what's your name", "What can you do?", "are you a bot?",
    "ما اسمك", "ما اسمك؟", "من أنت؟", "اكتب قصيدة", "اكتب لي قصيدة عن الرياض", "قل لي نكتة", "ماذا تستطيع أن تفعل؟",
    # markup and code instead of a question
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "{{7*7}}", "'; DROP TABLE articles; --",
]

REAL_QUESTIONS = [
    "What did the chief of staff order about unregistered vehicles?",
    "ماذا أمر رئيس الأركان بشأن السيارات غير المرخصة؟",
    "How many people died in the fire in Jeddah?",
    "متى افتتح المعرض؟",
    "Who is the interior minister?",
    "من هو وزير الداخلية؟",
    "Hello, who is the interior minister?",  # a greeting, then a question: the question wins
    "مرحبا، متى افتتح المعرض؟",
    "Thanks to whom did Al-Hilal win the derby?",
    "لماذا شكر الملك رجال الأمن؟",
    "How are oil prices doing?",
    "What is the name of the new stadium?",
    "ما اسم اللاعب الذي سجل الهدفين؟",
    "من أنتج الفيلم؟",
    "ماذا تفعل الحكومة لمكافحة كورونا؟",  # "what does the government do", not "what do you do"
    "كيف تعمل البوابات الإلكترونية؟",
    "Who wrote the article about the fire?",
    "Tell me about the fire in Jeddah",
    "ماذا قال الوزير عن السلام في اليمن؟",
    "Is 5 > 3 in the oil report?",
    "What happened on 1/8/2015 in Riyadh?",
]


@pytest.mark.parametrize("message", SMALL_TALK)
def test_small_talk_gets_a_reply_saying_what_isnad_answers(message):
    for language in ("ar", "en"):
        text = reply(message, language)
        assert text, f"no reply to {message!r}"
        assert ("؟»" in text) if language == "ar" else ("?”" in text)  # it ends with an example question
        assert is_arabic_script(text) == (language == "ar"), text  # in the question's language


@pytest.mark.parametrize("question", REAL_QUESTIONS)
def test_real_questions_get_none(question):
    assert reply(question, "ar") is None and reply(question, "en") is None


def test_the_reply_fits_the_message():
    assert reply("thanks", "en").startswith("You're welcome!")
    assert reply("شكرا", "ar").startswith("العفو!")
    assert reply("Who are you?", "en").startswith("I am Isnad.")
    assert reply("<script>alert(1)</script>", "ar").startswith("يبدو هذا شيفرة")
    assert "<" not in reply("<script>alert(1)</script>", "en")  # the input is never echoed


def test_empty_input_is_left_to_the_assistant():
    assert reply("", "en") is None and reply("  ؟! ", "ar") is None
