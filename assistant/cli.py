"""`isnad`: a thin command line over the Python API.

The CLI and the UI are the two adapters that sit above both `assistant` and `ingest`; they import the
ingest pipeline lazily, and nothing else in `assistant` imports `ingest`.
Errors print as one line on stderr with exit status 1; set ISNAD_DEBUG=1 to see the traceback. Ctrl-C prints
one line and exits 130; a closed pipe (`isnad ... | head`) ends it quietly with 141, like SIGPIPE would.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .errors import IsnadError
from .settings import Settings

INGEST_SKIPPED = 3  # exit status of `isnad ingest` when some inputs were skipped (1 is an error)

# Subcommands with their own parsers live beside the code they drive: (module, function).
DELEGATED = {
    "ui": ("assistant.ui", "main_ui", "serve the chat web UI"),
    "eval": ("assistant.evaluation", "main_eval", "run the fixed Q&A set and check the thresholds"),
    "eval-xquad": ("assistant.evaluation", "main_xquad", "retrieval hit@1/5 on XQuAD"),
    "llm": ("assistant.llm_server", "main", "`isnad llm serve`: a local OpenAI-compatible server"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        try:
            return _dispatch(argv)
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


def _dispatch(argv: list[str]) -> int:
    parser = _parser()
    try:
        if argv and argv[0] in DELEGATED:
            import importlib

            module, function, _ = DELEGATED[argv[0]]
            return getattr(importlib.import_module(module), function)(argv[1:]) or 0
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            parser.print_help()
            return 2
        return args.run(args) or 0
    except IsnadError as exc:
        if os.environ.get("ISNAD_DEBUG"):
            raise
        print(f"isnad: error: {exc}", file=sys.stderr)
        return 1


def _settings(args) -> Settings:
    overrides = {
        name: getattr(args, name, None)
        for name in ("data_dir", "chroma_url", "collection", "embed_model")
    }
    return Settings.load(getattr(args, "config", None), **overrides)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="isnad", description="Cited answers from Arabic news.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="TOML settings file (default: $ISNAD_CONFIG or ./isnad.toml)")
    common.add_argument("--data-dir", type=Path, help="data directory (default ./isnad-data)")
    common.add_argument("--chroma-url", help="Chroma server URL; empty means the embedded store")
    common.add_argument("--collection", help="collection name prefix (default isnad)")
    common.add_argument("--embed-model", help="embedding model (default intfloat/multilingual-e5-small)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    ingest = sub.add_parser(
        "ingest", parents=[common], help="add articles to the index",
        epilog="Exit status: 0 when every input was ingested, 3 when some were skipped (each is listed with its "
        "reason; the rest is indexed), 1 on an error.",
    )
    ingest.add_argument("paths", nargs="*", help="files, directories or zip archives")
    ingest.add_argument("--sample", action="store_true", help="ingest the bundled sample corpus")
    ingest.add_argument("--prune", action="store_true", help="remove articles no longer in the input")
    ingest.add_argument("--json", action="store_true", help="print the report as one JSON object")
    ingest.set_defaults(run=_run_ingest)

    query = argparse.ArgumentParser(add_help=False, parents=[common])
    query.add_argument("--k", type=int, help="passages to retrieve (default 5)")
    query.add_argument("--source", action="append", default=[], help="only this newspaper (repeatable)")
    query.add_argument("--since", type=_date, help="only articles from this date on (YYYY-MM-DD)")
    query.add_argument("--until", type=_date, help="only articles up to this date (YYYY-MM-DD)")
    query.add_argument("--json", action="store_true", help="print JSON")

    ask = sub.add_parser("ask", parents=[query], help="answer one question with cited sources")
    ask.add_argument("question", help='the question; "-" reads it from standard input (UTF-8 or Windows-1256)')
    ask.add_argument("--mode", choices=["extractive", "llm"], help="answerer (default extractive)")
    ask.set_defaults(run=_run_ask)

    retrieve = sub.add_parser("retrieve", parents=[query], help="the ranked passages for a question")
    retrieve.add_argument("question", help='the question; "-" reads it from standard input')
    retrieve.set_defaults(run=_run_retrieve)

    chat = sub.add_parser("chat", parents=[query], help="a conversation in the terminal (follow-ups work)")
    chat.add_argument("--mode", choices=["extractive", "llm"])
    chat.set_defaults(run=_run_chat)

    for name, (_, _, summary) in DELEGATED.items():
        sub.add_parser(name, help=summary + f" (see `isnad {name} --help`)")

    stats = sub.add_parser("stats", parents=[common], help="counts and build information of the index")
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(run=_run_stats)
    return parser


def _run_ingest(args) -> int:
    from ingest import SAMPLE_DIR, ingest

    paths = list(args.paths) + ([str(SAMPLE_DIR)] if args.sample else [])
    if not paths:
        raise IsnadError("nothing to ingest: give files, directories or zip archives, or --sample")
    settings = _settings(args)
    report = ingest(paths, settings, prune=args.prune, progress=_ProgressLine())
    status = INGEST_SKIPPED if report.skipped else 0  # a script sees that some input did not make it in
    if args.json:
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


class _ProgressLine:
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


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _date(value: str) -> str:
    from datetime import date

    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date like 2015-08-01") from None


def _filters(args) -> dict:
    return {"sources": args.source, "since": args.since or "", "until": args.until or ""}


def _question(given: str) -> str:
    """The question argument, or with "-" standard input. Bytes that are not UTF-8 are kept as surrogate
    escapes, as Python keeps them in argv; the Assistant decodes those as Windows-1256 either way."""
    if given != "-":
        return given
    return sys.stdin.buffer.read().decode("utf-8-sig", errors="surrogateescape")


def _assistant(args):
    from .core import Assistant

    return Assistant(_settings(args))


def _run_ask(args) -> int:
    question = _question(args.question)  # read before the model loads: `isnad ask -` waits on its input first
    answer = _assistant(args).ask(question, filters=_filters(args), mode=args.mode, k=args.k)
    if args.json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
    else:
        _print_answer(answer)
    return 0


def _print_answer(answer) -> None:
    _print_line(answer.text, answer.language)
    if answer.notice:
        print(f"({answer.notice})")
    for c in answer.citations:
        where = " ".join(part for part in (", ".join(c.sources), c.date) if part)
        title = c.title if len(c.title) <= 90 else c.title[:89] + "…"
        line = f"[{c.n}] {title}" + (f" — {where}" if where else "") + f" — {c.urls[0] if c.urls else c.article_id}"
        _print_line(line)


def _print_line(line: str, language: str | None = None) -> None:
    """Print a line; on a terminal, Arabic goes in bidi isolates (URLs excepted). A pipe or a file gets the
    text as it is: there the isolates would be invisible junk in the data."""
    if sys.stdout.isatty():
        from .display import isolate_for_terminal

        line = isolate_for_terminal(line, language)
    print(line)


def _run_retrieve(args) -> int:
    hits = _assistant(args).retrieve(_question(args.question), k=args.k, filters=_filters(args))
    if args.json:
        print(json.dumps([hit.to_dict() for hit in hits], ensure_ascii=False, indent=2))
        return 0
    for rank, hit in enumerate(hits, start=1):
        _print_line(f"{rank}. {hit.score:.3f} {hit.title} ({', '.join(hit.sources)} {hit.date})")
        _print_line("   " + hit.text[:300].replace("\n", " "))
    return 0


def _run_chat(args) -> int:
    assistant = _assistant(args)
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
            answer = assistant.ask(question, history=history, filters=_filters(args), mode=args.mode, k=args.k)
        except IsnadError as exc:
            print(f"error: {exc}")
            continue
        _print_answer(answer)
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": answer.text}]


def _run_stats(args) -> int:
    from .store import Store

    settings = _settings(args)
    store = Store.open(settings)
    texts, chunks = store.count()
    articles = sum(len(record.copies) for record in store.iter_records())
    stats = {
        "articles": articles,
        "distinct_texts": texts,
        "chunks": chunks,
        "location": str(settings.chroma_url or settings.data_dir),
        **store.build_info,
    }
    if args.json:
        print(json.dumps(stats, ensure_ascii=False))
    else:
        for key, value in stats.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
