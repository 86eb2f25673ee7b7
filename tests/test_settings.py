import pytest

from assistant.errors import ConfigError
from assistant.settings import Settings


def test_precedence_defaults_file_env_arguments(tmp_path, monkeypatch):
    config = tmp_path / "isnad.toml"
    config.write_text('k = 7\nchunk_max_tokens = 100\ncollection = "fromfile"\n', encoding="utf-8")
    monkeypatch.setenv("ISNAD_K", "9")
    monkeypatch.setenv("ISNAD_COLLECTION", "fromenv")
    settings = Settings.load(config, collection="fromarg", mode=None)
    assert settings.chunk_max_tokens == 100  # file over default
    assert settings.k == 9  # environment over file
    assert settings.collection == "fromarg"  # argument over environment
    assert settings.mode == "extractive"  # None arguments are ignored


def test_bad_values_name_the_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("ISNAD_K", "many")
    with pytest.raises(ConfigError, match="setting k"):
        Settings.load()
    monkeypatch.delenv("ISNAD_K")
    bad = tmp_path / "bad.toml"
    bad.write_text("kk = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown setting.*kk"):
        Settings.load(bad)


def test_api_key_from_openai_env_is_secret(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-123")
    settings = Settings.load()
    assert settings.llm_api_key.get_secret_value() == "sk-secret-123"
    assert "sk-secret-123" not in repr(settings) and "sk-secret-123" not in str(settings.model_dump())


def test_a_url_with_a_password_is_refused_without_showing_it(monkeypatch):
    monkeypatch.setenv("ISNAD_LLM_BASE_URL", "https://me:sk-in-url-42@gateway.example/v1")
    with pytest.raises(ConfigError, match="setting llm_base_url: .*ISNAD_LLM_API_KEY") as refused:
        Settings.load()
    assert "sk-in-url-42" not in str(refused.value)
    with pytest.raises(ConfigError, match="setting chroma_url") as refused:
        Settings.load(chroma_url="http://admin:hunter2@chroma.local:8000")
    assert "hunter2" not in str(refused.value)


def test_overrides_are_validated_like_settings():
    base = Settings()
    assert base.updated(k=3).k == 3 and base.k == 5
    with pytest.raises(ConfigError, match="setting k"):
        base.updated(k=0)
    with pytest.raises(ConfigError, match="setting mode"):
        base.updated(mode="telepathy")
