"""One settings object: defaults < config file (TOML) < ISNAD_* environment < explicit arguments (CLI flags).

Nothing is read at import time; `Settings.load()` reads the file and the environment when called.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from .errors import ConfigError

DEFAULT_CONFIG_FILE = "isnad.toml"
# The one default embedding model (the embedder and its offline build import it from here).
DEFAULT_EMBED_MODEL = "intfloat/multilingual-e5-small"


def default_cache_dir() -> Path:
    """Where models are cached: `ISNAD_CACHE_DIR` if set (read at each call), else ~/.cache/isnad/models."""
    env = os.environ.get("ISNAD_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "isnad" / "models"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ISNAD_", extra="forbid", validate_default=True)

    data_dir: Path = Field(Path("isnad-data"), description="Where the embedded Chroma store and caches live.")
    chroma_url: str = Field("", description="Chroma server URL (http://host:port); empty = embedded store.")
    collection: str = Field("isnad", description="Name prefix of the Chroma collections.")
    embed_model: str = Field(
        DEFAULT_EMBED_MODEL,
        description="Embedding model: the default is built offline; another hub name needs the hub.",
    )
    cache_dir: Path | None = Field(None, description="Model cache (default ~/.cache/isnad/models).")

    # NoDecode: ISNAD_EMBED_ENDPOINTS is a comma-separated list, not JSON.
    embed_endpoints: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="OpenAI-compatible embeddings endpoints (base URLs ending /v1) that embed passages at ingest, "
        "in parallel; each must serve embed_model (checked when the ingest starts).",
    )
    sentence_vectors: bool = Field(
        True, description="Store each sentence's vector at ingest (false: the reader computes them for the passages "
        "it reads; a smaller index, a slower answer; always so through embed_endpoints).",
    )
    chunk_max_tokens: int = Field(160, ge=32, le=480, description="Chunk size in the embedder's tokens.")
    chunk_overlap_sentences: int = Field(1, ge=0, le=3, description="Sentences repeated between chunks.")
    max_article_chars: int = Field(2_000_000, ge=1000, description="Longer articles are skipped.")
    ingest_batch_chunks: int = Field(512, ge=1, le=4096, description="Chunks embedded and written together.")
    near_duplicate_threshold: float = Field(0.8, gt=0, le=1, description="Estimated Jaccard for a copy.")

    k: int = Field(5, ge=1, le=50, description="Passages given to the answerer.")
    reader: bool = Field(
        True, description="Rerank and answer with the trained reader (false: the bi-encoder answerer, e.g. for "
        "another embedding model, which the reader was not trained over).",
    )
    mode: Literal["extractive", "llm"] = "extractive"
    llm_base_url: str = Field("", description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1.")
    llm_model: str = Field("", description="Model name sent to the endpoint.")
    llm_api_key: SecretStr = Field(
        SecretStr(""), validation_alias=AliasChoices("ISNAD_LLM_API_KEY", "OPENAI_API_KEY", "llm_api_key")
    )
    llm_timeout: float = Field(60.0, gt=0, description="Seconds before the LLM answer falls back.")

    @field_validator("collection")
    @classmethod
    def _chroma_name(cls, value: str) -> str:
        # Chroma names: 3-512 of [a-zA-Z0-9._-]; we append suffixes, so keep headroom.
        import re

        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{1,100}[A-Za-z0-9]", value):
            raise ValueError("use 3-100 letters, digits, '.', '_' or '-'")
        return value

    @field_validator("embed_endpoints", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [url.strip() for url in value.split(",") if url.strip()]
        return value

    @field_validator("embed_endpoints")
    @classmethod
    def _endpoint_urls(cls, value: list[str]) -> list[str]:
        return [cls._no_credentials(url) for url in value]

    @field_validator("llm_base_url", "chroma_url")
    @classmethod
    def _no_credentials(cls, value: str) -> str:
        # A URL is shown in notices and errors and logged by the HTTP client; a key inside it would leak.
        from urllib.parse import urlsplit

        if "@" in urlsplit(value.strip()).netloc:
            raise ValueError("the URL holds a user name or password; give the key in ISNAD_LLM_API_KEY instead")
        return value.strip()

    def updated(self, **overrides: Any) -> Settings:
        """A copy with `overrides` validated like any setting (ConfigError when one is bad)."""
        try:
            return type(self)(**{**self.model_dump(), **overrides})
        except ValidationError as exc:
            raise ConfigError(_describe(exc)) from None

    @property
    def llm_configured(self) -> bool:
        return bool(self.llm_base_url)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Arguments win over the environment; the config file comes in through load() as defaults.
        return (init_settings, env_settings)

    @classmethod
    def load(cls, config_file: str | Path | None = None, **overrides: Any) -> Settings:
        """Build settings from the config file, the environment and `overrides` (None values are ignored).

        The config file is `config_file`, else $ISNAD_CONFIG, else ./isnad.toml when it exists.
        """
        path = config_file or os.environ.get("ISNAD_CONFIG") or None
        from_file: dict[str, Any] = {}
        if path is None and Path(DEFAULT_CONFIG_FILE).is_file():
            path = DEFAULT_CONFIG_FILE
        if path is not None:
            from_file = _read_config(Path(path))
        explicit = {key: value for key, value in overrides.items() if value is not None}
        try:
            # File values only fill what neither the environment nor the arguments set.
            env_and_args = cls(**explicit)
            merged = {**from_file, **env_and_args.model_dump(exclude_unset=True), **explicit}
            return cls(**merged) if from_file else env_and_args
        except ValidationError as exc:
            raise ConfigError(_describe(exc)) from None


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    section = data.get("isnad", data)
    unknown = sorted(set(section) - set(Settings.model_fields))
    if unknown:
        raise ConfigError(f"config file {path}: unknown setting(s) {', '.join(unknown)}")
    return section


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"]) or "settings"
        value = error.get("input")
        # Keys, and URLs refused for holding one, are never echoed.
        secret = field.endswith(("api_key", "_url", "endpoints"))
        shown = "" if secret else f" (got {value!r})"
        parts.append(f"setting {field}: {error['msg']}{shown}")
    return "; ".join(parts)
