"""The error tree of Isnad. Every message says what was wrong, quotes the value and says what to do.

IsnadError
 +-- ConfigError        a setting or flag has a bad value
 +-- InputError         an input file or record cannot be read (ingest reports these per item)
 +-- EmbedderError      the embedding model cannot be built or loaded
 +-- StoreError         the Chroma store cannot be used
 |    +-- IndexNotFound     no index yet in the data directory / collection
 |    +-- IndexMismatch     the index was built by another embedder or settings
 |    +-- IndexLocked       another ingest is writing to the same embedded store
 +-- LLMError           the chat-completions endpoint failed (the assistant falls back to extractive)
"""


class IsnadError(Exception):
    """Base class of every error Isnad raises on purpose."""


class ConfigError(IsnadError):
    pass


class InputError(IsnadError):
    pass


class EmbedderError(IsnadError):
    pass


class StoreError(IsnadError):
    pass


class IndexNotFound(StoreError):
    pass


class IndexMismatch(StoreError):
    pass


class IndexLocked(StoreError):
    pass


class LLMError(IsnadError):
    pass
