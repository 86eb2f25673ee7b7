"""The application: the `isnad` command (`cli`), the web UI (`ui`) and the local LLM server (`llm`).

It sits above the library (the rest of `assistant`), `ingest` and the eval suite (`isnad_eval`), and is the
only place that imports all three; nothing below imports it (tests/test_layering.py).
"""
