"""The eval suite (installed as `isnad_eval`): the fixed Q&A set, its metrics, the thresholds gate, the
reports, and XQuAD retrieval. It sits above the library and `ingest`; `isnad eval` is its command.

    isnad eval --sample                          # build the sample index, run the extractive eval, check thresholds
    isnad eval-xquad --path DIR --limit 200      # cross-lingual retrieval on XQuAD's 240 Arabic paragraphs

What is measured (see eval/README.md for the exact rules and the current numbers):
- retrieval: the 1-based position of the first of the top-10 hits whose article ids meet the gold ones
  (hit@1/3/5/10, MRR), answerable questions only; follow-ups are retrieved with their standalone question;
- citations: a citation is correct when its article is a gold article and its quote overlaps a gold
  evidence span (compared after `fold()`); precision over all citations of answerable questions, recall =
  answerable questions with at least one correct citation;
- follow-ups: each turn of a conversation is asked with the whole conversation before it; a follow-up that
  has a `standalone` form is also asked alone in that form, with no history, and both are scored against
  the same gold (`follow_up_*` in conversation, `standalone_*` alone), so what the conversation costs is
  visible; `follow_up_repeated` = follow-ups whose answer is the answer given to the turn before;
- answers: token F1 and containment on `words()` tokens (folded letters, unified digits) against the gold
  answer, and against the Arabic evidence, because the extractive answer to an English question quotes
  Arabic; `answer_correct` = either containment is at least one half;
- abstention: unanswerable questions declined, answerable questions wrongly declined;
- latency: p50/p95 of `ask` and `retrieve`, wall-clock seconds.
"""

from .dataset import DEFAULT_QA, HELDOUT_QA, QAItem, load_qa
from .gate import DEFAULT_THRESHOLDS, check_thresholds, load_thresholds
from .metrics import citation_correct, compute_metrics, percentile
from .report import previous_run, summary_table, write_reports
from .results import EvalResult, ItemResult
from .run import build_sample_index, check_index_holds, run_eval
from .xquad import build_xquad_index, load_xquad, run_xquad, xquad_table

__all__ = [
    "DEFAULT_QA",
    "DEFAULT_THRESHOLDS",
    "HELDOUT_QA",
    "EvalResult",
    "ItemResult",
    "QAItem",
    "build_sample_index",
    "build_xquad_index",
    "check_index_holds",
    "check_thresholds",
    "citation_correct",
    "compute_metrics",
    "load_qa",
    "load_thresholds",
    "load_xquad",
    "percentile",
    "previous_run",
    "run_eval",
    "run_xquad",
    "summary_table",
    "write_reports",
    "xquad_table",
]
