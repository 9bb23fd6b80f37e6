"""E-mail -> text: its headers first (subject, sender, recipients, date, attachments' names, all
searchable), then its body (plain text, else its HTML's visible text). .eml with the standard
library's `email`, Outlook's .msg with extract-msg. The whole message is one part, so a passage
says 'e-mail "Budget" from Ann <ann@example.org>'. A saved web page (.mhtml) is a MIME message
too: its HTML reads as a web page.
"""

from __future__ import annotations

import logging
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from ..types import Deadline, Extracted, IngestError, Part, ReadOptions
from .containers import OLE2, one_line_reasons, quoted, short, unreadable
from .webpage import load_html, visible_text

logging.getLogger("extract_msg").setLevel(logging.ERROR)  # we report a damaged file in one line
_HEADERS = ("Subject", "From", "To", "Cc", "Date")
MAX_HEADER_CHARS = 10_000  # of one header, read


@one_line_reasons
def load_eml(data: bytes, source: str, deadline: Deadline, options: ReadOptions) -> Extracted:
    message = _parse(data, source)
    headers = {name: _header(message, name) for name in _HEADERS}
    if not any(headers[name] for name in ("Subject", "From", "To", "Date")):
        raise IngestError(source, "not an e-mail (no Subject, From, To or Date header)")
    body = message.get_body(preferencelist=("plain", "html"))
    text = ""
    if body is not None:
        content = _content(body)
        text = visible_text(content)[0] if body.get_content_subtype() == "html" else content
    names = [part.get_filename() or part.get_content_type() for part in message.iter_attachments()]
    found = mail(headers, names, text)
    cut = [k for k, v in message.raw_items() if k in _HEADERS and len(v) > MAX_HEADER_CHARS]
    if cut:
        found.notes.append(
            f"e-mail headers cut to {MAX_HEADER_CHARS:,} characters: {', '.join(cut)}"
        )
    return found


def load_msg(data: bytes, source: str, deadline: Deadline, options: ReadOptions) -> Extracted:
    """An Outlook .msg (also a meeting, task or contact saved from Outlook)."""
    if not data.startswith(OLE2):
        raise IngestError(source, "not an Outlook .msg file (not a compound file)")
    import extract_msg

    try:
        message = extract_msg.openMsg(data, delayAttachments=True)
    except Exception as e:  # noqa: BLE001 - extract-msg raises many kinds on damaged files
        raise unreadable(source, ".msg", e) from None
    try:
        values = (message.subject, message.sender, message.to, message.cc, message.date)
        headers = {name: _one_line(value) for name, value in zip(_HEADERS, values)}
        text = message.body or ""
        if not text.strip() and getattr(message, "htmlBody", None):
            text = visible_text(message.htmlBody.decode("utf-8", "replace"))[0]
        names = [_one_line(a.longFilename or a.shortFilename) for a in message.attachments]
    except Exception as e:  # noqa: BLE001
        raise unreadable(source, ".msg", e) from None
    finally:
        message.close()
    return mail(headers, [n for n in names if n], text)


def mail(headers: dict[str, str], attachments: list[str], body: str) -> Extracted:
    """One message as one part: headers, attachments' names, body."""
    lines = [f"{name}: {value}" for name, value in headers.items() if value]
    if attachments:
        lines.append(f"Attachments: {', '.join(attachments)}")
    subject, sender = headers.get("Subject", ""), headers.get("From", "")
    label = f"e-mail {quoted(subject)}" if subject else "e-mail"
    label += f" from {quoted(sender)[1:-1]}" if sender else ""
    found = Extracted("email", ["\n".join(lines) + "\n\n" + body], no_text_reason="empty e-mail")
    found.parts.append(Part(label))
    return found


@one_line_reasons
def load_mhtml(data: bytes, source: str, deadline: Deadline, options: ReadOptions) -> Extracted:
    """A web page saved as one file (.mhtml, .mht): its HTML part, read as a web page."""
    message = _parse(data, source)
    for part in message.walk():
        if part.get_content_type() == "text/html":
            html = _content(part)
            return load_html(html.encode("utf-8"), source, deadline, options)
    raise IngestError(source, "not a saved web page (no HTML inside the .mhtml)")


def _parse(data: bytes, source: str) -> EmailMessage:
    try:
        return BytesParser(policy=policy.default).parsebytes(data)  # type: ignore[return-value]
    except Exception as e:  # noqa: BLE001 - the parser is lenient; this is a last resort
        raise IngestError(source, f"not a readable MIME message ({short(e)})") from None


def _header(message: EmailMessage, name: str) -> str:
    """The header `name`, decoded, its first MAX_HEADER_CHARS characters only: the standard
    library's parser of addresses and encoded words is quadratic-ish (a 5 MB To: header took
    minutes), and a header longer than a page is no one's real subject or address list."""
    raw = next((v for k, v in message.raw_items() if k.lower() == name.lower()), None)
    if raw is None:
        return ""
    try:
        return _one_line(message.policy.header_factory(name, raw[:MAX_HEADER_CHARS]))
    except Exception:  # noqa: BLE001 - a malformed header reads as none
        return ""


def _content(part: Any) -> str:
    """A text part's content, decoded by its charset (an unknown charset read as UTF-8)."""
    try:
        return part.get_content()
    except (LookupError, UnicodeError, AssertionError):
        return (part.get_payload(decode=True) or b"").decode("utf-8", "replace")


def _one_line(value: Any) -> str:
    return "" if value is None else " ".join(str(value).split())
