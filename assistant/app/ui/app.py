"""The chat web UI (`isnad ui`): a thin Gradio app over `Assistant` and the ingest pipeline; its HTML comes
from `render`.

The page makes no request beyond the server it came from: analytics are off, there is no share link,
and the default theme's fonts are served locally.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Must be set before gradio is imported: `analytics_enabled=False` alone still calls home at launch.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gradio as gr  # noqa: E402

from ...errors import ConfigError, IndexLocked, IndexNotFound, IsnadError  # noqa: E402
from ...retrieval import Filters, iso_date  # noqa: E402
from ...settings import Settings  # noqa: E402
from ...types import Answer  # noqa: E402
from ..display import FSI, PDI  # noqa: E402
from .render import (  # noqa: E402
    direction_of,
    inline_html,
    render_answer,
    render_error,
    render_pending,
    render_progress,
    render_question,
    render_report,
    render_sources,
    with_code,
)

log = logging.getLogger("isnad.ui")

CSS_PATH = Path(__file__).with_name("ui.css")
UPLOAD_TYPES = [".txt", ".md", ".json", ".jsonl", ".csv", ".html", ".htm", ".zip"]
EMPTY_INDEX = "No articles yet: upload files in the Ingest tab or run `isnad ingest --sample`."
# Example questions: written for the bundled sample (whose seed article is SAMPLE_SEED); for any other
# corpus they are made from the titles of its newest articles (`corpus_examples`).
SAMPLE_SEED = "benghazi-security-meeting.txt"
EXAMPLES = [
    "ماذا أمر رئيس الأركان بشأن المركبات غير المسجلة؟",
    "What did the chief of staff order about unregistered vehicles?",
    "كم عدد العمال الذين أنقذهم الدفاع المدني في جدة؟",
    "Whom did South Korea's president appoint as the new health minister?",
]
MAX_PASSAGES = 20

# Runs once in the page: citation links select and reveal their source; the question box follows the
# direction of what is typed.
PAGE_JS = """
() => {
  document.addEventListener('click', (event) => {
    const link = event.target.closest('a.isnad-cite');
    if (!link) return;
    event.preventDefault();
    event.stopPropagation();
    // href "#isnad-src-T-N": the card of source N of turn T. One card holds every span cited from its
    // article, so N may be a span (isnad-span-T-N) inside a card numbered after another citation.
    const key = (link.getAttribute('href') || '').replace(/^#isnad-src-/, '');
    const span = document.getElementById('isnad-span-' + key);
    const source = span ? span.closest('.isnad-source') : document.getElementById('isnad-src-' + key);
    if (!source) return;
    const turn = source.closest('details');
    if (turn) turn.open = true;
    document.querySelectorAll('#isnad-sources .isnad-selected').forEach((el) => el.classList.remove('isnad-selected'));
    source.classList.add('isnad-selected');
    if (span) span.classList.add('isnad-selected');
    (span || source).scrollIntoView({behavior: 'smooth', block: 'center'});
  }, true);
  const setDir = () => document.querySelectorAll('#isnad-question textarea, #isnad-question input')
    .forEach((box) => box.setAttribute('dir', 'auto'));
  setDir();
  new MutationObserver(setDir).observe(document.body, {childList: true, subtree: true});
}
"""



class Backend:
    """Holds the server's `Assistant`; creates it once an index exists and refreshes it after an ingest."""

    def __init__(self, settings: Settings, assistant=None) -> None:
        self.settings = settings
        self._assistant = assistant
        self._lock = threading.Lock()
        self.newspapers: list[str] = []
        self.passages = 0
        self.examples: list[str] = list(EXAMPLES)
        if assistant is not None:
            self._describe()

    def assistant(self):
        """The Assistant; raises IndexNotFound while there is no index."""
        with self._lock:
            if self._assistant is None:
                from ...core import Assistant

                self._assistant = Assistant(self.settings)
                self._describe()
            return self._assistant

    def try_assistant(self):
        try:
            return self.assistant()
        except IndexNotFound:
            return None

    def after_ingest(self) -> None:
        with self._lock:
            if self._assistant is not None:
                self._assistant.refresh()
                self._describe()
        self.try_assistant()

    def embedder(self):
        return self._assistant.embedder if self._assistant is not None else None

    def _describe(self) -> None:
        records = list(self._assistant.store.iter_records())  # one scan for the newspapers and the examples
        self.newspapers = sorted({source for record in records for source in record.sources})
        self.passages = self._assistant.store.count()[1]
        if any(SAMPLE_SEED in record.article_ids for record in records):
            self.examples = list(EXAMPLES)
        else:
            self.examples = corpus_examples(records, len(EXAMPLES)) or list(EXAMPLES)

    def status_html(self) -> str:
        try:
            opened = self.try_assistant()
        except IsnadError as exc:  # e.g. an index built by another embedder: say so instead of failing
            return f'<div class="isnad-status isnad-empty" role="alert">{inline_html(str(exc), False)}</div>'
        if opened is None:
            return f'<div class="isnad-status isnad-empty">{with_code(EMPTY_INDEX)}</div>'
        papers = len(self.newspapers)
        where = f" from {papers} newspaper{'s' if papers != 1 else ''}" if papers else ""
        return (
            f'<div class="isnad-status">{self.passages} passage{"s" if self.passages != 1 else ""}{where}. '
            "Ask in Arabic or English; every answer cites the passages it comes from.</div>"
        )

    def chat_placeholder(self) -> str:
        if self.try_assistant() is None:
            text = with_code(EMPTY_INDEX)
        else:
            text = "Ask about the articles, or pick an example below. <span dir='rtl' lang='ar'>اسأل عن الأخبار.</span>"
        return f"<div class='isnad-placeholder'>{text}</div>"


def corpus_examples(records, n: int) -> list[str]:
    """Up to `n` questions, Arabic and English in turn, about the newest articles that have a title."""
    titled = [(r.primary.date, " ".join(r.primary.title.split()[:10])) for r in records
              if len(r.primary.title.split()) >= 3]
    titles = list(dict.fromkeys(title for _, title in sorted(titled, reverse=True)))[: (n + 1) // 2]
    questions = []
    for title in titles:
        # The title isolated and not last, so that it cannot pull the English punctuation into its run.
        questions += [f"ماذا تقول الأخبار عن «{title}»؟", f"About «{FSI}{title}{PDI}»: what do the articles say?"]
    return questions[:n]


# --- event handlers ----------------------------------------------------------------------------------


def _filters(sources, since: str, until: str) -> dict[str, Any]:
    return {"sources": list(sources or []), "since": iso_date(since, "since"), "until": iso_date(until, "until")}


def _filter_note(described: str) -> str:
    return (f'<div class="isnad-filter-note" role="status">No answer with the filters in Options on '
            f"({inline_html(described, False)}).</div>")


def _filter_offer(described: str = "", question: str = "") -> tuple:
    """The "Clear filters" bar (shown when filters were on and no answer came) and the question it re-asks."""
    return gr.update(visible=bool(described)), _filter_note(described) if described else "", question


def _chat_handler(backend: Backend):
    def respond(question, chat, history, turns, mode, k, sources, since, until) -> Iterator[tuple]:
        from ...core import MAX_QUESTION_CHARS

        chat, history, turns = list(chat or []), list(history or []), list(turns or [])
        sources_html = render_sources(turns)

        def screen(chat, typed, notice="", offer=()):
            """The handler's outputs; `typed` is what the question box keeps."""
            return chat, typed, history, turns, sources_html, *(offer or _filter_offer()), notice

        if not (question or "").strip():
            yield screen(chat, question, _notice("Type a question in Arabic or English first."))
            return
        try:
            filters = _filters(sources, since, until)
        except IsnadError as exc:
            yield screen(chat, question, _notice(str(exc)))
            return
        language = direction_of(question)[1]
        chat += [
            # What the assistant reads (a pasted page is cut to its first MAX_QUESTION_CHARS; the answer says so).
            {"role": "user", "content": render_question(question[:MAX_QUESTION_CHARS])},
            {"role": "assistant", "content": render_pending("", language)},
        ]
        yield screen(chat, "")
        try:
            assistant = backend.assistant()
            answer, streamed, last = None, "", 0.0
            for item in assistant.stream(question, history=history, filters=filters, mode=mode, k=int(k)):
                if isinstance(item, Answer):
                    answer = item
                    break
                streamed += item
                if time.monotonic() - last > 0.1:  # at most ten screen updates a second
                    last = time.monotonic()
                    chat[-1] = {"role": "assistant", "content": render_pending(streamed, language)}
                    yield screen(chat, "")
        except IndexNotFound:
            chat[-1] = {"role": "assistant", "content": render_error(EMPTY_INDEX, code=True)}
            yield screen(chat, "")
            return
        except IsnadError as exc:
            chat[-1] = {"role": "assistant", "content": render_error(f"Sorry: {exc}.")}
            yield screen(chat, "")
            return
        except Exception:  # never a traceback in the page; the server log has it
            log.exception("answering %r failed", question)
            chat[-1] = {"role": "assistant", "content": render_error(
                "Sorry, something went wrong while answering; the server log has the details.")}
            yield screen(chat, "")
            return
        turn = (turns[-1]["turn"] + 1) if turns else 1
        turns.append({"turn": turn, "question": answer.question or question, "citations": answer.citations})
        chat[-1] = {"role": "assistant", "content": render_answer(answer, turn)}
        # The history keeps the question as read (cut and normalised), so a pasted page is not carried on.
        history += [{"role": "user", "content": answer.question or question},
                    {"role": "assistant", "content": answer.text}]
        sources_html = render_sources(turns)
        # Filters left on in the folded Options panel are the usual reason for "the articles do not say".
        described = Filters.coerce(filters).describe() if not answer.has_answer else ""
        yield screen(chat, "", offer=_filter_offer(described, answer.question or question))

    return respond


def _clear_filters_and_reask(question: str) -> tuple:
    """Empty the filters, hide the bar and put the question back in the box (the caller then asks it)."""
    return gr.update(value=[]), "", "", *_filter_offer(), question


def _notice(message: str) -> str:
    return f'<div class="isnad-chat-notice" role="alert">{inline_html(message, False)}</div>' if message else ""


def _ingest_handler(backend: Backend):
    def run(files) -> Iterator[tuple]:
        keep = (gr.update(),) * (4 + len(EXAMPLES))  # the file list, banner, newspapers, chat, examples
        if not files:
            yield _report_error("Choose one or more files first (txt, json, jsonl, csv, html or zip)."), *keep
            return
        paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in files]
        # Gradio keeps each upload under its original name in a temporary folder: show the name only.
        uploads = {str(Path(p).parent) + os.sep: "" for p in paths}
        from ingest import ingest  # the UI is one of the two adapters allowed to import the pipeline

        updates: queue.Queue = queue.Queue()
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["report"] = ingest(paths, backend.settings, progress=updates.put, embedder=backend.embedder())
            except Exception as exc:  # reported below, never raised into the page
                outcome["error"] = exc
            finally:
                updates.put(None)

        threading.Thread(target=work, name="isnad-ui-ingest", daemon=True).start()
        yield render_progress(None), *keep
        latest, finished, shown_at = None, False, 0.0
        while not finished:
            try:
                item = updates.get(timeout=0.5)
            except queue.Empty:
                item = latest
            else:
                while item is not None:  # drain: only the latest progress matters
                    latest = item
                    try:
                        item = updates.get_nowait()
                    except queue.Empty:
                        break
                finished = item is None
            if not finished and time.monotonic() - shown_at > 0.3:
                shown_at = time.monotonic()
                yield render_progress(latest), *keep

        error = outcome.get("error")
        if error is not None:
            if isinstance(error, IndexLocked):
                message = "Another ingest is writing to the index right now; try again when it has finished."
            elif isinstance(error, IsnadError):
                message = f"The files could not be added: {error}."
            else:
                log.error("ingest failed", exc_info=error)
                message = "The files could not be added; the server log has the details."
            yield _report_error(message), *keep
            return
        try:
            backend.after_ingest()
        except IsnadError as exc:
            yield _report_error(f"The files were added, but the index could not be reopened: {exc}."), *keep
            return
        # The files are in: an empty list means the next upload sends only what is chosen next.
        yield render_report(outcome["report"], uploads), gr.update(value=None), *_current_state(backend)()

    return run


def _current_state(backend: Backend):
    """Banner, newspaper choices, empty-chat text and example questions for the index as it is now."""

    def state() -> tuple:
        status = backend.status_html()
        shown = backend.examples
        examples = [gr.update(value=shown[i], visible=True) if i < len(shown) else gr.update(visible=False)
                    for i in range(len(EXAMPLES))]
        placeholder = gr.update(placeholder=backend.chat_placeholder())
        return status, gr.update(choices=backend.newspapers), placeholder, *examples

    return state


def _report_error(message: str) -> str:
    return f'<div class="isnad-report isnad-error" role="alert">{inline_html(message, False)}</div>'


# --- the app -----------------------------------------------------------------------------------------


def build_app(settings: Settings, *, concurrency: int = 4, assistant=None) -> gr.Blocks:
    """The Gradio app: a Chat tab (answers beside their sources) and an Ingest tab.

    `assistant` reuses an already opened `Assistant`; otherwise one is opened when the index exists
    (and as soon as the first ingest creates it).
    """
    backend = Backend(settings, assistant)
    backend.try_assistant()  # load the embedder now, so the first question is not the slow one
    llm = settings.llm_configured
    modes = [("Extractive: exact quotes", "extractive")] + ([("LLM: generated, cited", "llm")] if llm else [])

    with gr.Blocks(title="Isnad: cited answers from Arabic news", analytics_enabled=False) as demo:
        gr.HTML('<header class="isnad-header"><h1>Isnad <span lang="ar" dir="rtl">إسناد</span></h1>'
                "<p>Cited answers from Arabic news, in Arabic or English.</p></header>")
        status = gr.HTML(backend.status_html(), elem_id="isnad-status")
        history = gr.State([])
        turns = gr.State([])
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                with gr.Row(equal_height=False, elem_id="isnad-main"):
                    with gr.Column(scale=3, min_width=360):
                        chat = gr.Chatbot(
                            elem_id="isnad-chat",
                            height=560,
                            render_markdown=False,  # article text is never read as Markdown or LaTeX
                            sanitize_html=True,
                            latex_delimiters=[],
                            feedback_options=None,
                            buttons=["copy"],
                            placeholder=backend.chat_placeholder(),
                            show_label=False,
                        )
                        notice = gr.HTML("", elem_id="isnad-chat-notice")
                        with gr.Row(visible=False, elem_id="isnad-filter-offer") as filter_offer:
                            filter_note = gr.HTML("")
                            clear_filters = gr.Button("Clear filters and ask again", size="sm", variant="primary",
                                                      scale=0, min_width=200, elem_id="isnad-clear-filters")
                        asked = gr.State("")  # the question the "Clear filters" button asks again
                        with gr.Row():
                            question = gr.Textbox(
                                placeholder="Ask a question in Arabic or English… / اكتب سؤالك بالعربية أو الإنجليزية",
                                show_label=False, scale=5, lines=1, max_lines=4, elem_id="isnad-question",
                            )
                            ask = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="isnad-ask")
                        with gr.Row(elem_id="isnad-examples"):
                            example_buttons = [
                                gr.Button(text, size="sm", variant="secondary", elem_classes=["isnad-example"],
                                          visible=bool(text))
                                for text in backend.examples + [""] * (len(EXAMPLES) - len(backend.examples))
                            ]
                        with gr.Accordion("Options", open=False, elem_id="isnad-options"):
                            mode = gr.Radio(
                                modes, value=settings.mode if llm else "extractive", label="Answer mode",
                                info=None if llm else "LLM mode needs an endpoint (set ISNAD_LLM_BASE_URL).",
                                interactive=llm,
                            )
                            k = gr.Slider(1, MAX_PASSAGES, value=settings.k, step=1, label="Passages to retrieve")
                            newspapers = gr.Dropdown(
                                backend.newspapers, value=[], multiselect=True, label="Only these newspapers",
                                elem_id="isnad-newspapers",
                            )
                            with gr.Row():
                                since = gr.Textbox(label="From date", placeholder="2015-07-22", max_lines=1)
                                until = gr.Textbox(label="To date", placeholder="2015-08-11", max_lines=1)
                        clear = gr.Button("New conversation", size="sm", variant="secondary")
                    with gr.Column(scale=2, min_width=320):
                        sources = gr.HTML(render_sources([]), elem_id="isnad-sources")
            with gr.Tab("Ingest", id="ingest"):
                gr.Markdown(
                    "Add articles: plain text (first line = title), JSON or JSON Lines (`title`, `content`, "
                    "`source`, `url`, `date`), CSV with the same columns, HTML pages, or a zip of any of these."
                )
                files = gr.File(file_count="multiple", file_types=UPLOAD_TYPES, label="Article files",
                                elem_id="isnad-files")
                add = gr.Button("Add to the index", variant="primary", elem_id="isnad-add")
                report = gr.HTML("", elem_id="isnad-report")

        respond = _chat_handler(backend)
        chat_inputs = [question, chat, history, turns, mode, k, newspapers, since, until]
        chat_outputs = [chat, question, history, turns, sources, filter_offer, filter_note, asked, notice]
        ask.click(respond, chat_inputs, chat_outputs, api_name="ask")
        question.submit(respond, chat_inputs, chat_outputs, api_name=False)
        for button in example_buttons:  # a button's label is its question (it changes with the corpus)
            button.click(lambda text: text, button, question, api_name=False, queue=False).then(
                respond, chat_inputs, chat_outputs, api_name=False
            )
        clear.click(
            lambda: ([], "", [], [], render_sources([]), *_filter_offer(), ""), None, chat_outputs, api_name=False,
            queue=False,
        )
        clear_filters.click(
            _clear_filters_and_reask, asked, [newspapers, since, until, filter_offer, filter_note, asked, question],
            api_name=False, queue=False,
        ).then(respond, chat_inputs, chat_outputs, api_name=False)
        # One ingest at a time: a second upload waits in the queue instead of meeting the writer lock.
        add.click(_ingest_handler(backend), [files], [report, files, status, newspapers, chat, *example_buttons],
                  api_name=False, concurrency_limit=1)
        # Each page load shows the index as it is now (another process may have ingested meanwhile).
        demo.load(_current_state(backend), None, [status, newspapers, chat, *example_buttons], api_name=False,
                  queue=False)
    demo.queue(default_concurrency_limit=concurrency)
    return demo


def launch_options() -> dict[str, Any]:
    """What `launch()` needs besides the address: styles, page script, and nothing that goes online."""
    from ingest.load import MAX_FILE_BYTES

    return {
        # Larger files would be refused by ingest anyway; refusing them at the door keeps them off the disk.
        "max_file_size": MAX_FILE_BYTES,
        "css": CSS_PATH.read_text(encoding="utf-8"),
        "js": PAGE_JS,
        "share": False,
        "ssr_mode": False,
        "pwa": False,
        "mcp_server": False,
        "footer_links": ["settings"],
        "show_error": False,
        "quiet": True,
    }


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 7860, concurrency: int = 4,
          *, block: bool = True, assistant=None) -> gr.Blocks:
    """Serve the UI on http://host:port. With `block=False` it returns the running app (`.close()` it)."""
    check_port_free(host, port)  # before the app is built: a busy port fails in a second, not after the model loads
    demo = build_app(settings, concurrency=concurrency, assistant=assistant)
    try:
        demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, **launch_options())
    except OSError as exc:  # taken between the check and the launch; gradio says "Cannot find empty port"
        if "empty port" not in str(exc):
            raise
        raise ConfigError(_port_in_use(port)) from None
    return demo


def check_port_free(host: str, port: int) -> None:
    """Raise ConfigError with one clear line when nothing could listen on host:port (port 0 picks a free one)."""
    if port == 0:
        return
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no obstacle
            probe.bind((host, port))
    except OSError as exc:
        if getattr(exc, "errno", None) == errno.EADDRINUSE:
            raise ConfigError(_port_in_use(port)) from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}: pass --host or --port") from None


def _port_in_use(port: int) -> str:
    return f"port {port} is in use: pass --port N or stop the other server"
