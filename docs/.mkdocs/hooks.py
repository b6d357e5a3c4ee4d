"""MkDocs hooks of the docs site (docs/.mkdocs/mkdocs.yml).

Docstrings name the pages they lean on as plain paths, "(docs/delivery.md)": right in a terminal or an IDE, where
there is nothing to click, but plain text on the site. On the site each such mention becomes a link to the page;
a mention of a page that does not exist is a warning, which fails the strict build.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

log = logging.getLogger("mkdocs.hooks.promptstream")

MENTION = re.compile(r"(?<![\w/.-])docs/(?P<path>[\w./-]+?\.md)(?P<anchor>#[\w-]+)?(?![\w/-])")
TAG = re.compile(r"<(?P<closing>/?)\s*(?P<name>[a-zA-Z][\w-]*)[^>]*?(?P<empty>/?)>|<!--.*?-->", re.S)
LEAVE_ALONE = frozenset({"a", "code", "pre", "script", "style", "kbd", "samp"})


def link_mentions(html: str, url_of: Callable[[str], str | None]) -> str:
    """``html`` with every ``docs/NAME.md`` in its text (not in a link, code, or a tag) linked to ``url_of(NAME.md)``;
    a mention whose page ``url_of`` does not know is left as it is and logged as a warning."""

    def link(match: re.Match[str]) -> str:
        url = url_of(match["path"])
        if url is None:
            log.warning("a docstring mentions %s, which is not a page of the site", match[0])
            return match[0]
        return f'<a href="{url}{match["anchor"] or ""}">{match[0]}</a>'

    out: list[str] = []
    inside = 0  # depth of elements whose text stays as written
    position = 0
    for tag in TAG.finditer(html):
        text = html[position : tag.start()]
        out.append(MENTION.sub(link, text) if inside == 0 else text)
        out.append(tag[0])
        position = tag.end()
        name = (tag["name"] or "").lower()
        if name in LEAVE_ALONE and not tag["empty"]:
            inside += -1 if tag["closing"] else 1
            inside = max(inside, 0)
    tail = html[position:]
    out.append(MENTION.sub(link, tail) if inside == 0 else tail)
    return "".join(out)


def on_page_content(html: str, page: Any, config: Any, files: Any, **kwargs: Any) -> str:
    def url_of(path: str) -> str | None:
        target = files.get_file_from_path(path)
        return None if target is None else str(target.url_relative_to(page.file))

    return link_mentions(html, url_of)
