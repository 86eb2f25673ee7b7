"""Read articles from files, directories (recursive) and zip archives.

Every input yields either an `Article` (not yet cleaned) or a `Skipped` item with the place and the reason,
so one bad file or line never stops the rest. Zip members are read in memory (never extracted, so no
path in an archive can escape anywhere) with limits on sizes against zip bombs.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from assistant.types import Article

SUPPORTED = (".txt", ".md", ".json", ".jsonl", ".csv", ".html", ".htm", ".zip")
MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_ZIP_MEMBER_BYTES = 256 * 1024 * 1024
MAX_ZIP_TOTAL_BYTES = 2 * 1024 * 1024 * 1024
MAX_ZIP_RATIO = 200  # uncompressed/compressed; real text compresses 3-10x, bombs 1000x
MAX_JSON_DEPTH = 64
_HTML_START = re.compile(r"\s*(?:<!doctype html|<html[\s>])", re.IGNORECASE)

# Field names accepted for each article field, first match wins (SaudiNewsNet uses the first ones).
FIELDS = {
    "title": ("title", "headline", "name", "subject"),
    "text": ("content", "text", "body", "article", "story"),
    "url": ("url", "link", "href", "permalink"),
    "source": ("source", "publisher", "newspaper", "site", "outlet"),
    "date": ("date", "date_extracted", "published", "pubdate", "pub_date", "datetime", "time"),
    "author": ("author", "byline", "writer", "authors"),
}


@dataclass(frozen=True)
class Skipped:
    path: str  # "file", "file:line" or "archive.zip/member"
    reason: str


def read_inputs(paths: Iterable[str | Path]) -> Iterator[Article | Skipped]:
    """Articles from every path. Ids: the url when given, else the file path relative to the argument
    (a file argument counts from its own directory), with `#N` for the N-th record of a multi-record file."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path)))
            for file in files:
                yield from _read_file(file, file.relative_to(path).as_posix())
        elif path.is_file():
            yield from _read_file(path, path.name)
        else:
            yield Skipped(str(path), "no such file or directory")


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def _read_file(path: Path, name: str) -> Iterator[Article | Skipped]:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        yield Skipped(str(path), _unsupported(suffix))
        return
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        yield Skipped(str(path), f"file too large ({size:,} bytes > {MAX_FILE_BYTES:,}); split it")
        return
    if suffix == ".zip":
        yield from _read_zip(path, name)
        return
    yield from read_bytes(path.read_bytes(), name, display=str(path))


def _unsupported(suffix: str) -> str:
    return f"unsupported file type {suffix or '(no extension)'!r}; supported: {', '.join(SUPPORTED)}"


def _read_zip(path: Path, name: str) -> Iterator[Article | Skipped]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        yield Skipped(str(path), f"not a readable zip archive ({exc})")
        return
    total = 0
    with archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            member = PurePosixPath(info.filename)
            display = f"{path}/{info.filename}"
            hidden = any(part.startswith(".") and part not in (".", "..") for part in member.parts)
            if info.is_dir() or hidden or "__MACOSX" in member.parts:
                continue
            suffix = member.suffix.lower()
            if suffix not in SUPPORTED or suffix == ".zip":
                yield Skipped(display, _unsupported(suffix) if suffix != ".zip" else "nested zip archives are not read")
                continue
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > MAX_ZIP_MEMBER_BYTES or ratio > MAX_ZIP_RATIO:
                yield Skipped(display, f"refused: expands to {info.file_size:,} bytes (ratio {ratio:.0f}:1)")
                continue
            total += info.file_size
            if total > MAX_ZIP_TOTAL_BYTES:
                yield Skipped(display, "refused: the archive expands to more than 2 GB in all")
                return
            # The id uses the member name with any '..' or leading '/' dropped: it is a label, never a path.
            safe = "/".join(p for p in member.parts if p not in ("..", "/", ""))
            try:
                data = _read_member(archive, info)
            except (zipfile.BadZipFile, OSError, ValueError) as exc:
                yield Skipped(display, f"cannot read archive member ({exc})")
                continue
            yield from read_bytes(data, f"{name}/{safe}", display=display)


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    # Read with a hard cap: the header's size can lie.
    with archive.open(info) as handle:
        data = handle.read(MAX_ZIP_MEMBER_BYTES + 1)
    if len(data) > MAX_ZIP_MEMBER_BYTES:
        raise ValueError("member larger than its header says")
    return data


def read_bytes(data: bytes, name: str, display: str | None = None) -> Iterator[Article | Skipped]:
    """Articles from the bytes of one file called `name` (its extension picks the format)."""
    display = display or name
    suffix = PurePosixPath(name).suffix.lower()
    if not data.strip():
        yield Skipped(display, "empty file")
        return
    try:
        text = decode(data)
    except ValueError as exc:
        yield Skipped(display, str(exc))
        return
    if suffix not in _READERS:
        yield Skipped(display, _unsupported(suffix))
    elif suffix not in (".html", ".htm") and _HTML_START.match(text):
        # A saved web page under another name: read as CSV or JSON it gives rows of markup or nothing.
        yield Skipped(display, f"an HTML page saved as {suffix}: no text read from it; rename it .html")
    else:
        found = False
        for item in _READERS[suffix](text, name, display):
            found = True
            yield item
        if not found:  # e.g. a CSV with a header line and no rows: say so rather than add nothing silently
            yield Skipped(display, f"no articles found in this {suffix} file")


def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, else Windows-1256 (legacy Arabic); binary is refused."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    if b"\x00" in data[:8192]:
        raise ValueError("binary file (contains NUL bytes), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp1256")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 or Windows-1256 text; re-save it as UTF-8") from None
    # cp1256 maps almost every byte, so check the result looks like Arabic text rather than noise:
    # compressed or encrypted bytes decode to ~12% control characters and a fair share of Arabic letters.
    controls = sum(1 for c in text if unicodedata.category(c) == "Cc" and c not in "\t\n\r\f")
    if controls > len(text) / 100:
        raise ValueError("binary file (control characters throughout), not text")
    letters = sum(1 for c in text if c.isalpha())
    arabic = sum(1 for c in text if "\u0600" <= c <= "\u06ff")
    if letters == 0 or arabic / letters < 0.3:
        raise ValueError("binary or unknown encoding (not UTF-8, and not Arabic Windows-1256); re-save as UTF-8")
    return text


def _read_plain(text: str, name: str, display: str) -> Iterator[Article | Skipped]:
    # The whole file is the article text (the first line too: it is often the lead sentence); the
    # first non-empty line doubles as the title.
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    title = first.lstrip("#").strip()[:200]
    yield Article(id=name, title=title, text=text, origin=display)


def _read_json(text: str, name: str, display: str) -> Iterator[Article | Skipped]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        yield Skipped(f"{display}:{exc.lineno}", f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")
        return
    except RecursionError:
        yield Skipped(display, f"JSON nested too deeply (over {MAX_JSON_DEPTH} levels)")
        return
    if isinstance(data, dict):
        # A single article, or a wrapper such as {"articles": [...]}.
        lists = [v for v in data.values() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
        records = lists[0] if len(lists) == 1 and not _has_field(data, "text") else [data]
    elif isinstance(data, list):
        records = data
    else:
        yield Skipped(display, "JSON must be an array of article objects or one object")
        return
    for index, record in enumerate(records):
        yield _from_record(record, name, f"{display}[{index}]", f"#{index}")


def _read_jsonl(text: str, name: str, display: str) -> Iterator[Article | Skipped]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Skipped(f"{display}:{number}", f"malformed JSON on line {number}: {exc.msg}")
            continue
        except RecursionError:
            yield Skipped(f"{display}:{number}", f"JSON on line {number} nested too deeply")
            continue
        yield _from_record(record, name, f"{display}:{number}", f"#{number}")


def _read_csv(text: str, name: str, display: str) -> Iterator[Article | Skipped]:
    csv.field_size_limit(MAX_FILE_BYTES)
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    try:
        for record in reader:
            yield _from_record(record, name, f"{display}:{reader.line_num}", f"#{reader.line_num}")
    except csv.Error as exc:
        yield Skipped(f"{display}:{reader.line_num}", f"malformed CSV at line {reader.line_num}: {exc}")


def _read_html(text: str, name: str, display: str) -> Iterator[Article | Skipped]:
    import trafilatura  # main-text extraction: drops scripts, styles, navigation and boilerplate

    document = trafilatura.bare_extraction(text, include_comments=False, with_metadata=True)
    body = getattr(document, "text", None) if document is not None else None
    if not body:
        yield Skipped(display, "no article text found in the HTML")
        return
    yield Article(
        id=getattr(document, "url", None) or name,
        title=getattr(document, "title", None) or body.strip().splitlines()[0][:200],
        text=body,
        url=getattr(document, "url", None) or "",
        source=getattr(document, "sitename", None) or "",
        date=getattr(document, "date", None) or "",
        author=getattr(document, "author", None) or "",
        origin=display,
    )


_READERS = {".txt": _read_plain, ".md": _read_plain, ".json": _read_json, ".jsonl": _read_jsonl,
            ".csv": _read_csv, ".html": _read_html, ".htm": _read_html}


def _has_field(record: dict, field: str) -> bool:
    return any(key in record for key in FIELDS[field])


def _field(record: dict, field: str) -> str:
    lowered = {str(k).strip().lower(): v for k, v in record.items()}
    for key in FIELDS[field]:
        value = lowered.get(key)
        if value is None:
            continue
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        return str(value).strip() if field != "text" else str(value)
    return ""


def _from_record(record, name: str, display: str, suffix: str) -> Article | Skipped:
    if not isinstance(record, dict):
        return Skipped(display, f"expected an article object, got {type(record).__name__}")
    text = _field(record, "text")
    if not text.strip():
        known = ", ".join(FIELDS["text"])
        return Skipped(display, f"article has no text (looked for fields: {known})")
    url = _field(record, "url")
    return Article(
        id=url or f"{name}{suffix}",
        title=_field(record, "title"),
        text=text,
        url=url,
        source=_field(record, "source"),
        date=_field(record, "date"),
        author=_field(record, "author"),
        origin=display,
    )
