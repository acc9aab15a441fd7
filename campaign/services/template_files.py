"""A campaign's own template files: which there are, which may change, and saving or reverting one.

Contract:

* A file is named ``KIND[.locale].(html|txt|subject)`` (:data:`FILE_NAME`), KIND being the template of one of the
  campaign's waves and the locale a Babel locale in its canonical form (``es``, ``es-CO``); any other name is not a
  template file of the campaign (:class:`~campaign.exceptions.NotFoundError`). Names never come from a path typed
  by anyone: the allowlist is the only way in, and every path is checked again to lie inside its folder
  (:func:`campaign.services.files.inside`).
* Where the campaign's own files go: its ``template_dir`` when set (``campaign create --template DIR``) and inside
  the data folder (``paths.data``); else ``<data>/templates/campaign-<id>/``, created at the first save and
  recorded as the campaign's ``template_dir``. A ``template_dir`` outside the data folder is edited where it is,
  with an editor, never from the web (:func:`own_directory` refuses, saying so).
* What may change (:func:`change_refusal`): the templates of a campaign that is neither sent nor cancelled, and
  only those none of whose waves has been queued (pending ones, missed ones, and those cancelled before they were
  queued, made no message). A wave that has been queued or sent keeps the template it went out
  with: messages of one wave never differ because a file changed while it was sending.
* A campaign's own folder wins as a whole over the default one (:meth:`campaign.render.templates.TemplateSet.
  resolve`): its ``invitation.subject`` would beat the default ``invitation.es.subject``. So the first save of a
  file copies the default's more specific variants of it along (:func:`files_after_save`), and Spanish contacts
  keep their Spanish subject; a revert removes those copies again while they are still the default's text.
* Saving and the checks a save runs first are :mod:`campaign.services.template_drafts`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from campaign.config import Settings
from campaign.exceptions import NotFoundError, TemplateError, ValidationError
from campaign.models import CampaignStatus, Wave
from campaign.render.filters import FILTERS
from campaign.render.templates import TemplateSet
from campaign.rules.contact_fields import parse_locale
from campaign.services.campaigns import CampaignDetails, get_campaign
from campaign.services.files import atomic_text_file, inside
from campaign.store import campaigns as campaign_store
from campaign.store.engine import Database

FILE_NAME = re.compile(
    r"(?P<kind>[a-z0-9][a-z0-9_-]{0,63})(?:\.(?P<locale>[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8}){0,3}))?"
    r"\.(?P<ext>html|txt|subject)"
)
"""The only names a campaign's template file may have: ``invitation.html``, ``reminder.es-CO.subject``."""
EXTENSIONS = ("html", "txt", "subject")
"""The files of one template, in the order pages list them."""
PART_OF = {"html": "html", "txt": "text", "subject": "subject"}
"""The message part each extension is (:data:`campaign.render.templates.PARTS`)."""
OWN_FOLDER = "templates"
"""The folder of the data folder holding the campaigns' own templates, one ``campaign-<id>`` each."""
DATA_SETTING = "paths.data"
_FINISHED = (CampaignStatus.SENT, CampaignStatus.CANCELLED)


@dataclass(frozen=True, slots=True)
class FileName:
    """A template file's name, checked against :data:`FILE_NAME` and the campaign's templates."""

    kind: str
    locale: str | None
    ext: str

    @property
    def name(self) -> str:
        """``invitation.es.html``."""
        return ".".join(piece for piece in (self.kind, self.locale, self.ext) if piece)

    @property
    def part(self) -> str:
        """The message part it is: ``html``, ``text`` or ``subject``."""
        return PART_OF[self.ext]


@dataclass(frozen=True, slots=True)
class TemplateFile:
    """One file of a template: whether the campaign has its own copy, and whether the default folder has one."""

    file: FileName
    own: bool
    default: bool


@dataclass(frozen=True, slots=True)
class KindTemplates:
    """The files of one template (a wave kind) and the waves that use it; ``refusal``: why it may not change."""

    kind: str
    waves: list[Wave]
    files: list[TemplateFile]
    refusal: str | None

    @property
    def subject_overridden(self) -> bool:
        """Every wave using it has its own subject line, so its ``.subject`` files are not used."""
        return all(wave.subject for wave in self.waves)


@dataclass(frozen=True, slots=True)
class TemplatesView:
    """What the template editor's list shows: each template's files, and where the campaign's own files are."""

    details: CampaignDetails
    own_dir: Path | None
    own_dir_problem: str | None
    kinds: list[KindTemplates]


@dataclass(frozen=True, slots=True)
class TemplateText:
    """A file's text as the editor opens it: the campaign's copy, else the default's, else (a new locale variant)
    the text of the file that serves that locale now (``from_name``)."""

    file: FileName
    text: str
    own: bool
    from_name: str


def kinds_of(details: CampaignDetails) -> list[str]:
    """The templates the campaign's waves use, in wave order, once each."""
    return list(dict.fromkeys(wave.template for wave in details.waves))


def parse_name(name: str, details: CampaignDetails) -> FileName:
    """``name`` as a :class:`FileName` of one of the campaign's templates; :class:`NotFoundError` otherwise
    (also for a locale not written in its canonical form, so one file has one name)."""
    found = FILE_NAME.fullmatch(name)
    if found is None or found["kind"] not in kinds_of(details):
        raise NotFoundError(f"campaign {details.campaign.name!r} has no template file {name!r}")
    locale = found["locale"]
    if locale is not None:
        try:
            canonical = parse_locale(locale)
        except ValidationError:
            canonical = None
        if canonical != locale:
            raise NotFoundError(f"campaign {details.campaign.name!r} has no template file {name!r}")
    return FileName(found["kind"], locale, found["ext"])


def variant_name(details: CampaignDetails, kind: str, ext: str, locale: str) -> FileName:
    """The file of ``kind`` for a locale typed by staff (``es_CO`` → ``invitation.es-CO.html``); raises
    :class:`ValidationError` with a one-line reason for an unknown locale."""
    if kind not in kinds_of(details) or ext not in EXTENSIONS:
        raise NotFoundError(f"campaign {details.campaign.name!r} has no template {kind!r}")
    if not locale.strip():
        raise ValidationError("Give the locale of the variant (e.g. es, pt-BR).")
    return FileName(kind, parse_locale(locale), ext)


def change_refusal(details: CampaignDetails, kind: str) -> str | None:
    """Why the files of ``kind`` may not change now (see the module doc), or None when they may."""
    campaign = details.campaign
    if campaign.status in _FINISHED:
        return f"{campaign.name} is {campaign.status}: its templates no longer change"
    # A wave that never made a message (missed, or cancelled before its time) holds no text back.
    started = [w.name for w in details.waves if w.template == kind and w.enqueued_at is not None]
    if started:
        return (
            f"wave {', '.join(started)} has been queued or sent with this template: its messages keep the text "
            "they went out with, so the template cannot change"
        )
    return None


def managed_directory(settings: Settings, campaign_id: int) -> Path:
    """Where a campaign without a template folder gets its own: ``<data>/templates/campaign-<id>``."""
    return settings.data_dir / OWN_FOLDER / f"campaign-{campaign_id}"


def own_directory(settings: Settings, details: CampaignDetails) -> Path:
    """The folder a save writes to (see the module doc); :class:`ValidationError` when the campaign's folder
    lies outside the data folder (or is the default folder itself)."""
    data = settings.data_dir.resolve()
    given = details.campaign.template_dir
    if given is None:
        return inside(data, managed_directory(settings, details.campaign.id), DATA_SETTING)
    directory = Path(given).resolve()
    default = settings.templates_dir.resolve()
    if not directory.is_relative_to(data) or directory.is_relative_to(default):
        raise ValidationError(
            f"this campaign's templates are in {directory} (campaign create --template), outside the data folder "
            f"{data} ({DATA_SETTING}): edit them there with an editor; the web changes files in the data folder only"
        )
    return directory


def list_templates(db: Database, settings: Settings, ref: str) -> TemplatesView:
    """Each template of the campaign with its files (its own and the default's), and whether it may change."""
    details = get_campaign(db, ref)
    own = Path(details.campaign.template_dir) if details.campaign.template_dir else None
    try:
        own_directory(settings, details)
        problem = None
    except ValidationError as exc:
        problem = str(exc)
    kinds = []
    for kind in kinds_of(details):
        own_names = _names_in(own, kind)
        default_names = _names_in(settings.templates_dir, kind)
        files = [TemplateFile(f, f in own_names, f in default_names) for f in _ordered(own_names | default_names)]
        waves = [wave for wave in details.waves if wave.template == kind]
        kinds.append(KindTemplates(kind, waves, files, change_refusal(details, kind)))
    return TemplatesView(details, own, problem, kinds)


def read_template(settings: Settings, details: CampaignDetails, file: FileName) -> TemplateText:
    """What the editor opens for ``file`` (see :class:`TemplateText`)."""
    own = Path(details.campaign.template_dir) if details.campaign.template_dir else None
    if own is not None and (own / file.name).is_file():
        return TemplateText(file, _read(own, file.name), True, file.name)
    templates = TemplateSet([*([own] if own else []), settings.templates_dir], FILTERS)
    try:
        serving = templates.resolve(file.kind, file.part, file.locale)
    except TemplateError:
        return TemplateText(file, "", False, "")
    for directory in templates.directories:
        if (directory / serving).is_file():
            return TemplateText(file, _read(directory, serving), False, serving)
    return TemplateText(file, "", False, "")  # pragma: no cover - resolve found it in one of them


def files_after_save(settings: Settings, details: CampaignDetails, file: FileName, text: str) -> dict[str, str]:
    """The campaign's own files of ``file``'s template after ``text`` is saved as ``file`` (name → text): those it
    has, the new text, and the default's more specific variants of the same part it lacks (see the module doc)."""
    own = Path(details.campaign.template_dir) if details.campaign.template_dir else None
    files = {f.name: _read(own, f.name) for f in _names_in(own, file.kind)} if own else {}
    files[file.name] = text
    for variant in _names_in(settings.templates_dir, file.kind):
        if variant.ext == file.ext and _more_specific(variant, file) and variant.name not in files:
            files[variant.name] = _read(settings.templates_dir, variant.name)
    return files


def write_files(db: Database, settings: Settings, details: CampaignDetails, files: dict[str, str]) -> Path:
    """Write ``files`` (name → text, names of :data:`FILE_NAME`) into the campaign's own folder, each whole or not
    at all, and record the folder as the campaign's ``template_dir``; returns the folder."""
    directory = own_directory(settings, details)
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = directory / name
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        with atomic_text_file(inside(directory, path, DATA_SETTING), overwrite=True) as fh:
            fh.write(text)
    if details.campaign.template_dir is None:
        with db.write() as conn:
            campaign_store.set_template_dir(conn, details.campaign.id, str(directory), datetime.now(UTC))
    return directory


def revert_template(db: Database, settings: Settings, ref: str, name: str) -> list[str]:
    """Remove the campaign's own copy of ``name`` (and the default variants a save copied along, while unchanged),
    so the default serves again; returns the names removed. An emptied folder of its own is removed and the
    campaign's ``template_dir`` cleared. Raises :class:`ValidationError` when it may not change or has no copy."""
    details = get_campaign(db, ref)
    file = parse_name(name, details)
    if (refusal := change_refusal(details, file.kind)) is not None:
        raise ValidationError(refusal)
    directory = own_directory(settings, details)
    path = inside(directory, directory / file.name, DATA_SETTING)
    if details.campaign.template_dir is None or not path.is_file():
        raise ValidationError(f"{file.name} is the default's already: the campaign has no copy of its own")
    if file.locale is None and not (settings.templates_dir / file.name).is_file():
        raise ValidationError(f"the default folder has no {file.name}: removing the campaign's would leave none")
    removed = [file.name]
    path.unlink()
    for variant in _names_in(directory, file.kind):
        default = settings.templates_dir / variant.name
        if (
            variant.ext == file.ext
            and _more_specific(variant, file)
            and default.is_file()
            and _read(directory, variant.name) == default.read_text(encoding="utf-8")
        ):
            inside(directory, directory / variant.name, DATA_SETTING).unlink()
            removed.append(variant.name)
    managed = managed_directory(settings, details.campaign.id).resolve()
    if directory == managed and not any(directory.iterdir()):
        directory.rmdir()
        with db.write() as conn:
            campaign_store.set_template_dir(conn, details.campaign.id, None, datetime.now(UTC))
    return removed


def _names_in(directory: Path | None, kind: str) -> set[FileName]:
    """The files of ``kind`` in ``directory`` whose names are allowed (anything else there is left alone)."""
    if directory is None or not directory.is_dir():
        return set()
    found = set()
    for entry in directory.iterdir():
        match = FILE_NAME.fullmatch(entry.name)
        if match and match["kind"] == kind and entry.is_file():
            found.add(FileName(kind, match["locale"], match["ext"]))
    return found


def _ordered(files: set[FileName]) -> list[FileName]:
    return sorted(files, key=lambda f: (EXTENSIONS.index(f.ext), f.locale is not None, f.locale or ""))


def _more_specific(variant: FileName, than: FileName) -> bool:
    """Whether ``variant`` serves a locale more specific than ``than``'s (``es`` and ``es-CO`` than none)."""
    if variant.locale is None:
        return False
    return than.locale is None or variant.locale.startswith(f"{than.locale}-")


def _read(directory: Path, name: str) -> str:
    return inside(directory, directory / name, DATA_SETTING).read_text(encoding="utf-8")
