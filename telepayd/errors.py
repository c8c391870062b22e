"""The daemon's exceptions, rooted at ``TelepaydError``. (The security core keeps its own, stdlib-only.)"""

from __future__ import annotations


class TelepaydError(Exception):
    """Base of every error telepayd raises on purpose."""


class ConfigError(TelepaydError):
    """The configuration (or a secret file it names) is invalid; ``problems`` has one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class StoreUnavailable(TelepaydError):
    """PostgreSQL cannot be reached (or is overloaded); the caller should answer 503 and retry later."""


class SchemaTooNew(TelepaydError):
    """The database schema was migrated by a newer telepayd than this one."""

    def __init__(self, database_version: int, known_version: int) -> None:
        super().__init__(
            f"the database schema is at version {database_version}, newer than this telepayd knows "
            f"({known_version}); upgrade telepayd (migrations only go forward)"
        )
        self.database_version = database_version
        self.known_version = known_version


# Exit codes (sysexits.h), distinct so systemd can tell "fix the config" from a crash
# (the unit's RestartPreventExitStatus= lists the first two).
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_SCHEMA_TOO_NEW = 76  # EX_PROTOCOL
EXIT_CONFIG = 78  # EX_CONFIG
