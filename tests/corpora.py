"""What the tests ask and ingest: the canonical questions about the bundled seed article, a small corpus
with agency copy printed by three papers, and the check that an index holds no orphan or twin."""

from __future__ import annotations

import json
from pathlib import Path

from assistant.settings import Settings
from assistant.store import Store

CANONICAL_EN = "What did the chief of staff order about unregistered vehicles?"
CANONICAL_AR = "ماذا أمر رئيس الأركان بشأن السيارات غير المسجلة؟"
SEED = "benghazi-security-meeting.txt"

STORIES = {
    "security.txt": "اجتماع أمني في بنغازي\nاجتمع رئيس الأركان ووزير الداخلية بمسؤولي الأجهزة الأمنية في بنغازي. "
    "وأمر رئيس الأركان بحملات مرورية تستهدف السيارات غير المسجلة. وطلب الوزير عرض الصعوبات التي تواجه الأجهزة.",
    "economy.txt": "أسعار النفط\nارتفعت أسعار النفط الخام اليوم بنسبة ٣ في المئة بعد تراجع المخزونات الأمريكية. "
    "وقال محللون إن الطلب الآسيوي ما زال قويا رغم تباطؤ النمو.",
    "sport.txt": "الهلال يفوز\nفاز نادي الهلال على النصر بهدفين مقابل هدف في مباراة الديربي مساء أمس في الرياض. "
    "وسجل الهدفين اللاعب سالم الدوسري في الشوط الثاني.",
}
AGENCY = (
    "أعلنت وزارة الصحة تسجيل ١٢ إصابة جديدة بفيروس كورونا في الرياض وجدة خلال الأسبوع الماضي، "
    "وأكدت الوزارة أن جميع الحالات تتلقى العلاج في المستشفيات وأن الوضع الصحي مستقر. "
    "ودعت الوزارة المواطنين إلى الالتزام بالإرشادات الوقائية وغسل اليدين باستمرار وتجنب الأماكن المزدحمة."
)


def write_corpus(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in STORIES.items():
        (folder / name).write_text(text, encoding="utf-8")
    copies = [
        {"url": "http://okaz/1", "source": "okaz", "date": "2015-08-01", "title": "كورونا", "content": AGENCY},
        # The same agency text in another paper: an exact copy and a near copy with a different ending.
        {"url": "http://sabq/9", "source": "sabq", "date": "2015-08-01", "title": "كورونا", "content": AGENCY},
        {"url": "http://alyaum/5", "source": "alyaum", "date": "2015-08-02", "title": "الصحة: ١٢ إصابة",
         "content": AGENCY.replace("باستمرار", "باستمرار.") + " (واس)"},
    ]
    (folder / "agency.json").write_text(json.dumps(copies, ensure_ascii=False), encoding="utf-8")
    return folder


def consistent(settings: Settings) -> tuple[list[str], int]:
    """(sorted article ids, chunk count), after checking there are no orphans and no duplicates."""
    store = Store.open(settings)
    records = list(store.iter_records())
    ids = [c.id for r in records for c in r.copies]
    assert len(ids) == len(set(ids)), "an article is present twice"
    chunks = store.count()[1]
    assert chunks == sum(r.n_chunks for r in records), "orphan or missing chunks"
    return sorted(ids), chunks
