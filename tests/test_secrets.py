"""The token-signing keys: the current key, the previous one during a rotation, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaign.config import SECRET_VARIABLES, load_settings
from campaign.exceptions import ConfigError
from campaign.models import TrackingKind
from campaign.secrets import signing_key, signing_keys
from campaign.tokens import InvalidTokenError, SigningKeys, sign, verify

ROOT = Path(__file__).resolve().parent.parent
OLD = "o" * 40
NEW = "n" * 40


def test_without_a_previous_key_the_ring_is_the_signing_key(tmp_path: Path) -> None:
    assert signing_keys(tmp_path, environ={"CAMPAIGN_SECRET_KEY": NEW}) == (NEW.encode(),)
    made = signing_keys(tmp_path / "data", environ={}, create=True)
    assert made == (signing_key(tmp_path / "data", environ={}),)
    assert signing_keys(tmp_path / "data", environ={}) == made


def test_only_init_makes_a_key_for_the_ring_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="run `campaign init`"):
        signing_keys(tmp_path / "data", environ={"CAMPAIGN_PREVIOUS_SECRET_KEY": OLD})
    assert not (tmp_path / "data").exists()


def test_the_previous_key_follows_the_current_one(tmp_path: Path) -> None:
    environ = {"CAMPAIGN_SECRET_KEY": NEW, "CAMPAIGN_PREVIOUS_SECRET_KEY": OLD}
    assert signing_keys(tmp_path, environ=environ) == (NEW.encode(), OLD.encode())
    # signing_key, which every sender uses, is still the current key alone.
    assert signing_key(tmp_path, environ=environ) == NEW.encode()


def test_rotating_away_from_the_generated_key_file(tmp_path: Path) -> None:
    """The usual first rotation: the key `campaign init` made becomes the previous one."""
    data = tmp_path / "data"
    (generated,) = signing_keys(data, environ={}, create=True)
    environ = {"CAMPAIGN_SECRET_KEY": NEW, "CAMPAIGN_PREVIOUS_SECRET_KEY": generated.decode()}
    assert signing_keys(data, environ=environ) == (NEW.encode(), generated)


def test_a_rotation_keeps_the_links_of_mail_already_sent(tmp_path: Path) -> None:
    before = SigningKeys.from_keys(signing_keys(tmp_path, environ={"CAMPAIGN_SECRET_KEY": OLD}))
    sent = sign(before, TrackingKind.UNSUBSCRIBE, 42)
    after = SigningKeys.from_keys(
        signing_keys(tmp_path, environ={"CAMPAIGN_SECRET_KEY": NEW, "CAMPAIGN_PREVIOUS_SECRET_KEY": OLD})
    )
    assert verify(after, TrackingKind.UNSUBSCRIBE, sent).message_id == 42
    new = sign(after, TrackingKind.UNSUBSCRIBE, 42)
    assert new != sent
    # The old key retired: its links stop working, the new ones do not.
    retired = SigningKeys.from_keys(signing_keys(tmp_path, environ={"CAMPAIGN_SECRET_KEY": NEW}))
    assert verify(retired, TrackingKind.UNSUBSCRIBE, new).message_id == 42
    with pytest.raises(InvalidTokenError):
        verify(retired, TrackingKind.UNSUBSCRIBE, sent)


@pytest.mark.parametrize("previous", ["", "short", "x" * 31])
def test_a_short_previous_key_is_refused(tmp_path: Path, previous: str) -> None:
    environ = {"CAMPAIGN_SECRET_KEY": NEW, "CAMPAIGN_PREVIOUS_SECRET_KEY": previous}
    with pytest.raises(ConfigError, match=r"^environment CAMPAIGN_PREVIOUS_SECRET_KEY must be at least 32 characters$"):
        signing_keys(tmp_path, environ=environ)


def test_a_previous_key_equal_to_the_current_one_is_refused(tmp_path: Path) -> None:
    """The same key twice means the rotation went wrong: one of the two was never changed."""
    message = "CAMPAIGN_PREVIOUS_SECRET_KEY is the same as the current signing key: set it to the key being retired"
    with pytest.raises(ConfigError, match=message):
        signing_keys(tmp_path, environ={"CAMPAIGN_SECRET_KEY": NEW, "CAMPAIGN_PREVIOUS_SECRET_KEY": NEW})
    (generated,) = signing_keys(tmp_path / "data", environ={}, create=True)
    with pytest.raises(ConfigError, match=message):
        signing_keys(tmp_path / "data", environ={"CAMPAIGN_PREVIOUS_SECRET_KEY": generated.decode()})


@pytest.mark.parametrize("content", [b"", b"\n", b"abc\n"])
def test_an_emptied_or_truncated_key_file_is_refused(tmp_path: Path, content: bytes) -> None:
    """A short key is a guessable one: every link would be forgeable."""
    (tmp_path / "secret.key").write_bytes(content)
    for read in (signing_key, signing_keys):
        with pytest.raises(ConfigError, match=r"secret.key is shorter than 32 characters; restore it"):
            read(tmp_path, environ={})
    # init does not overwrite it either: a new key would break every link already sent.
    with pytest.raises(ConfigError, match="shorter than 32"):
        signing_key(tmp_path, environ={}, create=True)
    assert (tmp_path / "secret.key").read_bytes() == content


def test_the_previous_key_variable_is_a_known_secret_not_a_misspelt_setting(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("")
    assert load_settings(config, environ={"CAMPAIGN_PREVIOUS_SECRET_KEY": OLD}) == load_settings(config, environ={})
    with pytest.raises(ConfigError, match="CAMPAIGN_PREVIOUS_SECRET"):
        load_settings(config, environ={"CAMPAIGN_PREVIOUS_SECRET": OLD})


def test_every_secret_variable_is_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    shipped = (ROOT / "config.toml").read_text()
    assert "CAMPAIGN_PREVIOUS_SECRET_KEY" in SECRET_VARIABLES
    assert [name for name in sorted(SECRET_VARIABLES) if f"| `{name}` |" not in readme] == []
    assert [name for name in sorted(SECRET_VARIABLES) if name not in shipped] == []
