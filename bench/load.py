"""Bounded load test of the chat UI: concurrent users asking through the UI's HTTP API, on loopback only.

    python bench/load.py                       # 4 users x 10 questions, then 1 user x 10, over the sample
    python bench/load.py --users 8 --questions 20 --data-dir isnad-data
    python bench/load.py --json                # one JSON object instead of the table

The UI (`assistant.app.ui.serve`, as `isnad ui` runs it) is started in this process on a free 127.0.0.1 port
over an index of the bundled sample (built in a temporary directory unless --data-dir names an index).
Each user is its own `gradio_client.Client` asking its share of the questions of eval/qa.jsonl (follow-ups
left out) in extractive mode, one after another, as a person in a chat would. The run is bounded: a fixed
number of requests, then the server is closed; nothing listens on anything but loopback.

Reported per phase (1 user, then N users at once): answers/s over the phase's wall time, p50/p95/max
latency of one /ask, and errors (an exception, or a reply that is an error message). The ratio of the two
throughputs says how much the extra users gained on this machine; the latency ratio what they cost.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # gradio_client looks the hub up unless this is set
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from isnad_eval import DEFAULT_QA, build_sample_index, load_qa, percentile

MAX_REQUESTS = 5000  # a load test, not a flood: users x questions is capped


def loopback_host(value: str) -> str:
    """argparse type: only addresses of this machine's loopback interface are accepted."""
    try:
        if value == "localhost" or ipaddress.ip_address(value).is_loopback:
            return value
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"{value!r} is not a loopback address: this load test only runs on 127.0.0.1")


def questions_from_qa(path: Path) -> list[str]:
    """Standalone questions (no follow-ups), Arabic and English in turn."""
    items = [item for item in load_qa(path) if not item.follows]
    arabic = [i.question for i in items if i.language == "ar"]
    english = [i.question for i in items if i.language == "en"]
    mixed = [q for pair in zip(arabic, english, strict=False) for q in pair]
    return mixed + arabic[len(english):] + english[len(arabic):]


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _is_error(outputs) -> bool:
    chat = outputs[0] if outputs else None
    if not chat:
        return True
    return "isnad-error" in str(chat[-1].get("content", ""))


def run_phase(url: str, users: int, per_user: int, questions: list[str]) -> dict:
    """`users` clients at once, each asking `per_user` questions in turn; returns the phase's numbers."""
    from gradio_client import Client

    clients = [Client(url, verbose=False) for _ in range(users)]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(users)

    def user(number: int) -> None:
        client = clients[number]
        start.wait()
        for i in range(per_user):
            question = questions[(number * per_user + i) % len(questions)]
            began = time.perf_counter()
            try:
                outputs = client.predict(question, [], "extractive", 5, [], "", "", api_name="/ask")
                failed = _is_error(outputs)
                reason = f"error reply to {question[:40]!r}" if failed else ""
            except Exception as exc:  # noqa: BLE001 - every failure is counted, the run goes on
                failed, reason = True, f"{type(exc).__name__}: {exc}"
            seconds = time.perf_counter() - began
            with lock:
                latencies.append(seconds)
                if failed:
                    errors.append(reason)

    threads = [threading.Thread(target=user, args=(n,)) for n in range(users)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    answered = len(latencies) - len(errors)
    return {
        "users": users,
        "requests": len(latencies),
        "answers": answered,
        "errors": len(errors),
        "first_errors": errors[:3],
        "wall_s": round(wall, 2),
        "answers_per_s": round(answered / wall, 2) if wall else None,
        "p50_s": round(percentile(latencies, 50), 3),
        "p95_s": round(percentile(latencies, 95), 3),
        "max_s": round(max(latencies), 3),
    }


def table(phases: list[dict]) -> str:
    rows = [["users", "answers", "errors", "wall s", "answers/s", "p50 s", "p95 s", "max s"]]
    for p in phases:
        rows.append([str(p["users"]), str(p["answers"]), str(p["errors"]), f"{p['wall_s']:.1f}",
                     f"{p['answers_per_s']:.2f}", f"{p['p50_s']:.3f}", f"{p['p95_s']:.3f}", f"{p['max_s']:.3f}"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Bounded load test of the Isnad chat UI on loopback.")
    parser.add_argument("--users", type=int, default=4, help="concurrent users in the second phase (default 4)")
    parser.add_argument("--questions", type=int, default=10, help="questions each user asks (default 10)")
    parser.add_argument("--data-dir", type=Path, help="an existing index (default: the sample, built in a temp dir)")
    parser.add_argument("--host", type=loopback_host, default="127.0.0.1", help="loopback address to serve on")
    parser.add_argument("--concurrency", type=int, help="chats the UI answers at once (default: --users)")
    parser.add_argument("--qa", type=Path, default=DEFAULT_QA, help="where the questions come from")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.users < 1 or args.questions < 1:
        parser.error("--users and --questions must be at least 1")
    if args.users * args.questions > MAX_REQUESTS:
        parser.error(f"--users x --questions is capped at {MAX_REQUESTS} requests")

    from assistant.app.ui import serve
    from assistant.settings import Settings

    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else print
    questions = questions_from_qa(args.qa)
    with tempfile.TemporaryDirectory(prefix="isnad-load-") as temp:
        settings = Settings.load(data_dir=args.data_dir or Path(temp) / "data")
        if args.data_dir is None:
            build_sample_index(settings, log=log)
        port = _free_port(args.host)
        concurrency = args.concurrency or args.users
        demo = serve(settings, host=args.host, port=port, concurrency=concurrency, block=False)
        url = f"http://{args.host}:{port}/"
        try:
            log(f"UI on {url} (concurrency {concurrency}); {len(questions)} distinct questions")
            run_phase(url, 1, 1, questions)  # warm-up: first BM25 build, first model call
            phases = [run_phase(url, 1, args.questions, questions)]
            if args.users > 1:
                phases.append(run_phase(url, args.users, args.questions, questions))
        finally:
            demo.close()
    result = {"url": url, "concurrency": concurrency, "cpus": os.cpu_count(), "phases": phases}
    if len(phases) == 2:
        one, many = phases
        result["throughput_ratio"] = round(many["answers_per_s"] / one["answers_per_s"], 2)
        result["p50_ratio"] = round(many["p50_s"] / one["p50_s"], 2)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print()
        print(table(phases))
        if "throughput_ratio" in result:
            print(f"\n{args.users} users vs 1: throughput x{result['throughput_ratio']}, "
                  f"median latency x{result['p50_ratio']} ({os.cpu_count()} CPUs)")
        for phase in phases:
            for error in phase["first_errors"]:
                print(f"error ({phase['users']} users): {error}")
    return 1 if any(p["errors"] for p in phases) else 0


if __name__ == "__main__":
    sys.exit(main())
