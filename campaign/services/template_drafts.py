"""A template being edited: its preview as a contact, and its save, checked first.

Contract:

* A draft is the text typed for one file (:class:`~campaign.services.template_files.FileName`), never written to
  the campaign's folder until saved. It is rendered from a temporary folder holding the campaign's own files of
  that template as they would be after the save (:func:`~campaign.services.template_files.files_after_save`),
  over the campaign's folder and the default one: exactly the templates the save would make.
* :func:`text_problems`: a subject is one line (a line break in a ``Subject:`` header lets text become headers)
  and every file has a bounded size; line endings are normalised to ``\\n`` (browsers post ``\\r\\n``).
* :func:`preview_draft`: the draft rendered for one contact of the audience (the first when none is chosen), as
  the wave would send it; a template error is returned, never raised.
* :func:`save_template`: refused while the template may not change (:func:`~campaign.services.template_files.
  change_refusal`); otherwise the draft must compile (for the locale it is written for, as written and as sent)
  and pass the launch checks (:func:`campaign.services.rendering.check_wave`: an undefined variable names
  template, line and contacts) for each wave that uses it, on a sample of the audience (plus one contact in the
  draft's locale). Any error: :class:`DraftError` and nothing is written. Warnings (a long subject) do not block.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from campaign.config import Settings
from campaign.exceptions import NotFoundError, TemplateError, ValidationError
from campaign.models import Contact
from campaign.render.filters import FILTERS
from campaign.render.templates import TemplateSet
from campaign.services.campaigns import CampaignDetails, get_campaign
from campaign.services.contacts import contact_details, find_contacts
from campaign.services.installation import installation_id
from campaign.services.rendering import check_wave, wave_renderer
from campaign.services.template_files import (
    FileName,
    change_refusal,
    files_after_save,
    own_directory,
    parse_name,
    write_files,
)
from campaign.store.engine import Database

MAX_SUBJECT_CHARS = 1000
"""The longest subject template accepted (RFC 5322 allows 998 characters on a header line)."""
MAX_BODY_CHARS = 500_000
"""The longest HTML or text template accepted (Gmail clips a message at 102 KB already)."""
CHECK_SAMPLE = 200
"""How many contacts of the audience (the first, in address order) a save renders the draft for."""
_SCRATCH = re.compile(re.escape(str(Path(tempfile.gettempdir()))) + r"/campaign-draft-[^/\s]+/")
"""The scratch folder a draft is checked in, as an error names it: left out, so the error names the file as staff
know it (``invitation.html, line 3: ...``), not a temporary path of the server's."""
_NOBODY = Contact(id=0, email="sample@example.org", name="Sample Contact", first_name="Sample", last_name="Contact")


class DraftError(ValidationError):
    """A draft that may not be saved: each error names template, line and contacts where they are known."""

    def __init__(self, errors: list[str], warnings: list[str] | None = None) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors
        self.warnings = warnings or []


@dataclass(frozen=True, slots=True)
class DraftPreview:
    """A draft rendered for one contact, or why it could not be (``error``)."""

    email: str
    subject: str = ""
    html: str = ""
    text: str = ""
    template_names: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class SaveResult:
    """A saved draft: the folder written to, the files written, and the checks' warnings."""

    file: FileName
    directory: Path
    files: list[str]
    warnings: list[str]
    contacts: int


def normalise(text: str) -> str:
    """Line endings as ``\\n`` (a browser posts a textarea with ``\\r\\n``)."""
    return text.replace("\r\n", "\n")


def text_problems(file: FileName, text: str) -> list[str]:
    """Why ``text`` cannot be ``file`` at all, before any rendering (see the module doc)."""
    if file.ext == "subject":
        if "\r" in text or "\n" in text.rstrip("\n"):
            return ["A subject is one line: remove the line breaks (in a mail header they would start new headers)."]
        if len(text) > MAX_SUBJECT_CHARS:
            return [f"A subject template is at most {MAX_SUBJECT_CHARS} characters; this one has {len(text)}."]
    elif len(text) > MAX_BODY_CHARS:
        return [f"A template is at most {MAX_BODY_CHARS} characters; this one has {len(text)}."]
    if not text.strip() and file.ext != "html":
        return ["The file is empty: write the text, or revert to the default."]
    return []


@contextmanager
def draft_templates(settings: Settings, details: CampaignDetails, file: FileName, text: str) -> Iterator[TemplateSet]:
    """The campaign's templates with ``text`` saved as ``file`` (see the module doc), for the block's duration."""
    own = [Path(details.campaign.template_dir)] if details.campaign.template_dir else []
    with tempfile.TemporaryDirectory(prefix="campaign-draft-") as scratch:
        for name, content in files_after_save(settings, details, file, text).items():
            (Path(scratch) / name).write_text(content, encoding="utf-8")
        yield TemplateSet([Path(scratch), *own, settings.templates_dir], FILTERS)


def preview_draft(
    db: Database, settings: Settings, key: bytes, ref: str, name: str, text: str, email: str
) -> DraftPreview:
    """``text`` as ``name`` rendered for the contact ``email`` of the audience (empty: the first); raises
    :class:`NotFoundError` for an unknown campaign, file or contact, returns a template's error."""
    details = get_campaign(db, ref)
    file = parse_name(name, details)
    contact = _contact(db, details, email)
    text = normalise(text)
    if problems := text_problems(file, text):
        return DraftPreview(contact.email, error=problems[0])
    wave = next(wave for wave in details.waves if wave.template == file.kind)
    try:
        with draft_templates(settings, details, file, text) as templates:
            # As written first, as a save checks it: a syntax error is told with its line, not as the CSS
            # inliner's loss of a tag it could not read (a review saw both for one typo).
            templates.source(file.kind, file.locale)
            renderer = wave_renderer(settings, key, details, wave, installation_id(db), templates=templates)
            rendered = renderer.render(contact)
    except TemplateError as exc:
        return DraftPreview(contact.email, error=_SCRATCH.sub("", str(exc)))
    return DraftPreview(contact.email, rendered.subject, rendered.html, rendered.text, rendered.template_names)


def save_template(db: Database, settings: Settings, key: bytes, ref: str, name: str, text: str) -> SaveResult:
    """Check ``text`` as ``name``, then write it into the campaign's own folder (see the module doc)."""
    details = get_campaign(db, ref)
    file = parse_name(name, details)
    if (refusal := change_refusal(details, file.kind)) is not None:
        raise ValidationError(refusal)
    own_directory(settings, details)  # refused before any check when the campaign's folder is not editable here
    text = normalise(text)
    if file.ext == "subject":
        text = text.strip("\n") + "\n"
    if problems := text_problems(file, text):
        raise DraftError(problems)
    errors, warnings, contacts = _check(db, settings, key, details, file, text)
    if errors:
        raise DraftError(errors, warnings)
    # The checks take a while: a launch meanwhile queues the wave, whose template then must not change.
    details = get_campaign(db, ref)
    if (refusal := change_refusal(details, file.kind)) is not None:
        raise ValidationError(refusal)
    files = files_after_save(settings, details, file, text)
    directory = write_files(db, settings, details, files)
    return SaveResult(file, directory, sorted(files), warnings, contacts)


def _check(
    db: Database, settings: Settings, key: bytes, details: CampaignDetails, file: FileName, text: str
) -> tuple[list[str], list[str], int]:
    """(errors, warnings, contacts checked) of the draft: compiled in its locale, then each wave's checks on a
    sample of the audience and one contact in the draft's locale."""
    sample = list(find_contacts(db, list_name=details.campaign.list_name, limit=CHECK_SAMPLE)) or [_NOBODY]
    if file.locale is not None:
        sample.append(dataclasses.replace(sample[0], locale=file.locale))
    errors: list[str] = []
    warnings: list[str] = []
    contacts = 0
    installation = installation_id(db)
    with draft_templates(settings, details, file, text) as templates:
        try:
            templates.source(file.kind, file.locale)
            templates.mail(file.kind, file.locale)
        except TemplateError as exc:
            return [_SCRATCH.sub("", str(exc))], [], 0
        for wave in details.waves:
            if wave.template != file.kind:
                continue
            renderer = wave_renderer(settings, key, details, wave, installation, templates=templates)
            report = check_wave(renderer, wave, sample, details.campaign.name)
            errors += [_SCRATCH.sub("", error) for error in report.errors]
            warnings += [_SCRATCH.sub("", warning) for warning in report.warnings]
            contacts = max(contacts, report.contacts)
    return errors, warnings, contacts


def _contact(db: Database, details: CampaignDetails, email: str) -> Contact:
    """The contact ``email`` of the campaign's audience; the first of it when empty (a sample when there is none)."""
    if not email.strip():
        return next(iter(find_contacts(db, list_name=details.campaign.list_name, limit=1)), _NOBODY)
    found = contact_details(db, email)
    if details.campaign.list_name not in found.lists:
        raise NotFoundError(
            f"{email} is not on list {details.campaign.list_name!r} of campaign {details.campaign.name!r}"
        )
    return found.contact
