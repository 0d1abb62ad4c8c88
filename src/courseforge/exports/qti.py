"""`qti`: QTI 2.1 — one assessmentItem per exercise and one assessmentTest per lesson, in an IMS
Content Package (imsmanifest.xml) zip."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from ..domain import Course, Lesson
from ._base import XSI, ExportFormat, ExportResult, QuizItem, atomic_zip, ident, quiz_items, to_xml

__all__ = ["QTI", "QTI_NS", "XSI", "export_qti", "qti_item", "qti_members", "qti_test", "xml_text"]

QTI_NS = "http://www.imsglobal.org/xsd/imsqti_v2p1"
QTI_XSD = "http://www.imsglobal.org/xsd/qti/qtiv2p1/imsqti_v2p1.xsd"
CP_NS = "http://www.imsglobal.org/xsd/imscp_v1p1"
MATCH_CORRECT = "http://www.imsglobal.org/question/qti_v2p1/rptemplates/match_correct"


def _q(tag: str) -> str:
    return f"{{{QTI_NS}}}{tag}"


def xml_text(root: ET.Element, default_ns: str = QTI_NS, **prefixes: str) -> str:
    """The document with `default_ns` as its default namespace, xsi and `prefixes` (prefix=uri)."""
    return to_xml(root, {default_ns: "", XSI: "xsi", **{uri: p for p, uri in prefixes.items()}})


def _score_declaration(root: ET.Element) -> None:
    score = ET.SubElement(
        root, _q("outcomeDeclaration"), identifier="SCORE", cardinality="single", baseType="float"
    )
    ET.SubElement(ET.SubElement(score, _q("defaultValue")), _q("value")).text = "0"


def qti_item(item: QuizItem) -> tuple[str, str]:
    """(identifier, XML) of one exercise as a QTI 2.1 assessmentItem."""
    ex = item.exercise
    item_id = ident(item.lesson_id, ex.id)
    root = ET.Element(
        _q("assessmentItem"),
        {f"{{{XSI}}}schemaLocation": f"{QTI_NS} {QTI_XSD}"},
        identifier=item_id,
        title=ex.question[:120],
        adaptive="false",
        timeDependent="false",
    )
    choice = ex.type in ("multiple_choice", "true_false")
    response = ET.SubElement(
        root,
        _q("responseDeclaration"),
        identifier="RESPONSE",
        cardinality="single",
        baseType="identifier" if choice else "string",
    )
    if item.graded:
        correct = ET.SubElement(response, _q("correctResponse"))
        ET.SubElement(correct, _q("value")).text = f"C{item.correct}" if choice else ex.answer.strip()
    _score_declaration(root)
    body = ET.SubElement(root, _q("itemBody"))
    if choice:
        interaction = ET.SubElement(
            body, _q("choiceInteraction"), responseIdentifier="RESPONSE", shuffle="false", maxChoices="1"
        )
        ET.SubElement(interaction, _q("prompt")).text = ex.question
        for i, option in enumerate(item.options):
            ET.SubElement(interaction, _q("simpleChoice"), identifier=f"C{i}").text = option
    elif ex.type == "short_answer":
        para = ET.SubElement(body, _q("p"))
        para.text = ex.question + " "
        ET.SubElement(para, _q("textEntryInteraction"), responseIdentifier="RESPONSE", expectedLength="40")
    else:
        interaction = ET.SubElement(
            body, _q("extendedTextInteraction"), responseIdentifier="RESPONSE", expectedLines="12"
        )
        ET.SubElement(interaction, _q("prompt")).text = ex.question
    if item.graded:
        ET.SubElement(root, _q("responseProcessing"), template=MATCH_CORRECT)
    return item_id, xml_text(root)


def qti_test(lesson: Lesson, hrefs: list[tuple[str, str]]) -> tuple[str, str]:
    """(identifier, XML) of a lesson's assessmentTest over its items (identifier, href)."""
    test_id = ident(lesson.id, "test")
    root = ET.Element(
        _q("assessmentTest"),
        {f"{{{XSI}}}schemaLocation": f"{QTI_NS} {QTI_XSD}"},
        identifier=test_id,
        title=lesson.title,
    )
    _score_declaration(root)
    part = ET.SubElement(
        root, _q("testPart"), identifier="P1", navigationMode="nonlinear", submissionMode="simultaneous"
    )
    section = ET.SubElement(
        part, _q("assessmentSection"), identifier="S1", title=lesson.title, visible="true"
    )
    for item_id, href in hrefs:
        ET.SubElement(section, _q("assessmentItemRef"), identifier=item_id, href=href)
    processing = ET.SubElement(root, _q("outcomeProcessing"))
    total = ET.SubElement(ET.SubElement(processing, _q("setOutcomeValue"), identifier="SCORE"), _q("sum"))
    ET.SubElement(total, _q("testVariables"), variableIdentifier="SCORE")
    return test_id, xml_text(root)


def qti_members(
    course: Course, items: dict[str, list[QuizItem]]
) -> tuple[dict[str, str], list[tuple[str, str, list[str]]]]:
    """The QTI files (path -> XML) and the resources (identifier, href, dependencies)."""
    members: dict[str, str] = {}
    resources: list[tuple[str, str, list[str]]] = []
    for lesson in course.lessons():
        keyed = items.get(lesson.id, [])
        if not keyed:
            continue
        hrefs: list[tuple[str, str]] = []
        for item in keyed:
            item_id, text = qti_item(item)
            href = f"items/{item_id}.xml"
            members[href] = text
            hrefs.append((item_id, href))
            resources.append((item_id, href, []))
        test_id, text = qti_test(lesson, [(i, f"../{h}") for i, h in hrefs])
        href = f"tests/{test_id}.xml"
        members[href] = text
        resources.append((test_id, href, [i for i, _ in hrefs]))
    return members, resources


def _manifest(course: Course, resources: list[tuple[str, str, list[str]]]) -> str:
    def cp(tag: str) -> str:
        return f"{{{CP_NS}}}{tag}"

    root = ET.Element(
        cp("manifest"),
        {f"{{{XSI}}}schemaLocation": f"{CP_NS} http://www.imsglobal.org/xsd/imscp_v1p1.xsd"},
        identifier=ident(course.course_id, "qti"),
    )
    ET.SubElement(ET.SubElement(root, cp("metadata")), cp("schema")).text = "QTIv2.1 Package"
    ET.SubElement(root, cp("organizations"))
    res = ET.SubElement(root, cp("resources"))
    for rid, href, deps in resources:
        kind = "imsqti_test_xmlv2p1" if href.startswith("tests/") else "imsqti_item_xmlv2p1"
        node = ET.SubElement(res, cp("resource"), identifier=rid, type=kind, href=href)
        ET.SubElement(node, cp("file"), href=href)
        for dep in deps:
            ET.SubElement(node, cp("dependency"), identifierref=dep)
    return xml_text(root, CP_NS)


def export_qti(course: Course, out: Path) -> ExportResult:
    result = ExportResult("qti", out, QTI.type_map)
    items = quiz_items(course, QTI, result.issues)
    members, resources = qti_members(course, items)
    result.files = atomic_zip(out, {"imsmanifest.xml": _manifest(course, resources), **members})
    result.lessons = len(course.lessons())
    result.exercises = sum(len(v) for v in items.values())
    return result


QTI = ExportFormat(
    "qti",
    "zip",
    "zip",
    "application/zip",
    {
        "multiple_choice": "choiceInteraction (single), match_correct",
        "true_false": "choiceInteraction with True/False choices, match_correct",
        "short_answer": "textEntryInteraction, match_correct",
        "coding": "extendedTextInteraction (ungraded)",
        "open": "extendedTextInteraction (ungraded)",
    },
    lambda course, out, _options: export_qti(course, out),
)
