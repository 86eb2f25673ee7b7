"""Prompt templates from `prompts/`: `$name` variables, rendered strictly (a missing or unknown variable
is an error), read as UTF-8, found in a checkout (./prompts) and in an installed package (assistant.prompts).
"""

from __future__ import annotations

import functools
import string
from importlib import resources
from pathlib import Path

from .errors import ConfigError

CANNOT_ANSWER = "CANNOT_ANSWER"  # the sentinel the prompts ask for and the code checks


@functools.cache
def load_template(name: str) -> string.Template:
    checkout = Path(__file__).resolve().parent.parent / "prompts" / f"{name}.txt"
    try:
        text = checkout.read_text(encoding="utf-8") if checkout.is_file() else (
            resources.files("assistant.prompts").joinpath(f"{name}.txt").read_text(encoding="utf-8")
        )
    except (FileNotFoundError, ModuleNotFoundError):
        raise ConfigError(f"prompt template {name!r} not found in prompts/") from None
    return string.Template(text)


def variables(template: string.Template) -> set[str]:
    return {m.group("named") or m.group("braced") for m in template.pattern.finditer(template.template)} - {None}


def render(name: str, **values: str) -> str:
    template = load_template(name)
    expected = variables(template)
    given = set(values)
    if expected != given:
        missing, unknown = sorted(expected - given), sorted(given - expected)
        raise ConfigError(f"prompt {name!r}: missing variables {missing}, unknown variables {unknown}")
    return template.substitute(values)
