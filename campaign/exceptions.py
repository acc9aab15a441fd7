"""The exception hierarchy of campaign.

Every error the library raises on purpose is a :class:`CampaignError`, so an interface (the CLI, the
web app, the scheduler) can catch one class and turn it into an exit code or a response. Subclasses
name the failure; where a failure belongs to a built-in category, the class inherits that too
(``LookupError``, ``ValueError``), so callers can classify failures without knowing our names.
"""

from __future__ import annotations


class CampaignError(Exception):
    """Base class of every error campaign raises on purpose.

    ``field`` names the input the error is about when there is one (``event``, ``list``, ``name``...): a form
    shows the message beside that field, where a command line only prints it. None when it is about no one input.
    """

    def __init__(self, *args: object, field: str | None = None) -> None:
        super().__init__(*args)
        self.field = field


class ConfigError(CampaignError, ValueError):
    """The configuration file or an environment override is missing, malformed or of the wrong type."""


class NotFoundError(CampaignError, LookupError):
    """A contact, list, event or campaign that was asked for does not exist."""


class AlreadyExistsError(CampaignError, ValueError):
    """Something with the same unique name already exists."""


class ValidationError(CampaignError, ValueError):
    """Input data (an event file, a field value) is invalid; the message says which field and why."""


class EditConflictError(CampaignError):
    """A change was made from a record as it was, and the record has changed since (someone else saved it): nothing
    was written. Not a ValidationError: nothing is wrong with the input, only with when it was made."""


class ImportFileError(CampaignError, ValueError):
    """A contacts file cannot be imported at all (unreadable, wrong encoding, no email column).

    Problems with single rows are not exceptions: they are reported per row and the rest imports.
    """


class StorageError(CampaignError):
    """The database is unreachable, or its schema is not at the version this code expects."""


class OutputFileError(CampaignError, OSError):
    """A file cannot be written where asked: its directory is missing or unwritable, it exists and may not be
    overwritten, or it would land outside the directory configured for it."""


class WriteLockBusyError(StorageError, BlockingIOError):
    """Another connection holds SQLite's write lock, and the caller asked not to wait for it."""


class TemplateError(CampaignError, ValueError):
    """A template cannot be loaded or rendered; the message names the template and line."""


class DeliveryError(CampaignError):
    """Sending one message failed. ``code`` and ``reply`` carry the SMTP server's answer, when there was one."""

    def __init__(self, message: str, code: int | None = None, reply: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reply = reply


class TransientDeliveryError(DeliveryError):
    """Worth trying again later: a 4xx reply, a dropped connection, a timeout."""


class PermanentDeliveryError(DeliveryError):
    """Trying again will not help: a 5xx reply."""


class RecipientRefusedError(PermanentDeliveryError):
    """The server refused the recipient (5xx at RCPT): the address bounces and is suppressed."""


class MessageRejectedError(PermanentDeliveryError):
    """The server refused the message itself (5xx at MAIL or DATA)."""


class SmtpConnectionError(TransientDeliveryError, ConnectionError):
    """The SMTP server could not be reached, or dropped the connection."""


class SmtpTimeoutError(TransientDeliveryError, TimeoutError):
    """The SMTP server did not answer in time."""


class SmtpAuthenticationError(TransientDeliveryError, PermissionError):
    """The SMTP server refused our credentials: a configuration problem, not the recipient's."""
