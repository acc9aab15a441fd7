"""A template's runtime error in its author's terms: the file, the line, the variable as written.

Contract: :func:`describe_render_error` turns a Jinja error raised while rendering templates from
``directories`` into "invitation.html, line 12: undefined variable contact.job_title" (or the rule that
refused an include, or the compile error of an included file). Used by checks and sending alike, so the same
mistake reads the same wherever it is found.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Sequence
from pathlib import Path

from jinja2 import TemplateNotFound, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError

from campaign.render.templates import not_found_message, syntax_error_message


def describe_render_error(exc: Exception, directories: Sequence[Path], subject: str | None = None) -> str:
    """ "invitation.html, line 12: undefined variable contact.job_title" from a Jinja runtime error.

    Jinja puts template frames (file name and template line) into the traceback; the innermost one is where
    the template failed. Jinja's own words ("'dict object' has no attribute 'job_title'") are replaced by the
    variable as the template wrote it, found on that line; a refused include by the rule that refused it.
    ``subject``: the wave's own subject (``--subject``), the one template given as text, not a file: an error
    in it is "the subject: ..." with the variable as written there.
    """
    roots = [str(d) for d in directories]
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename and any(frame.filename.startswith(root) for root in roots):
            return f"{Path(frame.filename).name}, line {frame.lineno}: {_explain(exc, frame.line or '', directories)}"
        if frame.filename == _STRING_TEMPLATE and subject is not None:
            lines = subject.splitlines() or [""]
            line = lines[min(max(frame.lineno or 1, 1), len(lines)) - 1]
            return f"the subject: {_explain(exc, line, directories)}"
    return _explain(exc, "", directories)


_STRING_TEMPLATE = "<template>"  # the file name Jinja gives a template made from a string


_UNDEFINED = re.compile(r"'(?P<name>[^']*)' is undefined\Z")
_NO_ATTRIBUTE = re.compile(r"'(?P<owner>[^']*)' has no attribute '(?P<name>[^']*)'\Z")
# A variable as written: ``contact.job_title``, ``contact['job title']``.
_PATH = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[\s*['\"][^'\"]*['\"]\s*\])*?"
_SUBSCRIPT = re.compile(r"\[\s*['\"]([^'\"]*)['\"]\s*\]")


def _explain(exc: Exception, line: str, directories: Sequence[Path]) -> str:
    """What went wrong, in the template author's terms (``line``: the template line it went wrong on)."""
    if isinstance(exc, TemplateNotFound):
        return not_found_message(str(exc.name), directories)
    if isinstance(exc, SecurityError):
        return f"refused by the template sandbox: {exc}"
    if isinstance(exc, TemplateSyntaxError):  # an included template that does not compile
        return syntax_error_message(exc, exc.name or "")
    if not isinstance(exc, UndefinedError):
        return str(exc)
    message = str(exc)
    if found := _UNDEFINED.match(message):
        return f"undefined variable {found['name']}"
    found = _NO_ATTRIBUTE.match(message)
    if found is None:
        return message
    name = re.escape(found["name"])
    written = re.search(rf"({_PATH})(?:\.{name}\b|\[\s*['\"]{name}['\"]\s*\])", line)
    path = _SUBSCRIPT.sub(r".\1", written[1]) + "." + found["name"] if written else found["name"]
    # A missing key of a dict (contact, event...) is an undefined variable; anything else keeps Jinja's words.
    return f"undefined variable {path}" + ("" if found["owner"] == "dict object" else f" ({message})")
