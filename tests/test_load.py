"""Loading every supported format, and every kind of bad input, without the model."""

import json
import zipfile

from ingest.clean import clean_article, clean_text, normalise_date
from ingest.load import Skipped, read_inputs

ARABIC = "اجتمع وزير الداخلية بمسؤولي الأجهزة الأمنية في مدينة بنغازي لبحث الأوضاع."


def _read(*paths):
    items = list(read_inputs(paths))
    return [i for i in items if not isinstance(i, Skipped)], [i for i in items if isinstance(i, Skipped)]


def test_txt_title_is_first_line_and_text_keeps_it(tmp_path):
    (tmp_path / "a.txt").write_text("العنوان هنا\n" + ARABIC, encoding="utf-8")
    (articles, skipped) = _read(tmp_path)
    assert not skipped and articles[0].id == "a.txt" and articles[0].title == "العنوان هنا"
    assert articles[0].text.startswith("العنوان هنا\n")


def test_windows_1256_is_decoded(tmp_path):
    (tmp_path / "legacy.txt").write_bytes(ARABIC.encode("cp1256"))
    articles, skipped = _read(tmp_path / "legacy.txt")
    assert not skipped and articles[0].text == ARABIC


def test_bad_inputs_are_reported_with_reasons(tmp_path):
    (tmp_path / "empty.txt").write_text("  \n", encoding="utf-8")
    (tmp_path / "binary.txt").write_bytes(b"\x00\x01\x02\xff" * 100)
    (tmp_path / "notes.docx").write_bytes(b"PK\x03\x04")
    (tmp_path / "broken.json").write_text('[{"title": "x", "content": "نص"},\n {"title": ', encoding="utf-8")
    (tmp_path / "deep.json").write_text("[" * 100000 + "]" * 100000, encoding="utf-8")
    lines = [json.dumps({"url": "u1", "content": ARABIC}), "{not json", json.dumps({"url": "u3", "title": "t"})]
    (tmp_path / "feed.jsonl").write_text("\n".join(lines), encoding="utf-8")
    (tmp_path / "header-only.csv").write_text("title,content\n", encoding="utf-8")
    (tmp_path / "empty-array.json").write_text("[]", encoding="utf-8")
    articles, skipped = _read(tmp_path)
    reasons = {s.path.replace(str(tmp_path) + "/", ""): s.reason for s in skipped}
    assert [a.id for a in articles] == ["u1"]  # the good JSONL line still loads
    assert reasons["empty.txt"] == "empty file"
    assert "binary" in reasons["binary.txt"]
    assert "unsupported file type '.docx'" in reasons["notes.docx"]
    assert "malformed JSON at line 2" in reasons["broken.json:2"]
    assert "nested too deeply" in reasons["deep.json"]
    assert "line 2" in reasons["feed.jsonl:2"]
    assert "no text" in reasons["feed.jsonl:3"]
    assert reasons["header-only.csv"] == "no articles found in this .csv file"
    assert reasons["empty-array.json"] == "no articles found in this .json file"


def test_saudinewsnet_fields_and_csv_and_wrapper_json(tmp_path):
    record = {"source": "okaz", "url": "http://x/1", "date_extracted": "2015-08-01 08:00:57",
              "title": "عنوان", "author": "", "content": ARABIC}
    (tmp_path / "day.json").write_text(json.dumps([record], ensure_ascii=False), encoding="utf-8")
    (tmp_path / "wrapped.json").write_text(json.dumps({"articles": [dict(record, url="http://x/2")]}),
                                           encoding="utf-8")
    (tmp_path / "table.csv").write_text("headline,body,link,publisher,published\nعنوان,\"" + ARABIC
                                        + "\",http://x/3,sabq,01/08/2015\n", encoding="utf-8")
    articles, skipped = _read(tmp_path)
    assert not skipped
    by_id = {a.id: clean_article(a) for a in articles}
    assert by_id["http://x/1"].source == "okaz" and by_id["http://x/1"].date == "2015-08-01"
    assert "http://x/2" in by_id
    assert by_id["http://x/3"].source == "sabq" and by_id["http://x/3"].date == "2015-08-01"


def test_html_main_text_without_scripts(tmp_path):
    body = "".join(f"<p>{ARABIC} الفقرة {i}.</p>" for i in range(6))
    page = (f"<html><head><title>خبر</title><script>alert('x')</script><style>p{{}}</style></head><body>"
            f"<nav><a href='/'>الرئيسية</a> <a href='/s'>رياضة</a></nav><article><h1>خبر</h1>{body}"
            "</article><footer>جميع الحقوق محفوظة</footer></body></html>")
    (tmp_path / "page.html").write_text(page, encoding="utf-8")
    articles, skipped = _read(tmp_path)
    assert not skipped
    assert ARABIC in articles[0].text and "alert" not in articles[0].text and "p{}" not in articles[0].text


def test_zip_members_read_in_memory_with_safe_ids_and_bomb_refused(tmp_path):
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("../../etc/evil.txt", "عنوان\n" + ARABIC)
        z.writestr("bomb.txt", "ا" * 30_000_000)  # compresses ~1000:1
        z.writestr("nested.zip", b"PK")
    articles, skipped = _read(archive)
    assert [a.id for a in articles] == ["upload.zip/etc/evil.txt"]
    assert not (tmp_path.parent / "etc").exists()
    reasons = " ".join(s.reason for s in skipped)
    assert "refused: expands" in reasons and "nested zip" in reasons


def test_cleaning_removes_invisible_controls_and_keeps_letters():
    dirty = "\ufeffنص\u202e مخفي\u202c\r\nسطر  ثان\x07\n\n\n\nنهاية &amp; "
    assert clean_text(dirty) == "نص مخفي\nسطر  ثان\n\nنهاية &"
    assert normalise_date("2015-08-01T08:00:57Z") == "2015-08-01"
    assert normalise_date("٠١/٠٨/٢٠١٥") == "2015-08-01"
    assert normalise_date("yesterday") == ""


def test_read_bytes_of_utf16(tmp_path):
    (tmp_path / "u16.txt").write_bytes("\ufeff".encode("utf-16-le")[:0] + ARABIC.encode("utf-16"))
    articles, _ = _read(tmp_path)
    assert articles[0].text == ARABIC
