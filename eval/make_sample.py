"""Rebuild the bundled sample corpus in ``ingest/sample/`` from the shared data.

The sample is a fixed, hand-picked list of SaudiNewsNet articles (chosen by URL in
each daily zip) plus the seed article, copied byte-for-byte. Running this script
again must reproduce the committed files exactly, so the corpus can be audited.

Usage (from the repository root):
    python eval/make_sample.py              # (re)write ingest/sample/articles/
    python eval/make_sample.py --check      # exit 1 if the committed files differ
    python eval/make_sample.py --provenance # print the file/zip table used in NOTICE.md
    python eval/make_sample.py --duplicates # list near-duplicate pairs (Jaccard of 30-char shingles)

Standard library only, so it runs without the project's venv.
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
SAMPLE_DIR = REPO_ROOT / "ingest" / "sample" / "articles"  # NOTICE.md sits one level up
SAMPLE_JSON = "saudinewsnet-sample.json"
SEED_NAME = "benghazi-security-meeting.txt"

# The 2015-08-09 day file is kept out of the sample on purpose (held out for other
# uses); selecting from it is an error.
EXCLUDED_DAYS = frozenset({"2015-08-09"})

# Chosen articles per day file, in output order. Near-duplicate agency copy (the same
# story printed by several papers) is marked so the app's duplicate detection has
# something to find:
#   D1 Jeddah flat fire (2015-07-22): aleqt, alriyadh, alweeam
#   D2 Bahrain explosives smuggling (2015-07-25): 3alyoum, al-madina, alyaum
#   D3 Beijing fake-iPhone factory (2015-07-27): aleqt, alyaum
#   D4 South Korea sacks health minister over MERS (2015-08-04): aleqt, alweeam, alyaum
SELECTION: dict[str, list[str]] = {
    "2015-07-22": [
        "http://www.aleqt.com/2015/07/22/article_975405.html",  # D1
        "http://www.alriyadh.com/1067020",  # D1
        "http://www.alweeam.com.sa/348858/مدني-جدة-يسيطر-على-حريق-شقة-سكنية-ويت/",  # D1
        "http://aawsat.com/home/article/412421/السجن-خمس-سنوات-لرئيس-وزراء-مصر-الأسبق-بقضية-فساد",
        "http://www.alwatan.com.sa/Local/News_Detail.aspx?ArticleID=229792&CategoryID=5",
        "http://www.okaz.com.sa/new/Issues/20150722/Con20150722785044.htm",
        "http://www.alwatan.com.sa/Economy/News_Detail.aspx?ArticleID=229767&CategoryID=2",
        "http://aawsat.com/home/article/412261/الأمن-المغربي-يفكك-خلية-جديدة-تضم-8-عناصر-لهم-ارتباط-بـ«داعش»",
    ],
    "2015-07-25": [
        "http://www.3alyoum.com/news/a/الداخلية-البحرينية-إحباط-عملية-تهريب-43/",  # D2
        "http://www.al-madina.com/node/621167/الأمن-البحريني-يحبط-عملية-تهريب-مواد-متفجرة-شديدة-الخطورة.html?live",  # D2  # noqa: E501
        "http://www.alyaum.com/article/4080128",  # D2
        "http://www.al-jazirah.com/2015/20150725/lp1.htm",
        "http://www.al-jazirah.com/2015/20150725/ln49.htm",
        "http://www.alwatan.com.sa/Economy/News_Detail.aspx?ArticleID=229981&CategoryID=2",
    ],
    "2015-07-27": [
        "http://www.aleqt.com/2015/07/27/article_976569.html",  # D3
        "http://www.alyaum.com/article/4080483",  # D3
        "http://www.al-jazirah.com/2015/20150727/ec7.htm",
    ],
    "2015-07-31": [
        "http://www.al-jazirah.com/2015/20150731/ln37.htm",
        "http://www.alwatan.com.sa/Nation/News_Detail.aspx?ArticleID=230511&CategoryID=3",
        "http://www.alwatan.com.sa/Local/News_Detail.aspx?ArticleID=230583&CategoryID=5",
        "http://www.al-jazirah.com/2015/20150731/du9.htm",
        "http://www.al-jazirah.com/2015/20150731/sp29.htm",
    ],
    "2015-08-02": [
        "http://aawsat.com/home/article/420691/«العمل-المالي»-لمكافحة-جرائم-غسل-الأموال-تمنح-السعودية-مقعد-مراقب",
        "http://www.okaz.com.sa/new/Issues/20150802/Con20150802786887.htm",
        "http://www.alwatan.com.sa/Nation/News_Detail.aspx?ArticleID=230778&CategoryID=3",
        "http://www.alwatan.com.sa/Local/News_Detail.aspx?ArticleID=230705&CategoryID=5",
    ],
    "2015-08-04": [
        "http://www.aleqt.com/2015/08/04/article_978963.html",  # D4
        "http://www.alweeam.com.sa/350796/كوريا_الجنوبية-تقيل-وزير-الصحة-بسبب-كو/",  # D4
        "http://www.alyaum.com/article/4081843",  # D4
        "http://aawsat.com/home/article/422106/أميركا-تسلم-مصر-5-أبراج-لدبابات-«أبرامز-إم1-إيه1»",
        "http://aawsat.com/home/article/422116/الجمارك-الفرنسية-تضبط-لوحة-لبيكاسو-قبل-تهريبها-لسويسرا",
        "http://www.alwatan.com.sa/Economy/News_Detail.aspx?ArticleID=230924&CategoryID=2",
        "http://www.alwatan.com.sa/Local/News_Detail.aspx?ArticleID=230958&CategoryID=5",
    ],
    "2015-08-10": [
        "http://www.okaz.com.sa/new/Issues/20150810/Con20150810788727.htm",
        "http://www.okaz.com.sa/new/Issues/20150810/Con20150810788751.htm",
        "http://www.spa.gov.sa/details.php?id=1386834",
        "http://www.spa.gov.sa/details.php?id=1386662",
        "http://www.spa.gov.sa/details.php?id=1386843",
        "http://www.okaz.com.sa/new/Issues/20150810/Con20150810788700.htm",
    ],
    "2015-08-11": [
        "http://aawsat.com/home/article/427096/موجة-الحر-في-مصر-تودي-بحياة-21-مواطنًا-والأرصاد-تحذر-من-الأيام-المقبلة",
        "http://aawsat.com/home/article/427206/الاتحاد-يجدد-عقد-عسيري-لـ5-سنوات",
        "http://aawsat.com/home/article/427356/«غوغل»-تعيد-هيكلتها-عبر-انضمامها-إلى-«الفابيت»",
        "http://aawsat.com/home/article/427371/الشرطة-السويدية-تلقي-القبض-على-منفذي-جريمة-«إيكيا»",
        "http://www.arriyadiyah.com/node/907156/اخبار/عيد-بيع-70-من-تذاكر-سوبر-النصر-والهلال",
        "http://sabq.org/WB2d3f",
    ],
}

# Same key order as the SaudiNewsNet daily files.
FIELDS = ("source", "url", "date_extracted", "title", "author", "content")


def load_day(data_dir: Path, day: str) -> list[dict]:
    """Return the articles of one SaudiNewsNet daily zip (``<day>.zip`` holding ``<day>.json``)."""
    path = data_dir / "saudinewsnet" / f"{day}.zip"
    if not path.is_file():
        raise SystemExit(f"missing day file {path}: point --data-dir at the shared data folder")
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read(f"{day}.json").decode("utf-8"))


def build_sample(data_dir: Path) -> tuple[list[dict], list[tuple[str, dict]]]:
    """Pick the selected articles; return them and (zip name, article) pairs for provenance."""
    chosen: list[dict] = []
    provenance: list[tuple[str, dict]] = []
    for day, urls in SELECTION.items():
        if day in EXCLUDED_DAYS:
            raise SystemExit(f"day {day} is excluded from the sample; remove it from SELECTION")
        by_url: dict[str, list[dict]] = {}
        for article in load_day(data_dir, day):
            by_url.setdefault(article["url"], []).append(article)
        for url in urls:
            hits = by_url.get(url, [])
            if len(hits) != 1:
                raise SystemExit(f"url {url!r} occurs {len(hits)} times in {day}.zip (expected exactly 1)")
            article = {key: hits[0][key] for key in FIELDS}
            chosen.append(article)
            provenance.append((f"{day}.zip", article))
    return chosen, provenance


def render_json(articles: list[dict]) -> str:
    return json.dumps(articles, ensure_ascii=False, indent=2) + "\n"


def near_duplicate_pairs(articles: list[dict], threshold: float = 0.5) -> list[tuple[float, int, int]]:
    """Pairs of articles whose 30-character shingle sets have Jaccard >= threshold.

    The same measure was used to find agency copy across papers of one day when the
    sample was chosen; here it audits that the sample holds exactly the marked groups.
    """
    shingles = []
    for article in articles:
        text = " ".join(article["content"].split())
        shingles.append({text[k : k + 30] for k in range(max(1, len(text) - 29))})
    pairs = []
    for i in range(len(articles)):
        for j in range(i + 1, len(articles)):
            union = len(shingles[i] | shingles[j])
            score = len(shingles[i] & shingles[j]) / union if union else 0.0
            if score >= threshold:
                pairs.append((score, i, j))
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help=f"shared data folder (default: {DEFAULT_DATA_DIR})",
    )
    parser.add_argument(
        "--out-dir", type=Path, default=SAMPLE_DIR, help=f"where the sample lives (default: {SAMPLE_DIR})"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="compare with the files on disk, write nothing")
    mode.add_argument("--provenance", action="store_true", help="print the markdown provenance table")
    mode.add_argument("--duplicates", action="store_true", help="print near-duplicate pairs in the sample")
    args = parser.parse_args(argv)

    articles, provenance = build_sample(args.data_dir)
    if len({a["url"] for a in articles}) != len(articles):
        raise SystemExit("the selection names the same url twice")
    sample_text = render_json(articles)
    seed_bytes = (args.data_dir / "seed" / SEED_NAME).read_bytes()

    if args.duplicates:
        for score, i, j in near_duplicate_pairs(articles):
            a, b = articles[i], articles[j]
            print(f"{score:.2f}  #{i + 1} {a['source']} ~ #{j + 1} {b['source']}  {a['title']}")
        return 0

    if args.provenance:
        print("| # | zip | source | title | url (= article id) |")
        print("|---|---|---|---|---|")
        for n, (zip_name, a) in enumerate(provenance, 1):
            title = " ".join(a["title"].split()).replace("|", "\\|")
            print(f"| {n} | {zip_name} | {a['source']} | {title} | {a['url']} |")
        return 0

    json_path = args.out_dir / SAMPLE_JSON
    seed_path = args.out_dir / SEED_NAME
    if args.check:
        problems = []
        if not json_path.is_file() or json_path.read_text(encoding="utf-8") != sample_text:
            problems.append(f"{json_path} differs from the selection")
        if not seed_path.is_file() or seed_path.read_bytes() != seed_bytes:
            problems.append(f"{seed_path} differs from {args.data_dir / 'seed' / SEED_NAME}")
        for p in problems:
            print(p, file=sys.stderr)
        if problems:
            print("run `python eval/make_sample.py` to rebuild", file=sys.stderr)
            return 1
        print(f"ok: {len(articles)} articles + seed match the selection")
        return 0

    args.out_dir.mkdir(parents=True, exist_ok=True)
    json_path.write_text(sample_text, encoding="utf-8")
    seed_path.write_bytes(seed_bytes)
    print(f"wrote {json_path} ({len(articles)} articles) and {seed_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
