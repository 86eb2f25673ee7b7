"""Isnad: cited answers from Arabic news.

    from assistant import Assistant
    answer = Assistant().ask("What did the chief of staff order about unregistered vehicles?")
    print(answer.text)
    for citation in answer.citations:
        print(citation.n, citation.title, citation.quote)
"""

from .core import Assistant
from .errors import IsnadError
from .settings import Settings
from .types import Answer, Citation, Hit

__all__ = ["Answer", "Assistant", "Citation", "Hit", "IsnadError", "Settings"]
