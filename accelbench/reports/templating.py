"""The one Jinja environment of the HTML pages (report, history): templates from `templates/`,
everything autoescaped, undefined names an error, numbers through `significant`."""
from __future__ import annotations

from pathlib import Path

import jinja2

from accelbench.reports.numbers import ratio, significant

TEMPLATES = Path(__file__).parent / "templates"


def template(name: str) -> jinja2.Template:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                             autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["sig"] = significant
    env.filters["ratio"] = ratio
    return env.get_template(name)
