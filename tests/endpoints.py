"""A fake OpenAI-compatible endpoint on loopback that answers every request with a fixed reply (status,
body, content type) and keeps what it was sent: for the endpoints that misbehave. The real generation path
is tested against a real llama.cpp server (tests/llm_server.py)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Endpoint(BaseHTTPRequestHandler):
    """Answers every request with `reply` and keeps the request bodies (what the model was sent)."""

    reply: bytes = b""
    bodies: list[str] = []
    status = 200
    content_type = "application/json"

    def do_POST(self):  # noqa: N802 - http.server's naming
        self.bodies.append(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
        self.send_response(self.status)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(self.reply)))
        self.end_headers()
        self.wfile.write(self.reply)

    def log_message(self, *args):
        pass


def serve_endpoint(status: int, reply: bytes, content_type: str = "application/json"):
    handler = type("Handler", (_Endpoint,),
                   {"status": status, "reply": reply, "content_type": content_type, "bodies": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


def completion_sse(text: str) -> bytes:
    chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
             "choices": [{"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}]}
    return f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
