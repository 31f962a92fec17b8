"""The one Jinja2 environment of the report templates (``report/templates/``): autoescape on,
so every value is escaped by the engine (markup comes in as ``Markup``), undefined names fail."""

from __future__ import annotations

from functools import cache

import jinja2


@cache
def environment(keep_trailing_newline: bool = False) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("frugalml.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=keep_trailing_newline,
    )


def template(name: str) -> jinja2.Template:
    """A template of ``report/templates/`` by file name (``scatter.svg.j2``)."""
    return environment().get_template(name)
