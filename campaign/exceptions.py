"""The exception hierarchy of campaign.

Every error the library raises on purpose is a :class:`CampaignError`, so an interface (the CLI, the
web app, the scheduler) can catch one class and turn it into an exit code or a response. Subclasses
name the failure; where a failure belongs to a built-in category, the class inherits that too
(``LookupError``, ``ValueError``), so callers can classify failures without knowing our names.
"""

from __future__ import annotations


class CampaignError(Exception):
    """Base class of every error campaign raises on purpose."""


class ConfigError(CampaignError, ValueError):
    """The configuration file or an environment override is missing, malformed or of the wrong type."""


class NotFoundError(CampaignError, LookupError):
    """A contact, list, event or campaign that was asked for does not exist."""


class AlreadyExistsError(CampaignError, ValueError):
    """Something with the same unique name already exists."""


class ValidationError(CampaignError, ValueError):
    """Input data (an event file, a field value) is invalid; the message says which field and why."""


class ImportFileError(CampaignError, ValueError):
    """A contacts file cannot be imported at all (unreadable, wrong encoding, no email column).

    Problems with single rows are not exceptions: they are reported per row and the rest imports.
    """


class StorageError(CampaignError):
    """The database is unreachable, or its schema is not at the version this code expects."""


class TemplateError(CampaignError, ValueError):
    """A template cannot be loaded or rendered; the message names the template and line."""
