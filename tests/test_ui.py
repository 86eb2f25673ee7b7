"""The chat web UI in a real browser (Debian's chromium through Playwright) against a real index.

The index of the bundled sample that conftest builds once per session (real embedder, real embedded
Chroma) is copied for these tests, which add articles to it. The UI is served in this process on a free
127.0.0.1 port through `assistant.app.ui.serve`, as `isnad ui` serves it. Screenshots go to test-artifacts/ui/
(or to $ISNAD_UI_SHOTS).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from tests.browser import free_port, is_local, launch_chromium, require_chromium, serve_ui

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SHOTS = Path(os.environ.get("ISNAD_UI_SHOTS") or ROOT / "test-artifacts" / "ui")
QA = {row["id"]: row for row in map(json.loads, (ROOT / "eval" / "qa.jsonl").read_text("utf-8").splitlines())}
ANSWER_TIMEOUT_MS = 90_000

BUTTERFLY_ARTICLE = """\
حديقة الفراشات في الزلفي تفتح أبوابها للزوار
افتتحت بلدية محافظة الزلفي أمس حديقة الفراشات الجديدة التي تضم 4817 فراشة من 63 نوعا نادرا جلبت من ماليزيا وكينيا.
وقال رئيس البلدية إن الحديقة ستستقبل الزوار يوميا من الرابعة عصرا حتى العاشرة مساء طوال فصل الشتاء.
"""
BUTTERFLY_QUESTION = "كم فراشة تضم حديقة الفراشات في الزلفي؟"

XSS_ARTICLE = {
    "title": "<img src=x onerror=\"window.__xss='img';alert('img')\"> مهرجان الزنبق في القطيف",
    "source": "<script>window.__xss='source'</script>Qatif Gazette",
    "url": "javascript:window.__xss='url'",
    "date": "2015-08-09",
    "content": (
        "اختتم مهرجان الزنبق في القطيف فعالياته بعد أن استقبل 9431 زائرا خلال ثلاثة أيام "
        "<script>window.__xss='script';alert('script')</script> وفق ما أعلنته اللجنة المنظمة ${alert('tpl')}.\n"
        "وشارك في المهرجان 57 مزارعا عرضوا أزهار الزنبق <b onmouseover=alert(1)>الملونة</b> في ساحة البلدية."
    ),
}
XSS_QUESTION = "كم زائرا استقبل مهرجان الزنبق في القطيف؟"


# --- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ui_settings(sample_settings, tmp_path_factory):
    """A private copy of the session's sample index: the upload tests add articles to it."""
    require_chromium()
    data_dir = tmp_path_factory.mktemp("ui-index") / "data"
    shutil.copytree(sample_settings.data_dir, data_dir)
    return sample_settings.model_copy(update={"data_dir": data_dir})


@pytest.fixture(scope="module")
def app_url(ui_settings):
    demo, url = serve_ui(ui_settings)
    yield url
    demo.close()


@pytest.fixture(scope="module")
def browser():
    with launch_chromium() as browser:
        yield browser


class Watch:
    """What the page did: every request url, every dialog (alerts must never open)."""

    def __init__(self, page) -> None:
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("dialog", self._dialog)

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def outside(self) -> list[str]:
        return [url for url in self.requests if not is_local(url)]


@contextlib.contextmanager
def open_page(browser, url: str):
    """A fresh page on the UI at `url`; on leaving, checks it stayed offline and ran no article script."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, locale="en-US")
    page = context.new_page()
    page.watch = Watch(page)
    page.goto(url)
    page.wait_for_selector("#isnad-question textarea")
    yield page
    context.close()
    assert page.watch.outside() == [], f"requests left the machine: {page.watch.outside()}"
    assert page.watch.dialogs == [], f"a dialog opened: {page.watch.dialogs}"


@pytest.fixture
def page(browser, app_url):
    with open_page(browser, app_url) as page:
        yield page


# --- helpers -----------------------------------------------------------------------------------------


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def ask(page, question: str):
    """Type a question, press Ask, wait until the answer is complete; returns the answer's element."""
    before = page.locator("#isnad-chat .isnad-msg").count()
    page.fill("#isnad-question textarea", question)
    page.click("#isnad-ask")
    return wait_for_answer(page, before)


def wait_for_answer(page, before: int):
    """The answer's element, once a question and its complete answer follow the `before` messages."""
    messages = page.locator("#isnad-chat .isnad-msg")
    page.wait_for_function(
        """(before) => {
            const all = document.querySelectorAll('#isnad-chat .isnad-msg');
            return all.length >= before + 2 && !all[all.length - 1].classList.contains('isnad-streaming');
        }""",
        arg=before,
        timeout=ANSWER_TIMEOUT_MS,
    )
    return messages.nth(messages.count() - 1)


def direction(locator) -> str:
    return locator.evaluate("element => getComputedStyle(element).direction")


def upload(page, paths: list[Path]):
    """Upload files in the Ingest tab and wait for the report; returns the report element."""
    page.get_by_role("tab", name="Ingest").click()
    page.set_input_files("#isnad-files input[type=file]", [str(p) for p in paths])
    for path in paths:
        # The file list shows each name as stem and suffix in separate elements.
        page.locator("#isnad-files").get_by_text(path.stem, exact=True).first.wait_for(timeout=30_000)
    # Remember whether progress was ever on screen (a small upload passes through it quickly).
    page.evaluate(
        """() => {
            window.__sawProgress = false;
            const target = document.querySelector('#isnad-report');
            new MutationObserver(() => {
                if (target.querySelector('.isnad-progress')) window.__sawProgress = true;
            }).observe(target, {childList: true, subtree: true});
        }"""
    )
    # A report already on screen is an earlier upload's: wait for the one this upload brings.
    page.evaluate("() => document.querySelectorAll('#isnad-report .isnad-report').forEach((r) => r.dataset.old = 1)")
    page.click("#isnad-add")
    fresh = "#isnad-report .isnad-report:not([data-old])"
    page.wait_for_selector(fresh, timeout=ANSWER_TIMEOUT_MS)
    return page.locator(fresh)


def to_chat(page) -> None:
    page.get_by_role("tab", name="Chat").click()
    page.wait_for_selector("#isnad-question textarea")


# --- tests -------------------------------------------------------------------------------------------


def test_arabic_question_is_answered_right_to_left_with_its_source(page):
    question = QA["ar-001"]["question"]
    answer = ask(page, question)

    assert answer.get_attribute("dir") == "rtl" and answer.get_attribute("lang") == "ar"
    assert direction(answer) == "rtl"
    assert "حملات مرورية" in answer.inner_text()
    cite = answer.locator("a.isnad-cite").first
    assert cite.inner_text() == "[1]"
    question_bubble = page.locator("#isnad-chat .isnad-msg").nth(-2)
    assert direction(question_bubble) == "rtl"

    source = page.locator("#isnad-src-1-1")
    assert "اجتمع رئيس الأركان العامة" in source.locator(".isnad-title").inner_text()
    assert "benghazi-security-meeting.txt" in source.inner_text()
    passage = source.locator(".isnad-passage")
    assert direction(passage) == "rtl"
    marked = passage.locator("mark").inner_text()
    assert "حملات مرورية تستهدف السيارات غير المسجلة" in marked
    assert marked in passage.inner_text()

    # Selecting the citation reveals its source.
    page.evaluate("document.querySelector('#isnad-sources').scrollTop = 10000")
    cite.click()
    page.wait_for_selector("#isnad-src-1-1.isnad-selected")
    page.wait_for_timeout(600)  # smooth scrolling
    assert source.evaluate(
        """element => {
            const box = element.getBoundingClientRect();
            return box.top < window.innerHeight && box.bottom > 0;
        }"""
    )
    # Layout: the sources panel sits beside the chat, not under it.
    chat_box = page.locator("#isnad-chat").bounding_box()
    sources_box = page.locator("#isnad-sources").bounding_box()
    assert sources_box["x"] >= chat_box["x"] + chat_box["width"] - 1
    assert abs(sources_box["y"] - chat_box["y"]) < 200
    shot(page, "01-arabic-answer")


def test_english_question_and_follow_up_cite_newspaper_date_and_url(page):
    question = QA["en-011"]["question"]
    answer = ask(page, question)
    assert answer.get_attribute("dir") == "ltr" and direction(answer) == "ltr"
    assert answer.locator("a.isnad-cite").count() >= 1
    first = page.locator("#isnad-src-1-1")
    meta = first.locator(".isnad-meta").inner_text()
    assert {"aleqtisadiya", "alweeam", "alyaum"} & set(meta.replace(",", " ").split()), meta
    assert "2015-08-04" in meta
    assert first.locator(".isnad-urls a[href^='http']").count() >= 1
    assert first.locator(".isnad-passage #isnad-span-1-1").inner_text().strip()
    shot(page, "02-english-answer")

    follow_up = ask(page, "And why had the previous minister been criticised?")
    assert follow_up.locator("a.isnad-cite").count() >= 1
    turns = page.locator("#isnad-sources details.isnad-turn")
    assert turns.count() == 2
    assert turns.nth(0).get_attribute("data-turn") == "2" and turns.nth(0).get_attribute("open") is not None
    assert turns.nth(1).get_attribute("open") is None  # the earlier turn is folded...
    page.locator("#isnad-chat a.isnad-cite").first.click()  # ...until one of its citations is selected
    page.wait_for_selector("#isnad-src-1-1.isnad-selected")
    assert turns.nth(1).get_attribute("open") is not None
    shot(page, "03-english-follow-up")


def test_empty_and_malformed_questions_get_friendly_messages(page):
    page.click("#isnad-ask")
    notice = page.locator("#isnad-chat-notice")
    notice.get_by_text("Type a question in Arabic or English first.").wait_for()
    assert page.locator("#isnad-chat .isnad-msg").count() == 0

    page.get_by_text("Options").click()
    page.get_by_label("From date").fill("2015-13-45")
    page.fill("#isnad-question textarea", "What did the chief of staff order?")
    page.click("#isnad-ask")
    notice.get_by_text("is not a date like 2015-08-01").wait_for()
    page.get_by_label("From date").fill("")

    answer = ask(page, "؟؟ !!")
    assert "Sorry: the question has no words" in answer.inner_text()
    assert "Traceback" not in page.content()
    shot(page, "04-friendly-errors")


def test_uploaded_article_is_searchable_without_restart(page, tmp_path):
    article = tmp_path / "zulfi-butterflies.txt"
    article.write_text(BUTTERFLY_ARTICLE, encoding="utf-8")
    empty = tmp_path / "empty-note.txt"
    empty.write_text("", encoding="utf-8")

    report = upload(page, [article, empty])
    text = report.inner_text()
    assert "new articles\t1" in text or "new articles 1" in text, text
    assert "empty-note.txt" in text and "empty file" in text
    assert "/tmp/" not in text  # the server's temporary paths stay hidden
    assert page.evaluate("window.__sawProgress")
    shot(page, "05-ingest-report")

    to_chat(page)
    answer = ask(page, BUTTERFLY_QUESTION)
    assert "4817" in answer.inner_text()
    assert answer.locator("bdi").filter(has_text="4817").count() >= 1  # digits isolated inside Arabic
    titles = page.locator("#isnad-sources .isnad-turn[open] .isnad-title").all_inner_texts()
    assert "حديقة الفراشات في الزلفي تفتح أبوابها للزوار" in titles
    source = page.locator("#isnad-sources .isnad-turn[open] .isnad-source").filter(has_text="zulfi-butterflies.txt")
    assert "4817" in source.locator("mark").inner_text()
    shot(page, "06-uploaded-article-answer")


def test_article_html_is_shown_as_text_and_never_runs(page, tmp_path):
    path = tmp_path / "qatif-tulips.json"
    path.write_text(json.dumps([XSS_ARTICLE], ensure_ascii=False), encoding="utf-8")
    report = upload(page, [path])
    assert "new articles" in report.inner_text()

    to_chat(page)
    answer = ask(page, XSS_QUESTION)
    assert "9431" in answer.inner_text()
    source = page.locator("#isnad-sources .isnad-turn[open] .isnad-source").first
    title = source.locator(".isnad-title").inner_text()
    assert "<img src=x onerror=" in title  # shown literally...
    assert "<script>window.__xss='source'</script>Qatif Gazette" in source.locator(".isnad-meta").inner_text()
    assert source.locator(".isnad-urls a").count() == 0  # a javascript: url is never a link
    assert "<script>" in source.locator(".isnad-passage").inner_text()
    page.wait_for_timeout(500)
    # ...and nothing of it became markup or ran.
    assert page.evaluate("window.__xss") is None
    assert page.locator("#isnad-sources img, #isnad-sources script, #isnad-sources b").count() == 0
    assert page.locator("#isnad-chat script, #isnad-chat img[src='x']").count() == 0
    shot(page, "07-escaped-html")


def test_filters_restrict_the_cited_newspapers_and_dates(page):
    page.get_by_text("Options").click()
    picker = page.locator("#isnad-newspapers input")
    picker.click()
    picker.fill("alwatan")
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    page.get_by_label("To date").fill("2015-07-31")
    ask(page, QA["en-011"]["question"])  # about a 2015-08-04 story in other papers
    sources = page.locator("#isnad-sources .isnad-turn[open] .isnad-source")
    metas = sources.locator(".isnad-meta").all_inner_texts()
    for meta in metas:
        assert "alwatan" in meta, metas
        assert meta.split("·")[-1].strip() <= "2015-07-31", metas
    shot(page, "11-filters")


# --- issue 12: one card per article, filter and cut notices, the upload list, quote blocks ------------

BIDI = dict.fromkeys(map(ord, "\u2066\u2067\u2068\u2069"))
PALM_ARTICLE = """\
مهرجان التمور في عنيزة يستقبل 2719 مزارعا
افتتح أمير منطقة القصيم مهرجان التمور في عنيزة الذي يشارك فيه 2719 مزارعا يعرضون 38 صنفا من التمور.
"""
LIBRARY_ARTICLE = """\
مكتبة الملك فهد في أبها تمدد ساعات العمل
أعلنت مكتبة الملك فهد العامة في أبها تمديد ساعات العمل حتى منتصف الليل خلال الإجازة الصيفية.
"""


def plain(text: str) -> str:
    """Text as a reader sees it: bidi isolates dropped, whitespace collapsed."""
    return " ".join(text.translate(BIDI).split())


def report_rows(report) -> dict[str, str]:
    return dict(zip(report.locator("th").all_inner_texts(), report.locator("td").all_inner_texts(), strict=True))


def open_options(page) -> None:
    if not page.get_by_label("From date").is_visible():
        page.get_by_text("Options").click()
    page.get_by_label("From date").wait_for()


@pytest.mark.parametrize("qa_id", ["en-011", "ar-029"])
def test_one_source_card_per_article_with_every_cited_span_marked(page, qa_id):
    answer = ask(page, QA[qa_id]["question"])
    cards = page.locator("#isnad-sources .isnad-turn[open] .isnad-source")
    articles = cards.evaluate_all("cards => cards.map(card => card.dataset.article)")
    assert len(articles) == len(set(articles)), f"an article has more than one card: {articles}"
    numbers = answer.locator("a.isnad-cite").all_inner_texts()
    marks = cards.locator("mark")
    assert marks.count() >= len(set(numbers)) >= 2, (numbers, marks.count())
    # Every [n] of the answer finds its highlighted span, and each span is what the answer quotes.
    shown_answer = plain(answer.inner_text())
    for number in {n.strip("[]") for n in numbers}:
        mark = cards.locator(f"mark[data-n~='{number}']")
        assert mark.count() == 1, number
        assert plain(mark.inner_text()).rstrip(".") in shown_answer
    # The card that holds several spans shows them in article order, whatever order the answer cites them in.
    shared = [card for card in cards.all() if card.locator("mark").count() >= 2]
    assert shared, "no card holds two cited spans of one article"
    starts = shared[0].locator("mark").evaluate_all("marks => marks.map(mark => Number(mark.dataset.start))")
    assert starts == sorted(starts), starts
    # A [n] whose span is not the card's first still selects that card, and its own span.
    later = shared[0].locator("mark").nth(1).get_attribute("data-n").split()[0]
    page.locator(f"#isnad-chat a.isnad-cite[href='#isnad-src-1-{later}']").last.click()
    page.wait_for_selector(f"#isnad-span-1-{later}.isnad-selected")
    assert shared[0].evaluate("card => card.classList.contains('isnad-selected')")
    shot(page, f"12-one-card-per-article-{qa_id}")


@pytest.mark.parametrize("qa_id, set_filter, says", [
    ("en-001", "newspaper", "newspapers alwatan"),
    ("ar-001", "date", "from 2030-01-01"),
])
def test_an_answer_emptied_by_filters_offers_to_clear_them(page, qa_id, set_filter, says):
    open_options(page)
    if set_filter == "newspaper":  # the canonical article was printed by no newspaper at all
        picker = page.locator("#isnad-newspapers input")
        picker.click()
        picker.fill("alwatan")
        page.keyboard.press("Enter")
        page.keyboard.press("Escape")
    else:  # after every article of the sample
        page.get_by_label("From date").fill("2030-01-01")
    offer = page.locator("#isnad-filter-offer")
    assert not offer.is_visible()
    answer = ask(page, QA[qa_id]["question"])
    assert answer.locator("a.isnad-cite").count() == 0
    offer.wait_for(state="visible")
    assert says in offer.inner_text()
    if set_filter == "date":  # no article at all passes: the library's notice says so in the answer
        notice = answer.locator(".isnad-notice")
        says_it = {"en": "No article matches the active filters (from 2030-01-01)",
                   "ar": "لا توجد مقالات تطابق عوامل التصفية المفعّلة (من 2030-01-01)"}[QA[qa_id]["language"]]
        assert notice.is_visible() and says_it in notice.inner_text()
    shot(page, f"13-filters-emptied-{qa_id}")

    before = page.locator("#isnad-chat .isnad-msg").count()
    offer.get_by_role("button", name="Clear filters and ask again").click()
    again = wait_for_answer(page, before)
    assert again.locator("a.isnad-cite").count() >= 1, again.inner_text()
    assert plain(page.locator("#isnad-chat .isnad-msg").nth(-2).inner_text()) == plain(QA[qa_id]["question"])
    assert page.locator("#isnad-newspapers .token").count() == 0
    assert page.get_by_label("From date").input_value() == page.get_by_label("To date").input_value() == ""
    assert not offer.is_visible()
    shot(page, f"14-filters-cleared-{qa_id}")


@pytest.mark.parametrize("qa_id", ["en-001", "ar-001"])
def test_a_cut_question_says_so_and_does_not_flood_the_sources(page, qa_id):
    question = QA[qa_id]["question"]
    pasted = " ".join([question] * (10_000 // (len(question) + 1) + 1))
    assert len(pasted) > 10_000
    answer = ask(page, pasted)
    notice = answer.locator(".isnad-notice")
    assert notice.is_visible()
    says = {"en": f"cut to its first 2,000 characters (it had {len(pasted):,})",
            "ar": f"اقتُصر على أول 2,000 حرف من السؤال (كان طوله {len(pasted):,} حرفًا)"}[QA[qa_id]["language"]]
    assert says in notice.inner_text()
    assert len(page.locator("#isnad-chat .isnad-msg").nth(-2).inner_text()) <= 2_000
    heading = page.locator("#isnad-sources .isnad-turn[open] > summary")
    assert len(heading.inner_text()) <= 200 and heading.bounding_box()["height"] < 120
    first_card = page.locator("#isnad-sources .isnad-turn[open] .isnad-source").first
    assert first_card.bounding_box()["y"] - page.locator("#isnad-sources").bounding_box()["y"] < 200
    shot(page, f"15-cut-question-{qa_id}")


def test_the_upload_list_is_empty_after_an_ingest(page, tmp_path):
    first, second = tmp_path / "unaizah-dates.txt", tmp_path / "abha-library.txt"
    first.write_text(PALM_ARTICLE, encoding="utf-8")
    second.write_text(LIBRARY_ARTICLE, encoding="utf-8")
    assert report_rows(upload(page, [first]))["new articles"] == "1"
    files = page.locator("#isnad-files")
    files.get_by_text(first.stem, exact=True).wait_for(state="detached")
    assert files.locator("input[type=file]").evaluate("input => input.files.length") == 0
    shot(page, "16-upload-list-cleared")

    rows = report_rows(upload(page, [second]))  # the first file is not sent again
    assert rows["new articles"] == "1" and rows["unchanged"] == "0", rows
    files.get_by_text(second.stem, exact=True).wait_for(state="detached")


def test_an_arabic_quote_in_an_english_answer_is_its_own_rtl_block(page):
    answer = ask(page, QA["en-011"]["question"])
    blocks = answer.locator(".isnad-quote")
    quotes = plain(answer.inner_text()).count("«")
    assert quotes >= 1 and blocks.count() == quotes
    # The first quote starts below the English words that introduce it.
    assert answer.evaluate("""bubble => {
        const intro = document.createRange();
        intro.selectNodeContents(bubble.firstChild);
        return bubble.firstChild.nodeType === Node.TEXT_NODE && bubble.firstChild.textContent.trim() !== ''
            && intro.getBoundingClientRect().bottom
                <= bubble.querySelector('.isnad-quote').getBoundingClientRect().top + 1;
    }""")
    for block in blocks.all():
        assert block.get_attribute("dir") == "rtl" and block.get_attribute("lang") == "ar"
        assert direction(block) == "rtl"
        assert block.evaluate("el => getComputedStyle(el).display") == "block"
        # Its [n] ends the block: after the closing », on the line of that », to its left (right-to-left).
        placement = block.evaluate("""block => {
            const markers = block.querySelectorAll('a.isnad-cite');
            const marker = markers[markers.length - 1];
            const text = block.textContent.trim();
            const walker = document.createTreeWalker(block, NodeFilter.SHOW_TEXT);
            let last = null;
            for (let node = walker.nextNode(); node; node = walker.nextNode()) {
                if (node.textContent.includes('»')) last = node;
            }
            const range = document.createRange();
            range.setStart(last, last.textContent.lastIndexOf('»'));
            range.setEnd(last, last.textContent.lastIndexOf('»') + 1);
            const quoteEnd = range.getBoundingClientRect(), mark = marker.getBoundingClientRect();
            return {
                endsBlock: text.endsWith(marker.textContent),
                sameLine: Math.abs(quoteEnd.top - mark.top) < quoteEnd.height,
                leftOf: mark.right <= quoteEnd.left + 2,
            };
        }""")
        assert placement == {"endsBlock": True, "sameLine": True, "leftOf": True}, placement
    shot(page, "17-english-answer-quote-block")

    arabic = ask(page, QA["ar-001"]["question"])  # Arabic answers stay one right-to-left message
    assert arabic.get_attribute("dir") == "rtl" and direction(arabic) == "rtl"
    assert arabic.locator(".isnad-quote").count() == 0
    assert arabic.locator("a.isnad-cite").count() >= 1
    shot(page, "18-arabic-answer-after-english")


def test_every_request_stays_on_this_machine(page):
    page.locator(".isnad-example").first.click()  # an example question is asked at once
    page.wait_for_selector("#isnad-chat a.isnad-cite", timeout=ANSWER_TIMEOUT_MS)
    page.get_by_role("tab", name="Ingest").click()
    page.wait_for_selector("#isnad-files")
    page.wait_for_timeout(500)
    hosts = {url.split("/")[2] for url in page.watch.requests if "://" in url}
    assert page.watch.requests and page.watch.outside() == [], page.watch.outside()
    assert hosts == {page.url.split("/")[2]}


def test_empty_index_says_how_to_start_and_first_upload_creates_it(browser, tmp_path):
    from assistant.settings import Settings

    settings = Settings.load(data_dir=tmp_path / "empty-data")
    demo, url = serve_ui(settings)
    try:
        with open_page(browser, url) as page:
            expected = "No articles yet: upload files in the Ingest tab or run isnad ingest --sample."
            assert expected in page.locator("#isnad-status").inner_text()
            assert page.locator("#isnad-status code").inner_text() == "isnad ingest --sample"
            assert expected in page.locator("#isnad-chat").inner_text()  # the empty chat says it too
            shot(page, "08-empty-index")
            answer = ask(page, "ماذا أمر رئيس الأركان؟")
            assert expected in answer.inner_text()

            article = tmp_path / "zulfi-butterflies.txt"
            article.write_text(BUTTERFLY_ARTICLE, encoding="utf-8")
            assert "new articles" in upload(page, [article]).inner_text()
            status = page.locator("#isnad-status").inner_text()
            assert "No articles yet" not in status and "1 passage." in status, status
            to_chat(page)
            # The example questions are now about this corpus, not the bundled sample.
            examples = page.locator(".isnad-example").all_inner_texts()
            assert examples[0] == "ماذا تقول الأخبار عن «حديقة الفراشات في الزلفي تفتح أبوابها للزوار»؟", examples
            english = examples[1].replace("\u2068", "").replace("\u2069", "")
            assert english.startswith("About «حديقة الفراشات"), examples
            assert english.endswith("what do the articles say?"), examples
            assert len(examples) == 2, examples
            answer = ask(page, BUTTERFLY_QUESTION)
            assert "4817" in answer.inner_text() and answer.locator("a.isnad-cite").count() >= 1
            shot(page, "09-first-upload-answered")
    finally:
        demo.close()


def test_unreachable_llm_falls_back_with_a_notice(browser, ui_settings):
    """LLM mode is offered when an endpoint is configured; when it is down the answer says so."""
    settings = ui_settings.model_copy(
        update={"llm_base_url": f"http://127.0.0.1:{free_port()}/v1", "llm_model": "none", "llm_timeout": 5.0}
    )
    demo, url = serve_ui(settings)
    try:
        with open_page(browser, url) as page:
            page.get_by_text("Options").click()
            page.get_by_label("LLM: generated, cited").check()
            answer = ask(page, QA["ar-001"]["question"])
            notice = answer.locator(".isnad-notice").inner_text()
            assert "LLM unavailable" in notice and "showing the extractive answer" in notice, notice
            assert answer.locator("a.isnad-cite").count() >= 1 and "حملات مرورية" in answer.inner_text()
            shot(page, "10-llm-down-notice")
    finally:
        demo.close()


def test_two_chats_are_answered_in_parallel(ui_settings, hanging_endpoint):
    """Two clients ask at once in LLM mode against an endpoint that never answers, so each chat takes the
    full LLM timeout before falling back: served in parallel, both finish in about one timeout, not two."""
    from gradio_client import Client

    timeout = 2.0
    settings = ui_settings.model_copy(update={"llm_base_url": hanging_endpoint, "llm_timeout": timeout})
    demo, url = serve_ui(settings)
    try:
        questions = [QA["ar-011"]["question"], QA["ar-013"]["question"]]
        clients = [Client(url, verbose=False) for _ in questions]

        def ask_all(pairs) -> float:
            started = time.perf_counter()
            jobs = [client.submit(q, [], "llm", 5, [], "", "", api_name="/ask") for client, q in pairs]
            for job in jobs:
                job.result(timeout=60)
            return time.perf_counter() - started

        alone = ask_all([(clients[0], questions[0])])
        together = ask_all(list(zip(clients, questions, strict=True)))
        print(f"\none chat alone: {alone:.2f} s; two at once: {together:.2f} s (LLM timeout {timeout:.0f} s)")
        assert alone >= timeout
        assert together < 2 * timeout, "the second chat waited for the first"
    finally:
        demo.close()
