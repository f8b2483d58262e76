"""XML parsed safely from bytes: no DTDs, entities or external references; the root's namespace."""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeElementTree
from defusedxml import DefusedXmlException

from accounting.formats.problems import CaptureError, Problem


def parse_xml(content: bytes) -> Element:
    """Parse XML refusing DTDs, entities and external references (XXE, billion laughs).

    Bytes, never text: the parser reads the byte order mark and the declaration's encoding
    (UTF-8, UTF-16, ISO-8859-1, ...) itself.
    """
    try:
        return SafeElementTree.fromstring(  # type: ignore[no-any-return]
            content, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        raise CaptureError(
            [
                Problem(
                    "document",
                    "XML with a DTD, entity declarations or external references is refused "
                    f"for safety ({type(exc).__name__}); an invoice needs none of them",
                )
            ]
        ) from None
    except ParseError as exc:
        line, column = exc.position
        reason = str(exc).rsplit(": line ", 1)[0]  # the position is already the location
        raise CaptureError(
            [Problem(f"line {line}, column {column + 1}", f"not well-formed XML: {reason}")]
        ) from None
    except LookupError as exc:  # an encoding Python does not know
        raise CaptureError(
            [Problem("document", f"declares an encoding remit cannot read ({exc}): send UTF-8")]
        ) from None
    except ValueError as exc:
        raise CaptureError([Problem("document", f"cannot be read as XML: {exc}")]) from None


def split_tag(tag: str) -> tuple[str, str]:
    """'{namespace}Local' as ('namespace', 'Local'); ('', tag) without a namespace."""
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return "", tag
