"""Email templates: sandboxed Jinja2, per-locale variants, CSS inlined once per template.

Contract of :class:`TemplateSet`:

* Templates are looked up in the campaign's own directory first, then the default one. For a message part
  (``invitation.html``, ``invitation.txt``, ``invitation.subject``) and a locale ``es-CO`` the first of
  ``invitation.es-CO.html``, ``invitation.es.html``, ``invitation.html`` that exists is used.
* Templates are written by staff, so they run in Jinja's sandbox; HTML is autoescaped and an undefined
  variable is an error (StrictUndefined), never a silent blank. An ``{% include %}`` or ``{% extends %}`` names
  a file inside the template directories by a relative path without ``..`` (Jinja's loader refuses the rest,
  and :func:`not_found_message` says so).
* :meth:`TemplateSet.mail` gives the templates used to send: each HTML template is flattened onto its layout
  and its CSS inlined with premailer **once** (premailer costs milliseconds, far too much per message).
  lxml would URL-escape ``href="{{ url }}"`` into ``{{%20url%20}}``, so every Jinja tag is swapped for an
  inert placeholder before inlining and swapped back after; a placeholder that does not survive is an error.
* :meth:`TemplateSet.source` gives the same templates uninlined, with real inheritance, so that checks report
  errors with the template's own name and line numbers.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import (
    BaseLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    TemplateSyntaxError,
    meta,
    select_autoescape,
)
from premailer import Premailer

from campaign.exceptions import TemplateError
from campaign.render.sandbox import MessageSandbox
from campaign.render.stencil import StencilledTemplate, personal_references

PARTS = ("subject", "html", "text")
# Template variables that differ between recipients who share a zone and a locale.
PERSONAL_VARIABLES = frozenset({"contact", "links", "link", "pixel_url"})
_EXTENSIONS = {"subject": "subject", "html": "html", "text": "txt"}

_EXTENDS = re.compile(r"""\A\s*{%-?\s*extends\s+["']([^"']+)["']\s*-?%}""")
_BLOCK = re.compile(r"{%-?\s*block\s+(\w+)\s*-?%}(.*?){%-?\s*endblock(?:\s+\w+)?\s*-?%}", re.S)
_JINJA_TAG = re.compile(r"{{.*?}}|{%.*?%}|{#.*?#}", re.S)
_SUPER = re.compile(r"{{-?\s*super\(\)\s*-?}}")
_NESTED = re.compile(r"{%-?\s*block\b")
_TEMPLATE_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")


@dataclass(frozen=True, slots=True)
class MessageTemplates:
    """The three compiled parts of one message kind in one locale; the bodies also through stencils."""

    subject: Template
    html: Template
    text: Template
    names: Mapping[str, str]
    stencilled_html: StencilledTemplate
    stencilled_text: StencilledTemplate
    subject_personal: bool = True


def candidate_names(name: str, part: str, locale: str | None) -> list[str]:
    """File names to try, most specific first: ``invitation.es-CO.html``, ``invitation.es.html``, then
    ``invitation.html``."""
    ext = _EXTENSIONS[part]
    names = []
    if locale:
        pieces = locale.split("-")
        names += [f"{name}.{'-'.join(pieces[:n])}.{ext}" for n in range(len(pieces), 0, -1)]
    names.append(f"{name}.{ext}")
    return names


def variant_locale(name: str, part: str, file_name: str) -> str | None:
    """The locale a variant is written for: ``es`` for ``invitation.es.html``, None for ``invitation.html``."""
    tag = file_name[len(name) + 1 : -len(_EXTENSIONS[part]) - 1]
    return tag or None


class TemplateSet:
    """The templates of one campaign: its own directory (if any) over the default one."""

    def __init__(self, directories: Sequence[Path], filters: Mapping[str, Callable[..., Any]] | None = None) -> None:
        self.directories = [d for d in directories if d.is_dir()]
        if not self.directories:
            raise TemplateError(f"no template directory found among {', '.join(map(str, directories))}")
        self._source_env = _environment(FileSystemLoader(self.directories), filters)
        self._mail_env = _environment(_InliningLoader(self.directories), filters)

    def resolve(self, name: str, part: str, locale: str | None) -> str:
        """The file name that serves ``part`` of ``name`` in ``locale``."""
        # A name comes from staff (a wave's template, typed in a form): a path, a line break or a name longer than
        # a file's would look outside the directories or fail in the file system, so it is refused first.
        if not _TEMPLATE_NAME.fullmatch(name):
            raise TemplateError(
                "a template's name is letters, digits, '-' and '_' (at most 100), the start of its file names"
            )
        # A campaign's own directory wins as a whole: its default beats a locale variant of the shared set.
        for directory in self.directories:
            for candidate in candidate_names(name, part, locale):
                if (directory / candidate).is_file():
                    return candidate
        raise TemplateError(f"no template {name}.{_EXTENSIONS[part]} in {', '.join(map(str, self.directories))}")

    def source(self, name: str, locale: str | None) -> MessageTemplates:
        """The templates as written (real inheritance and line numbers), for checks and error reports."""
        return self._load(self._source_env, name, locale)

    def mail(self, name: str, locale: str | None) -> MessageTemplates:
        """The templates used to send: HTML flattened and CSS-inlined (once; Jinja caches the result)."""
        return self._load(self._mail_env, name, locale)

    def string(self, source: str) -> Template:
        """Compile a one-off template string (a wave's own subject line), sandboxed and not escaped."""
        try:
            return self._source_env.from_string(source)
        except TemplateSyntaxError as exc:
            raise TemplateError(f"subject {source!r}: {exc.message}") from exc

    def is_personal(self, source: str) -> bool:
        """Whether a template source can differ between two recipients of the same zone and locale: it names a
        per-recipient variable, or pulls in another template (which might)."""
        parsed = self._source_env.parse(source)
        return bool(meta.find_undeclared_variables(parsed) & PERSONAL_VARIABLES) or any(
            True for _ in meta.find_referenced_templates(parsed)
        )

    def _load(self, env: Environment, name: str, locale: str | None) -> MessageTemplates:
        names = {part: self.resolve(name, part, locale) for part in PARTS}
        compiled = {part: load_template(env, file_name) for part, file_name in names.items()}

        def source(file_name: str) -> str:
            assert env.loader is not None
            return env.loader.get_source(env, file_name)[0]

        def stencilled(part: str) -> StencilledTemplate:
            try:
                references = personal_references(env, source(names[part]), source)
            except TemplateNotFound as exc:  # a layout it extends (read here to find its personal references)
                raise TemplateError(f"{names[part]}: {not_found_message(str(exc.name), self.directories)}") from exc
            return StencilledTemplate(compiled[part], references, autoescape=part == "html")

        return MessageTemplates(
            compiled["subject"],
            compiled["html"],
            compiled["text"],
            names,
            stencilled("html"),
            stencilled("text"),
            self.is_personal(source(names["subject"])),
        )


def load_template(env: Environment, name: str) -> Template:
    """Compile a template, turning Jinja's errors into a :class:`TemplateError` with name and line."""
    try:
        return env.get_template(name)
    except TemplateSyntaxError as exc:
        raise TemplateError(syntax_error_message(exc, name)) from exc
    except TemplateNotFound as exc:
        directories = [Path(d) for d in getattr(env.loader, "searchpath", ())]
        raise TemplateError(f"{name}: {not_found_message(str(exc.name), directories)}") from exc


def syntax_error_message(exc: TemplateSyntaxError, name: str) -> str:
    """ "invitation.html, line 3: Expected an expression" (the template's own name, as runtime errors give it)."""
    where = exc.name or (Path(exc.filename).name if exc.filename else name)
    return f"{where}, line {exc.lineno}: {exc.message}"


def not_found_message(name: str, directories: Sequence[Path]) -> str:
    """Why an ``{% include %}`` or ``{% extends %}`` of ``name`` found nothing: the loader refuses paths that
    could leave the template directories (Jinja raises the same "not found" for both), or there is no such file."""
    if name.startswith("/") or ".." in name.split("/"):
        return (
            f"{name!r} refused: templates may only include or extend files inside the template directories, "
            "by a relative path without '..'"
        )
    return f"template {name!r} not found in {', '.join(map(str, directories))}"


def _environment(loader: BaseLoader, filters: Mapping[str, Callable[..., Any]] | None) -> Environment:
    env = MessageSandbox(
        loader=loader,
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
        undefined=StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters.update(filters or {})
    return env


class _InliningLoader(FileSystemLoader):
    """Serves ``.html`` templates flattened onto their layout, with their CSS inlined (once per template and
    source: premailer takes milliseconds, and the stencils read a template's source again)."""

    def __init__(self, searchpath: Sequence[Path]) -> None:
        super().__init__(searchpath)
        self._inlined: dict[tuple[str, str], str] = {}

    def get_source(self, environment: Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        source, filename, uptodate = super().get_source(environment, template)
        if template.endswith(".html"):

            def load(name: str) -> str:
                return super(_InliningLoader, self).get_source(environment, name)[0]

            flat = flatten(source, load, template)
            inlined = self._inlined.get((template, flat))
            if inlined is None:
                inlined = self._inlined[template, flat] = inline_css(flat, template)
            source = inlined
        return source, filename, uptodate


def flatten(source: str, load: Callable[[str], str], name: str) -> str:
    """Resolve ``{% extends %}`` textually: the layout with the child's blocks put in (``super()`` supported).

    Premailer needs the whole document at once; Jinja would only assemble it at render time. Blocks must not
    nest in a layout that is extended (refused with a clear error rather than rendered wrongly).
    """
    match = _EXTENDS.match(source)
    if match is None:
        return source
    layout_name = match.group(1)
    layout = flatten(load(layout_name), load, layout_name)
    child_blocks = {m.group(1): m.group(2) for m in _BLOCK.finditer(source, match.end())}
    for block_name, body in child_blocks.items():
        if _NESTED.search(body):
            raise TemplateError(f"{name}: block {block_name!r} contains another block; nested blocks are not supported")

    def fill(m: re.Match[str]) -> str:
        default = m.group(2)
        if _NESTED.search(default):
            raise TemplateError(
                f"{layout_name}: block {m.group(1)!r} contains another block; nested blocks are not supported"
            )
        body = child_blocks.get(m.group(1))
        filled = default if body is None else _SUPER.sub(lambda _: default, body)
        # The block markers stay, so that a template extending this one (three levels) can still fill them.
        return f"{{% block {m.group(1)} %}}{filled}{{% endblock %}}"

    return _BLOCK.sub(fill, layout)


_ELEMENT = re.compile(r"<[A-Za-z]|[^\s<]")  # an element, or text (lxml wraps text in a paragraph)
_COMMENT = re.compile(r"<!--.*?-->", re.S)


def inline_css(source: str, name: str) -> str:
    """Inline the ``<style>`` rules of an HTML template into style attributes, keeping Jinja tags intact.

    Rules that cannot be inlined (``@media`` queries for small screens) stay in a ``<style>`` block.
    """
    nonce = secrets.token_hex(4)
    originals: dict[str, str] = {}

    def protect(m: re.Match[str]) -> str:
        key = f"jinja{nonce}x{len(originals)}x"
        originals[key] = m.group(0)
        inside_tag = source.rfind("<", 0, m.start()) > source.rfind(">", 0, m.start())
        # A statement between elements becomes a comment: libxml2 keeps comments where they stand, even
        # between table rows, whereas loose text there could be moved.
        if m.group(0).startswith("{{") or inside_tag:
            return key
        return f"<!--{key}-->"

    protected = _JINJA_TAG.sub(protect, source)
    if not _ELEMENT.search(_COMMENT.sub("", protected)):
        # Nothing for lxml to parse (blanks, a comment): premailer fails with an AttributeError deep inside.
        raise TemplateError(f"{name}: no HTML element: write the message's HTML (or revert to the default)")
    inlined: str = Premailer(
        protected,
        allow_network=False,
        disable_validation=True,
        keep_style_tags=False,
        remove_classes=False,
        strip_important=False,
        cssutils_logging_level=logging.CRITICAL,
    ).transform()
    for key, original in originals.items():
        if key not in inlined:
            raise TemplateError(f"{name}: CSS inlining lost the template tag {original!r}; move it out of <style>")
        inlined = inlined.replace(f"<!--{key}-->", original).replace(key, original)
    return inlined
