"""Settings: defaults, and one clear line naming each bad setting."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from newsletter.app import create_app
from newsletter.config import ConfigError, Settings, WeeklySlot, load_settings, parse_weekly_slot


def settings(tmp_path: Path, **env: str) -> Settings:
    return load_settings(env, tmp_path)


def test_defaults_use_sqlite_in_the_instance_folder_and_a_kept_secret_key(tmp_path: Path) -> None:
    first = settings(tmp_path)
    assert first.database_url == f"sqlite:///{tmp_path / 'newsletter.sqlite3'}"
    assert first.redis_url is None
    assert first.base_url == "http://127.0.0.1:5000"
    assert first.send_rate == 0
    assert first.confirm_max_age == 7 * 24 * 3600
    assert first.email_check_dns is False
    assert first.import_max_bytes == 20 * 1024 * 1024
    assert first.weekly_slot is None
    assert settings(tmp_path).secret_key == first.secret_key


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SMTP_SECURITY": "ssl-please"}, "SMTP_SECURITY"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://h:notaport/db"}, "DATABASE_URL"),
        ({"REDIS_URL": "http://localhost"}, "REDIS_URL"),
        ({"SEND_RATE": "fast"}, "SEND_RATE"),
        ({"SMTP_PORT": "twenty-five"}, "SMTP_PORT"),
        ({"CONFIRM_MAX_AGE": "-1"}, "CONFIRM_MAX_AGE"),
        ({"EMAIL_CHECK_DNS": "maybe"}, "EMAIL_CHECK_DNS"),
        ({"BASE_URL": "ftp://x"}, "BASE_URL"),
        ({"MAIL_FROM": "nobody"}, "MAIL_FROM"),
        ({"WEEKLY_SLOT": "every funday at 9:00 in UTC"}, "WEEKLY_SLOT"),
        ({"SUBSCRIBE_RATE_LIMIT": "lots"}, "SUBSCRIBE_RATE_LIMIT"),
        ({"SUBSCRIBE_RATE_LIMIT": "0/60"}, "SUBSCRIBE_RATE_LIMIT"),
        ({"WEBHOOK_RETRY_BASE": "soon"}, "WEBHOOK_RETRY_BASE"),
        ({"IMPORT_MAX_BYTES": "20MB"}, "IMPORT_MAX_BYTES"),
        ({"IMPORT_MAX_BYTES": "0"}, "IMPORT_MAX_BYTES"),
        ({"NEWSLETTER_ENV": "production"}, "SECRET_KEY"),
        ({"NEWSLETTER_ENV": "production", "SECRET_KEY": "short"}, "SECRET_KEY"),
    ],
)
def test_a_bad_setting_is_named(tmp_path: Path, env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings(tmp_path, **env)
    assert str(info.value).startswith(named + ":")


def test_the_import_limit_is_read_in_bytes(tmp_path: Path) -> None:
    assert settings(tmp_path, IMPORT_MAX_BYTES="1048576").import_max_bytes == 1024 * 1024


def test_production_accepts_a_long_secret_key(tmp_path: Path) -> None:
    conf = settings(tmp_path, NEWSLETTER_ENV="production", SECRET_KEY="k" * 32, SMTP_HOST="mx")
    assert conf.secret_key == "k" * 32
    assert conf.session_cookie_secure is True


def test_weekly_slot_is_parsed_with_its_time_zone() -> None:
    slot = parse_weekly_slot("every Tuesday at 07:30 in Europe/Berlin")
    assert isinstance(slot, WeeklySlot)
    assert (slot.weekday, slot.hour, slot.minute, str(slot.zone)) == (1, 7, 30, "Europe/Berlin")


def test_the_settings_are_frozen(tmp_path: Path) -> None:
    conf = settings(tmp_path, WEEKLY_SLOT="every monday at 09:00 in UTC")
    assert conf.weekly_slot == WeeklySlot(0, 9, 0, conf.weekly_slot.zone)
    assert conf.weekly_slot_raw == "every monday at 09:00 in UTC"
    with pytest.raises(dataclasses.FrozenInstanceError):
        conf.batch_size = 1  # type: ignore[misc]


def test_create_app_refuses_a_bad_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        create_app({"INSTANCE_PATH": str(tmp_path), "SMTP_SECURITY": "bogus"})


def test_the_command_prints_one_line_naming_the_setting(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "newsletter.main", "routes"],
        env={"PATH": "/usr/bin:/bin", "INSTANCE_PATH": str(tmp_path), "SMTP_SECURITY": "bogus"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "SMTP_SECURITY" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
