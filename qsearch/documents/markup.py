"""HTML made safe to parse: a page rewritten, in one linear pass, into markup that libxml2
(lxml's HTML parser, which trafilatura uses too) reads in about linear time.

libxml2's HTML parser is fast but for two things a hostile page can use: it compares each
attribute of a tag with every one before it (quadratic: one tag of 40,000 attributes took 6 s,
400,000 would take hours), and it stops reading at 256 levels of nesting, silently dropping the
rest of the page. Python's own html.parser (under BeautifulSoup) is worse: quadratic on runs of
"<", "</" or "<![CDATA[", and BeautifulSoup's tree surgery is quadratic in the nesting depth
(a page of 100,000 nested <div>s held a reader for its whole 120 s deadline).

So the page is first cut into tokens by regular expressions that follow HTML5's tokenizer in the
main (tags, comments, the raw text of scripts and styles), each character read once, and written
out again: every tag with at most MAX_ATTRIBUTES attributes, its values quoted; text as it was
(its entities too; a "<" that starts no tag escaped); comments, scripts and styles left out
(nothing to read there); tags nested deeper than `max_depth`, and all tags after the first
MAX_TAGS, left out with their text kept. Whatever the page, every "<" the parser sees is one
written here. What was cut is counted (`Rewritten.notes`), for the document's notes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_ATTRIBUTES = 64  # per tag; real pages use a handful
MAX_DEPTH = 200  # nested elements written; libxml2 stops reading past 256
MAX_TAGS = 100_000  # tags written; the rest of a page is read as text (a long article: ~20,000)
# elements whose content is text to the tokenizer, never markup (HTML5's raw text and RCDATA)
RAW_TEXT = frozenset("script style xmp iframe noembed noframes title textarea".split())
DROPPED = frozenset(("script", "style"))  # their raw text is never read
VOID = frozenset(
    "area base br col embed hr img input link meta param source track wbr basefont bgsound "
    "frame keygen".split()
)
# a start tag that ends the open elements of these names first (HTML's implied end tags, in the
# main), so that unclosed paragraphs, list items and cells don't count as nesting
_ENDS = {
    "p": {"p"},
    "li": {"li", "p"},
    "dt": {"dt", "dd", "p"},
    "dd": {"dt", "dd", "p"},
    "tr": {"tr", "td", "th", "p"},
    "td": {"td", "th", "p"},
    "th": {"td", "th", "p"},
    "thead": {"thead", "tbody", "tfoot", "tr", "td", "th", "p"},
    "tbody": {"thead", "tbody", "tfoot", "tr", "td", "th", "p"},
    "tfoot": {"thead", "tbody", "tfoot", "tr", "td", "th", "p"},
    "option": {"option"},
    "optgroup": {"option", "optgroup"},
}
_ENDS_P = frozenset(
    "address article aside blockquote details div dl fieldset figcaption figure footer form h1 h2 "
    "h3 h4 h5 h6 header hr main nav ol pre section table ul".split()
)

_S = r"[\t\n\f\r ]"  # HTML's whitespace
_MARKUP = re.compile(r"<[A-Za-z!?/]")  # where a tag, comment or declaration may start
# the common case, matched whole at C speed: a plain tag of at most MAX_ATTRIBUTES attributes,
# written as it is; anything else starting with "<" is read by `_markup`
_TAG = re.compile(
    rf"<(?P<end>/?)(?P<name>[A-Za-z][A-Za-z0-9-]*)"
    rf"(?P<attributes>(?:{_S}+[A-Za-z_:][-A-Za-z0-9_:.]*"
    rf"(?:{_S}*={_S}*(?:\"[^\"<]*\"|'[^'<]*'|[^\t\n\f\r \"'=<>`]+))?){{0,{MAX_ATTRIBUTES}}})"
    rf"{_S}*/?>"
)
_COMMENT = re.compile(r"<!--(?:-?>|.*?(?:--!?>|\Z))", re.S)
_BOGUS = re.compile(r"<[!?/][^>]*>?")  # a declaration, processing instruction, odd end tag
_NAME = re.compile(r"</?([A-Za-z][^\t\n\f\r />]*)")
# one attribute (HTML5: a name, then optionally = and a value, quoted or not), or separators
_ATTRIBUTE = re.compile(
    rf"{_S}+|/+"
    rf"|([^\t\n\f\r />][^\t\n\f\r />=]*)"
    rf"(?:{_S}*={_S}*(?:\"([^\"]*)\"?|'([^']*)'?|([^\t\n\f\r >]*)))?"
)
_REST = re.compile(r"(?:[^>\"']+|\"[^\"]*\"?|'[^']*'?)*>?")  # the rest of a tag, past its
# first MAX_ATTRIBUTES attributes: left out, so where it ends need not be exact
_VALID_NAME = re.compile(r"[A-Za-z_:][-A-Za-z0-9_:.]*\Z")
_ANY_MARKUP = re.compile(r"<!--.*?(?:-->|\Z)|<[A-Za-z!?/][^>]*>?", re.S)  # past MAX_TAGS


@dataclass
class Rewritten:
    """A page's markup as written for the parser, and what was left out of it."""

    html: str
    max_depth: int = MAX_DEPTH
    tags: int = 0  # tags written
    attributes_cut: int = 0  # tags that had more than MAX_ATTRIBUTES attributes
    flattened: int = 0  # tags nested deeper than max_depth, left out with their text kept
    past_max_tags: bool = False  # the page had more than MAX_TAGS tags

    def notes(self) -> list[str]:
        """What a reader of the page's text should know was cut."""
        notes = []
        if self.flattened and self.max_depth:
            notes.append(
                f"web page nested deeper than {self.max_depth} levels: {self.flattened:,} tags "
                "below that depth were left out, their text kept"
            )
        elif self.flattened:
            notes.append("web page nested too deeply to follow its layout: read as plain text")
        if self.attributes_cut:
            notes.append(
                f"web page with tags of over {MAX_ATTRIBUTES} attributes ({self.attributes_cut:,} "
                f"such tags): only their first {MAX_ATTRIBUTES} were read"
            )
        if self.past_max_tags:
            notes.append(
                f"web page of over {MAX_TAGS:,} tags: what follows the first {MAX_TAGS:,} was "
                "read as plain text"
            )
        return notes


def rewrite(page: str, max_depth: int = MAX_DEPTH) -> Rewritten:
    """`page` as markup that libxml2 parses in about linear time (see the module's docstring),
    at most `max_depth` elements deep (0: text only)."""
    writer = _Writer(page, max_depth)
    writer.run()
    return writer.found


class _Writer:
    """One pass over a page: its tokens written out, the open elements followed."""

    def __init__(self, page: str, max_depth: int):
        self.page, self.found, self.out = page, Rewritten("", max_depth), []
        self.open: list[str] = []  # names of the elements written and not yet closed, in order
        self.skipped: dict[str, int] = {}  # name -> start tags left out (too deep), not closed

    def run(self) -> None:
        page, out, found, pos, end = self.page, self.out, self.found, 0, len(self.page)
        while pos < end:
            if found.tags >= MAX_TAGS:
                found.past_max_tags = True
                out.append(_text(_ANY_MARKUP.sub(" ", page[pos:])))
                break
            start = _MARKUP.search(page, pos)
            at = start.start() if start else end
            if at > pos:  # text: a "<" that starts no markup is text too
                out.append(_text(page[pos:at]))
                pos = at
                continue
            tag = _TAG.match(page, pos)
            if tag is None:
                pos = self._markup(pos)
                continue
            name, pos = tag.group("name").lower(), tag.end()
            if tag.group("end"):
                self._close(name)
            else:
                pos = self._open(pos, name, tag.group("attributes"))
        self._close_all()
        found.html = "".join(out)

    def _markup(self, pos: int) -> int:
        """Read the comment, declaration or unusual tag at `pos` (a "<"); the position after."""
        page = self.page
        kind = page[pos + 1]
        if page.startswith("<!--", pos):
            return _COMMENT.match(page, pos).end()
        if kind in "!?" or (kind == "/" and not page[pos + 2 : pos + 3].isalpha()):
            return _BOGUS.match(page, pos).end()  # a doctype, CDATA, or junk: nothing to read
        named = _NAME.match(page, pos)
        attributes, after = self._attributes(named.end())
        name = named.group(1).lower()
        if kind == "/":
            self._close(name)
            return after
        return self._open(after, name, attributes)

    def _attributes(self, pos: int) -> tuple[str, int]:
        """The attributes of the tag whose name ends at `pos`, written as name="value" (the
        first MAX_ATTRIBUTES), and the position after the tag."""
        page, written, seen, count = self.page, [], set(), 0
        while (match := _ATTRIBUTE.match(page, pos)) is not None:
            pos = match.end()
            name = match.group(1)
            if name is None:
                continue
            count += 1
            if count > MAX_ATTRIBUTES:
                self.found.attributes_cut += 1
                return "".join(written), _REST.match(page, match.start()).end()
            name = name.lower()
            if name in seen or not _VALID_NAME.match(name):
                continue
            seen.add(name)
            value = next((v for v in match.group(2, 3, 4) if v is not None), "")
            written.append(f' {name}="{_value(value)}"')
        return "".join(written), pos + 1 if page.startswith(">", pos) else pos

    def _open(self, pos: int, name: str, attributes: str) -> int:
        """Write the start tag `name` (or leave it out, too deep) and, for a raw-text element,
        its text; the position after what was read."""
        out, open_tags, found = self.out, self.open, self.found
        raw = name in RAW_TEXT or name == "plaintext"
        ends = _ENDS.get(name, ("p",) if name in _ENDS_P else ())
        while open_tags and open_tags[-1] in ends:
            out.append(f"</{open_tags.pop()}>")
        if len(open_tags) >= found.max_depth and name not in VOID:
            found.flattened += 1
            if not raw:
                self.skipped[name] = self.skipped.get(name, 0) + 1
                return pos
            attributes = None  # its text is read, without the tag
        found.tags += 1
        tag = f"<{name}{attributes}>" if attributes is not None else ""
        if not raw:
            out.append(tag)
            if name not in VOID:
                open_tags.append(name)
            return pos
        page = self.page
        if name == "plaintext":  # everything after it is text
            out.append(f"{tag}{_text(page[pos:])}")
            return len(page)
        ending = re.compile(rf"</{name}(?=[\t\n\f\r />]|\Z)", re.I).search(page, pos)
        stop = ending.start() if ending else len(page)
        content = "" if name in DROPPED else _text(page[pos:stop])
        out.append(f"{tag}{content}</{name}>" if tag else content)
        return _BOGUS.match(page, stop).end() if ending else len(page)

    def _close(self, name: str) -> None:
        """An end tag: closes the innermost open element of its name (and those inside it),
        unless it ends one left out as too deep."""
        if self.skipped.get(name):
            self.skipped[name] -= 1
            return
        open_tags = self.open
        if name not in open_tags:  # at most max_depth names to look through
            return
        while open_tags:
            inner = open_tags.pop()
            self.out.append(f"</{inner}>")
            if inner == name:
                return

    def _close_all(self) -> None:
        self.out.extend(f"</{name}>" for name in reversed(self.open))
        self.open.clear()


def _text(text: str) -> str:
    """Text as the parser must read it: as text (its entities as they were)."""
    return text.replace("<", "&lt;")


def _value(value: str) -> str:
    """An attribute's value, to be written between double quotes."""
    return value.replace('"', "&quot;").replace("<", "&lt;")
