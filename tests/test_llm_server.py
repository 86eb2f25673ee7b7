"""The local OpenAI-compatible server: a real llama.cpp process on 127.0.0.1, driven with the `openai` client.

The model is Qwen2.5-Coder-0.5B-Instruct (assembled once into the model cache from PyPI, see
tests/llm_server.py). Its answers are weak, so these tests check the protocol (and that Arabic text
survives it), not the quality of the answers.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import openai
import psutil
import pytest

from assistant.app.cli import main
from assistant.app.llm import LLMServerError, RunningServer, assemble_qwen_gguf, start_server
from assistant.app.llm.gguf import concatenate_wheel_chunks, verify_sha256

ARABIC_LETTER = re.compile(r"[\u0621-\u064A]")


@pytest.fixture(scope="module")
def server(llm_server) -> RunningServer:
    return llm_server  # the session's server (conftest): the model loads once per test run


@pytest.fixture(scope="module")
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


def _chat(client: openai.OpenAI, model: str, question: str, **kwargs):
    return client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": question}],
        max_tokens=24,
        temperature=0,
        # A reused prompt cache may change the numerics; greedy runs must be comparable.
        extra_body={"cache_prompt": False},
        **kwargs,
    )


@pytest.mark.slow
def test_health_is_ok(server: RunningServer) -> None:
    with urllib.request.urlopen(server.health_url, timeout=5) as response:
        assert response.status == 200
        assert json.loads(response.read()) == {"status": "ok"}


@pytest.mark.slow
def test_models_lists_the_served_model(server: RunningServer, client: openai.OpenAI) -> None:
    assert server.base_url.startswith("http://127.0.0.1:") and server.base_url.endswith("/v1")
    ids = [model.id for model in client.models.list().data]
    assert ids == [server.model] == ["qwen2.5-coder-0.5b-instruct"]


@pytest.mark.slow
def test_chat_completion_returns_text(server: RunningServer, client: openai.OpenAI) -> None:
    reply = _chat(client, server.model, "Say hello in one short sentence.")
    assert reply.choices[0].message.content.strip()
    assert reply.usage.prompt_tokens > 0 and 0 < reply.usage.completion_tokens <= 24


@pytest.mark.slow
def test_streaming_yields_chunks_that_add_up_to_the_full_answer(server: RunningServer, client: openai.OpenAI) -> None:
    # Arabic: a multi-byte character split across two tokens must still arrive whole.
    question = "ما هي عاصمة مصر؟ أجب بجملة واحدة باللغة العربية."
    whole = _chat(client, server.model, question).choices[0].message.content
    pieces = [
        chunk.choices[0].delta.content
        for chunk in _chat(client, server.model, question, stream=True)
        if chunk.choices and chunk.choices[0].delta.content
    ]
    assert len(pieces) >= 3
    assert "".join(pieces) == whole
    assert "\ufffd" not in whole and ARABIC_LETTER.search(whole)


@pytest.mark.slow
def test_stopped_server_refuses_connections(server: RunningServer) -> None:
    # A server of its own: stopping the module's server would break the other tests.
    own = start_server(server.model_path)
    with own:
        own_client = openai.OpenAI(base_url=own.base_url, api_key="unused", max_retries=0, timeout=30)
        assert [m.id for m in own_client.models.list().data] == [own.model]
    assert own.process.poll() is not None
    with pytest.raises(openai.APIConnectionError):
        own_client.models.list()


@pytest.mark.slow
def test_server_exits_when_the_process_that_started_it_dies(server: RunningServer) -> None:
    # A killed test run must not leave a server holding a port and a CPU core.
    starter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from assistant.app.llm import start_server\n"
            f"server = start_server({str(server.model_path)!r})\n"
            "print(server.process.pid, server.log_path, flush=True)\n"
            "time.sleep(120)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        line = starter.stdout.readline()
        assert line, "the process meant to start a server printed nothing"
        pid, log_path = line.split(maxsplit=1)
        child = psutil.Process(int(pid))
        assert child.is_running()
    finally:
        starter.kill()
        starter.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.2)
    else:
        child.kill()
        pytest.fail(f"server process {child.pid} outlived its parent by 10 s")
    Path(log_path.strip()).unlink(missing_ok=True)  # the killed parent could not remove it


@pytest.mark.slow
def test_start_server_reports_a_model_llama_cpp_cannot_load(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + bytes(range(256)) * 4)
    expected = r"broken\.gguf exited with code 1 while starting: .*failed to load model"
    with pytest.raises(LLMServerError, match=expected):
        start_server(broken, timeout=60)


def test_start_server_refuses_a_file_that_is_not_gguf(tmp_path: Path) -> None:
    not_gguf = tmp_path / "model.gguf"
    not_gguf.write_bytes(b"PK\x03\x04 a zip, not a model")
    with pytest.raises(LLMServerError, match="not a GGUF file"):
        start_server(not_gguf)


def test_serve_command_exits_1_with_one_line_for_a_missing_model(tmp_path: Path, capsys) -> None:
    assert main(["llm", "serve", "--model", str(tmp_path / "missing.gguf"), "--port", "0"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("isnad: error: cannot read model file") and "missing.gguf" in err


def test_verify_sha256_detects_a_tampered_copy(tmp_path: Path) -> None:
    original = tmp_path / "model.gguf"
    original.write_bytes(b"GGUF" + bytes(range(256)) * 100)
    expected = hashlib.sha256(original.read_bytes()).hexdigest()
    verify_sha256(original, expected)

    tampered = tmp_path / "tampered.gguf"
    shutil.copyfile(original, tampered)
    with open(tampered, "r+b") as f:
        f.seek(1000)
        f.write(b"\x00")
    with pytest.raises(LLMServerError, match=f"expected {expected}"):
        verify_sha256(tampered, expected)


def _chunk_wheel(path: Path, package: str, index: int, data: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{package}/__init__.py", "")
        archive.writestr(f"{package}/data/part{index:02d}.bin", data)
        archive.writestr(f"{package}-0.1.dist-info/METADATA", "Name: x\n")
    return path


def test_concatenate_wheel_chunks_joins_parts_in_order_and_checks_the_hash(tmp_path: Path) -> None:
    chunks = [b"GGUF" + b"a" * 3000, b"b" * 5000, b"c" * 10]
    wheels = [_chunk_wheel(tmp_path / f"p{i}.whl", f"pkg{i}", i, c) for i, c in enumerate(chunks, 1)]
    whole = b"".join(chunks)
    dest = tmp_path / "model.gguf"

    with pytest.raises(LLMServerError, match="sha256"):
        concatenate_wheel_chunks(list(reversed(wheels)), dest, hashlib.sha256(whole).hexdigest())
    assert not dest.exists() and not (tmp_path / "model.gguf.partial").exists()

    concatenate_wheel_chunks(iter(wheels), dest, hashlib.sha256(whole).hexdigest())
    assert dest.read_bytes() == whole
    assert not (tmp_path / "model.gguf.partial").exists()


def test_concatenate_wheel_chunks_rejects_a_wheel_without_a_chunk(tmp_path: Path) -> None:
    empty = tmp_path / "empty.whl"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("pkg/__init__.py", "")
    with pytest.raises(LLMServerError, match="exactly one"):
        concatenate_wheel_chunks([empty], tmp_path / "model.gguf", "0" * 64)


def test_assemble_rejects_an_unknown_size(tmp_path: Path) -> None:
    with pytest.raises(LLMServerError, match="'7b'.*0.5b, 1.5b"):
        assemble_qwen_gguf(tmp_path, "7b")
