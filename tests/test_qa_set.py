"""Checks on the fixed bilingual Q&A set (eval/qa.jsonl) against the bundled sample corpus.

Fast and model-free: the sample files are read directly with json, so a broken evidence
string, a missing article or an "unanswerable" question whose answer slipped into the
corpus fails here before any eval run.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
QA_PATH = REPO_ROOT / "eval" / "qa.jsonl"
SAMPLE_DIR = REPO_ROOT / "ingest" / "sample" / "articles"
SAMPLE_JSON = SAMPLE_DIR / "saudinewsnet-sample.json"
SEED_ID = "benghazi-security-meeting.txt"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

KINDS = {"who", "what", "when", "where", "how_many", "why"}
LANGUAGES = {"ar", "en"}
FIELDS = {
    "id",
    "language",
    "kind",
    "question",
    "answer",
    "answerable",
    "article_ids",
    "evidence",
    "follows",
    "check",
    "absent_terms",
    "standalone",
}
CANONICAL_EN = "What did the chief of staff order about unregistered vehicles?"
ARTICLE_FIELDS = ("source", "url", "date_extracted", "title", "author", "content")

ARABIC_LETTER = re.compile("[\u0621-\u064a]")
LATIN_LETTER = re.compile("[A-Za-z]")
# Light normalisation for the absence check: diacritics and tatweel out, alef forms,
# alef maqsura and taa marbuta folded, so spelling variants cannot hide a match.
DIACRITICS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")


def normalise_arabic(text: str) -> str:
    text = DIACRITICS.sub("", text)
    text = re.sub("[أإآٱ]", "ا", text)
    return text.replace("ى", "ي").replace("ة", "ه")


@pytest.fixture(scope="module")
def items() -> list[dict]:
    lines = QA_PATH.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="module")
def corpus() -> dict[str, str]:
    """Article id -> text, with the ids the ingest uses (url, or file name for .txt)."""
    articles = json.loads(SAMPLE_JSON.read_text(encoding="utf-8"))
    texts = {a["url"]: a["content"] for a in articles}
    assert len(texts) == len(articles), "two sample articles share a url"
    for path in sorted(SAMPLE_DIR.glob("*.txt")):
        texts[path.name] = path.read_text(encoding="utf-8")
    return texts


def test_every_line_is_a_complete_record(items):
    assert len(items) >= 90
    for item in items:
        assert set(item) == FIELDS, f"{item.get('id')}: fields {sorted(set(item) ^ FIELDS)}"
        assert item["language"] in LANGUAGES, item["id"]
        assert item["kind"] in KINDS, item["id"]
        assert isinstance(item["answerable"], bool), item["id"]
        assert item["question"].strip() and item["answer"].strip(), item["id"]


def test_ids_unique_and_well_formed(items):
    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids)), [i for i, n in Counter(ids).items() if n > 1]
    for item in items:
        assert re.fullmatch(r"(ar|en)-\d{3}", item["id"]), item["id"]
        assert item["id"].startswith(item["language"] + "-"), item["id"]


def test_languages_balanced(items):
    counts = Counter(item["language"] for item in items)
    assert counts["ar"] >= 40 and counts["en"] >= 40, counts
    assert abs(counts["ar"] - counts["en"]) <= 0.1 * len(items), counts


def test_text_is_in_the_stated_language(items):
    for item in items:
        script = ARABIC_LETTER if item["language"] == "ar" else LATIN_LETTER
        assert script.search(item["question"]), f"{item['id']}: question not in {item['language']}"
        # A bare number ("943") is a valid answer in either language; any words must match.
        has_letters = ARABIC_LETTER.search(item["answer"]) or LATIN_LETTER.search(item["answer"])
        wrong_script = has_letters and not script.search(item["answer"])
        assert not wrong_script, f"{item['id']}: answer not in {item['language']}"
        if item["language"] == "en":
            assert not ARABIC_LETTER.search(item["question"] + item["answer"]), item["id"]


def test_every_kind_in_both_languages(items):
    for language in LANGUAGES:
        kinds = {item["kind"] for item in items if item["language"] == language}
        assert kinds == KINDS, f"{language} lacks {KINDS - kinds}"


def test_enough_unanswerable(items):
    unanswerable = [item for item in items if not item["answerable"]]
    assert len(unanswerable) >= 12
    assert {item["language"] for item in unanswerable} == LANGUAGES


def test_follow_ups_point_to_an_earlier_item_and_have_a_standalone_form(items):
    position = {item["id"]: n for n, item in enumerate(items)}
    by_id = {item["id"]: item for item in items}
    pairs = Counter()
    for n, item in enumerate(items):
        if item["follows"] is None:
            assert item["standalone"] is None, f"{item['id']}: standalone form but no follows"
            continue
        lead = by_id.get(item["follows"])
        assert lead is not None, f"{item['id']} follows unknown {item['follows']!r}"
        assert position[lead["id"]] < n, f"{item['id']} follows a later item"
        # The same question asked alone, in the follow-up's language, naming what the follow-up leaves out.
        standalone = item["standalone"]
        assert isinstance(standalone, str) and standalone.strip() not in ("", item["question"]), item["id"]
        script = ARABIC_LETTER if item["language"] == "ar" else LATIN_LETTER
        assert script.search(standalone), f"{item['id']}: standalone form not in {item['language']}"
        if item["language"] == "en":
            assert not ARABIC_LETTER.search(standalone), item["id"]
        pairs[item["language"]] += 1
    assert pairs["ar"] >= 5 and pairs["en"] >= 5, pairs


def conversations(items: list[dict]) -> list[list[dict]]:
    """Chains of turns (first question, its follow-up, the follow-up's follow-up, ...), longest branch."""
    by_id = {item["id"]: item for item in items}
    followed = {item["follows"] for item in items if item["follows"]}
    chains = []
    for item in items:
        if item["id"] in followed:
            continue
        chain = [item]
        while chain[0]["follows"]:
            chain.insert(0, by_id[chain[0]["follows"]])
        if len(chain) > 1:
            chains.append(chain)
    return chains


def test_conversations_switch_language_over_three_turns(items):
    long = [chain for chain in conversations(items) if len(chain) >= 3]
    assert len(long) >= 12, len(long)
    for chain in long:
        ids = [turn["id"] for turn in chain]
        assert chain[0]["follows"] is None and chain[0]["standalone"] is None, ids
        switches = sum(a["language"] != b["language"] for a, b in zip(chain, chain[1:], strict=False))
        assert switches >= 2, f"{ids}: the language must switch at every turn of these conversations"
        assert len({turn["article_ids"][0] for turn in chain if turn["article_ids"]}) == 1, ids
    languages = Counter(chain[1]["language"] for chain in long)
    assert languages["ar"] >= 4 and languages["en"] >= 4, languages  # both directions of the switch


def test_article_ids_exist_in_the_sample(items, corpus):
    for item in items:
        for article_id in item["article_ids"]:
            assert article_id in corpus, f"{item['id']}: unknown article {article_id!r}"


def longest_shared_word_run(question: str, texts: list[str]) -> int:
    words = normalise_arabic(question).rstrip("؟?").split()
    for n in range(len(words), 0, -1):
        grams = (" ".join(words[i : i + n]) for i in range(len(words) - n + 1))
        if any(gram in text for gram in grams for text in texts):
            return n
    return 0


def test_arabic_questions_are_paraphrased_not_copied(items, corpus):
    # Named entities may be quoted (up to ~6 words); whole clauses lifted from an article may not.
    texts = [normalise_arabic(text) for text in corpus.values()]
    for item in (i for i in items if i["language"] == "ar"):
        for question in filter(None, (item["question"], item["standalone"])):
            run = longest_shared_word_run(question, texts)
            assert run <= 6, f"{item['id']}: {run} consecutive words copied from the corpus"


def test_answerable_items_cite_verbatim_evidence(items, corpus):
    for item in (i for i in items if i["answerable"]):
        assert item["article_ids"] and item["evidence"], item["id"]
        assert len(set(item["article_ids"])) == len(item["article_ids"]), item["id"]
        assert item["check"] is None and item["absent_terms"] == [], item["id"]
        for span in item["evidence"]:
            assert 20 <= len(span) <= 300, f"{item['id']}: evidence length {len(span)}"
            assert "\n" not in span and span == span.strip(), f"{item['id']}: {span!r}"
            for article_id in item["article_ids"]:
                assert span in corpus[article_id], f"{item['id']}: {span!r} not in {article_id}"


def test_evidence_lists_every_copy_of_a_duplicated_story(items, corpus):
    # Agency copy printed by several papers: all copies carrying the span must be cited.
    for item in (i for i in items if i["answerable"]):
        for span in item["evidence"]:
            holders = {aid for aid, text in corpus.items() if span in text}
            missing = holders - set(item["article_ids"])
            assert holders == set(item["article_ids"]), f"{item['id']}: also in {missing}"


def test_duplicate_stories_are_asked_about(items):
    multi = [i for i in items if len(i["article_ids"]) >= 2]
    assert {i["language"] for i in multi} == LANGUAGES
    assert len({tuple(sorted(i["article_ids"])) for i in multi}) >= 2


def test_unanswerable_items_have_no_evidence_and_say_how_they_were_checked(items):
    for item in (i for i in items if not i["answerable"]):
        assert item["article_ids"] == [] and item["evidence"] == [], item["id"]
        assert isinstance(item["check"], str) and len(item["check"].strip()) >= 20, item["id"]
        terms = item["absent_terms"]
        assert 1 <= len(terms) <= 3 and all(t.strip() for t in terms), item["id"]
        assert all(ARABIC_LETTER.search(t) for t in terms), item["id"]


def test_absent_terms_really_are_absent(items, corpus):
    normalised = {aid: normalise_arabic(text) for aid, text in corpus.items()}
    for item in (i for i in items if not i["answerable"]):
        for term in item["absent_terms"]:
            hits = [aid for aid, text in normalised.items() if normalise_arabic(term) in text]
            assert not hits, f"{item['id']}: {term!r} occurs in {hits}"


def test_normalisation_folds_spelling_variants():
    # Guards the absence check itself: a variant spelling must still be found.
    assert normalise_arabic("إدارة") == normalise_arabic("اداره")
    assert normalise_arabic("مُسْتَشْفَى") == normalise_arabic("مستشفي")
    assert normalise_arabic("تـعـويـض") == "تعويض"


def test_canonical_question_and_its_arabic_counterpart(items):
    by_id = {item["id"]: item for item in items}
    english, arabic = by_id["en-001"], by_id["ar-001"]
    assert english["question"] == CANONICAL_EN
    assert arabic["language"] == "ar" and "غير المسجلة" in arabic["question"]
    for item in (english, arabic):
        assert item["answerable"] and item["article_ids"] == [SEED_ID]
        assert any("حملات مرورية تستهدف السيارات غير المسجلة" in span for span in item["evidence"])


def test_sample_corpus_shape(corpus):
    articles = json.loads(SAMPLE_JSON.read_text(encoding="utf-8"))
    assert 40 <= len(articles) <= 50
    for article in articles:
        assert tuple(article) == ARTICLE_FIELDS, article.get("url")
    assert len({a["source"] for a in articles}) >= 6
    assert len({a["date_extracted"][:10] for a in articles}) >= 5
    assert not any(a["date_extracted"].startswith("2015-08-09") for a in articles)
    assert (SAMPLE_DIR / SEED_ID).read_bytes() and SEED_ID in corpus
    assert (SAMPLE_DIR.parent / "NOTICE.md").is_file()


def test_sample_holds_near_duplicate_groups():
    spec = importlib.util.spec_from_file_location("make_sample", REPO_ROOT / "eval" / "make_sample.py")
    make_sample = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_sample)
    articles = json.loads(SAMPLE_JSON.read_text(encoding="utf-8"))
    group_of = {n: {n} for n in range(len(articles))}
    for _, i, j in make_sample.near_duplicate_pairs(articles):
        merged = group_of[i] | group_of[j]
        for n in merged:
            group_of[n] = merged
    groups = {frozenset(g) for g in group_of.values() if len(g) > 1}
    assert len(groups) >= 2 and all(2 <= len(g) <= 3 for g in groups), groups
    for group in groups:  # agency copy: the same story from different papers
        assert len({articles[n]["source"] for n in group}) == len(group)


@pytest.mark.skipif(not (SHARED_DATA / "saudinewsnet").is_dir(), reason="shared data not mounted")
def test_sample_is_reproducible_from_shared_data():
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "eval" / "make_sample.py"),
            "--check",
            "--data-dir",
            str(SHARED_DATA),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr


def test_the_held_out_news_set_is_verbatim_over_a_day_the_sample_never_uses():
    """eval/heldout.jsonl: 48 questions written blind over SaudiNewsNet's 2015-08-09, the day
    eval/make_sample.py refuses to select from, so nothing tuned on the sample has seen its articles."""
    import zipfile

    day = SHARED_DATA / "saudinewsnet" / "2015-08-09.zip"
    if not day.is_file():
        pytest.skip(f"{day} is not here")
    spec = importlib.util.spec_from_file_location("make_sample", REPO_ROOT / "eval" / "make_sample.py")
    make_sample = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_sample)
    assert "2015-08-09" in make_sample.EXCLUDED_DAYS
    with zipfile.ZipFile(day) as archive:
        articles = {a["url"]: a["content"] for a in json.loads(archive.read("2015-08-09.json"))}
    sample_urls = {a["url"] for a in json.loads(SAMPLE_JSON.read_text(encoding="utf-8"))}
    items = [json.loads(line) for line in (REPO_ROOT / "eval" / "heldout.jsonl").read_text("utf-8").splitlines()]
    assert len(items) == 48 and len({i["id"] for i in items}) == 48
    assert Counter((i["language"], i["answerable"]) for i in items) == {
        ("ar", True): 15, ("ar", False): 9, ("en", True): 15, ("en", False): 9}
    for item in items:
        assert set(item) == FIELDS, item["id"]
        content = articles[item["article_ids"][0]]
        assert item["article_ids"][0] not in sample_urls, item["id"]
        if item["answerable"]:
            assert item["evidence"] and all(e in content for e in item["evidence"]), item["id"]
            assert any(item["answer"] in e for e in item["evidence"]), item["id"]
        else:
            assert item["evidence"] == [], item["id"]


def test_the_readers_news_training_questions_stay_off_every_day_we_evaluate_on():
    """eval/reader_news.jsonl trains the reader. None of its days is the held-out day or a day the sample
    draws from, none of its articles is a near copy of an evaluated one, and its evidence is verbatim in
    the article as ingest cleans it (what the training script chunks)."""
    import zipfile

    from ingest.clean import clean_text
    from ingest.dedupe import signature, similarity

    root = SHARED_DATA / "saudinewsnet"
    if not (root / "2015-08-09.zip").is_file():
        pytest.skip(f"{root} is not here")
    items = [json.loads(line) for line in (REPO_ROOT / "eval" / "reader_news.jsonl").read_text("utf-8").splitlines()]
    assert len({i["id"] for i in items}) == len(items) >= 400
    sample = json.loads(SAMPLE_JSON.read_text(encoding="utf-8"))
    days = {i["day"] for i in items}
    assert not days & ({"2015-08-09"} | {a["date_extracted"][:10] for a in sample})
    evaluated = [signature(clean_text(a["content"])) for a in sample]
    with zipfile.ZipFile(root / "2015-08-09.zip") as archive:
        evaluated += [signature(clean_text(a["content"])) for a in json.loads(archive.read("2015-08-09.json"))]
    texts = {}
    for day in days:
        with zipfile.ZipFile(root / f"{day}.zip") as archive:
            texts.update((a["url"], clean_text(a["content"])) for a in json.loads(archive.read(f"{day}.json")))
    for url in {i["url"] for i in items}:
        mine = signature(texts[url])
        assert max(similarity(mine, other) for other in evaluated) < 0.3, url
    asked = {json.loads(line)["question"] for name in ("qa.jsonl", "heldout.jsonl")
             for line in (REPO_ROOT / "eval" / name).read_text("utf-8").splitlines()}
    for item in items:
        assert item["question"] not in asked, item["id"]
        if item["answerable"]:
            assert item["evidence"] in texts[item["url"]] and item["answer"] in item["evidence"], item["id"]
        else:
            assert item["evidence"] == item["answer"] == "", item["id"]
