"""`cc`: IMS Common Cartridge 1.3 — each lesson as web content, each lesson's exercises as a
CC assessment (the QTI 1.2.1 profile Common Cartridge prescribes), in an .imscc zip."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from ..domain import Course, Lesson
from ._base import ExportFormat, ExportIssue, ExportResult, QuizItem, atomic_zip, ident, quiz_items
from .pages import lesson_body_html, page
from .qti import XSI, xml_text

__all__ = ["CC", "CC_NS", "CC_QTI_NS", "export_cc"]

CC_NS = "http://www.imsglobal.org/xsd/imsccv1p3/imscp_v1p1"
LOM_NS = "http://ltsc.ieee.org/xsd/imsccv1p3/LOM/manifest"
CC_QTI_NS = "http://www.imsglobal.org/xsd/ims_qtiasiv1p2"
_PROFILE = "http://www.imsglobal.org/profile/cc/ccv1p3"
ASSESSMENT_TYPE = "imsqti_xmlv1p2/imscc_xmlv1p3/assessment"
_CC_PROFILE = {
    "multiple_choice": "cc.multiple_choice.v0p1",
    "true_false": "cc.true_false.v0p1",
    "short_answer": "cc.fib.v0p1",
    "coding": "cc.essay.v0p1",
    "open": "cc.essay.v0p1",
}


def _field(parent: ET.Element, label: str, entry: str) -> None:
    node = ET.SubElement(parent, f"{{{CC_QTI_NS}}}qtimetadatafield")
    ET.SubElement(node, f"{{{CC_QTI_NS}}}fieldlabel").text = label
    ET.SubElement(node, f"{{{CC_QTI_NS}}}fieldentry").text = entry


def _mattext(parent: ET.Element, text: str) -> None:
    material = ET.SubElement(parent, f"{{{CC_QTI_NS}}}material")
    ET.SubElement(material, f"{{{CC_QTI_NS}}}mattext", texttype="text/plain").text = text


def _cc_item(section: ET.Element, item: QuizItem) -> None:
    def q(tag: str) -> str:
        return f"{{{CC_QTI_NS}}}{tag}"

    ex = item.exercise
    node = ET.SubElement(section, q("item"), ident=ident(item.lesson_id, ex.id), title=ex.question[:120])
    meta = ET.SubElement(ET.SubElement(node, q("itemmetadata")), q("qtimetadata"))
    _field(meta, "cc_profile", _CC_PROFILE[ex.type])
    if not item.graded:
        _field(meta, "qmd_computerscored", "No")  # the CC profile's rule for an essay
    presentation = ET.SubElement(node, q("presentation"))
    _mattext(presentation, ex.question)
    choice = ex.type in ("multiple_choice", "true_false")
    if choice:
        lid = ET.SubElement(presentation, q("response_lid"), ident="response1", rcardinality="Single")
        render = ET.SubElement(lid, q("render_choice"))
        for i, option in enumerate(item.options):
            _mattext(ET.SubElement(render, q("response_label"), ident=f"C{i}"), option)
    else:
        response = ET.SubElement(presentation, q("response_str"), ident="response1", rcardinality="Single")
        ET.SubElement(ET.SubElement(response, q("render_fib")), q("response_label"), ident="answer1")
    processing = ET.SubElement(node, q("resprocessing"))
    ET.SubElement(
        ET.SubElement(processing, q("outcomes")),
        q("decvar"),
        maxvalue="100",
        minvalue="0",
        varname="SCORE",
        vartype="Decimal",
    )
    condition = ET.SubElement(processing, q("respcondition"), {"continue": "No"})
    conditionvar = ET.SubElement(condition, q("conditionvar"))
    if item.graded:
        value = f"C{item.correct}" if choice else ex.answer.strip()
        attrs = {"respident": "response1"} if choice else {"respident": "response1", "case": "No"}
        ET.SubElement(conditionvar, q("varequal"), attrs).text = value
        ET.SubElement(condition, q("setvar"), action="Set", varname="SCORE").text = "100"
    else:
        ET.SubElement(conditionvar, q("other"))
    # The explanation is item feedback, shown by a trigger (an itemfeedback needs one in CC).
    ET.SubElement(condition, q("displayfeedback"), feedbacktype="Response", linkrefid="general_fb")
    feedback = ET.SubElement(node, q("itemfeedback"), ident="general_fb")
    flow = ET.SubElement(feedback, q("flow_mat"))
    _mattext(flow, ex.explanation if item.graded else f"Model answer: {ex.answer}\n{ex.explanation}")


def _assessment(lesson: Lesson, items: list[QuizItem]) -> str:
    def q(tag: str) -> str:
        return f"{{{CC_QTI_NS}}}{tag}"

    root = ET.Element(
        q("questestinterop"),
        {f"{{{XSI}}}schemaLocation": f"{CC_QTI_NS} {_PROFILE}/ccv1p3_qtiasiv1p2p1_v1p0.xsd"},
    )
    assessment = ET.SubElement(
        root, q("assessment"), ident=ident(lesson.id, "quiz"), title=f"Quiz: {lesson.title}"
    )
    meta = ET.SubElement(assessment, q("qtimetadata"))
    _field(meta, "cc_profile", "cc.exam.v0p1")
    _field(meta, "qmd_assessmenttype", "Examination")
    section = ET.SubElement(assessment, q("section"), ident="root_section")
    for item in items:
        _cc_item(section, item)
    return xml_text(root, CC_QTI_NS)


def _manifest(course: Course, resources: list[tuple[str, str, str, str, str]]) -> str:
    """resources: (lesson id, item title, resource id, type, href)."""

    def cp(tag: str) -> str:
        return f"{{{CC_NS}}}{tag}"

    root = ET.Element(
        cp("manifest"),
        {
            f"{{{XSI}}}schemaLocation": f"{CC_NS} {_PROFILE}/ccv1p3_imscp_v1p2_v1p0.xsd "
            f"{LOM_NS} {_PROFILE}/LOM/ccv1p3_lommanifest_v1p0.xsd"
        },
        identifier=ident(course.course_id, "cc"),
    )
    meta = ET.SubElement(root, cp("metadata"))
    ET.SubElement(meta, cp("schema")).text = "IMS Common Cartridge"
    ET.SubElement(meta, cp("schemaversion")).text = "1.3.0"
    lom = ET.SubElement(meta, f"{{{LOM_NS}}}lom")
    title = ET.SubElement(ET.SubElement(lom, f"{{{LOM_NS}}}general"), f"{{{LOM_NS}}}title")
    ET.SubElement(title, f"{{{LOM_NS}}}string").text = course.metadata.course_title
    org = ET.SubElement(
        ET.SubElement(root, cp("organizations")),
        cp("organization"),
        identifier="ORG",
        structure="rooted-hierarchy",
    )
    top = ET.SubElement(org, cp("item"), identifier="ROOT")
    for section in course.sections:
        sec = ET.SubElement(top, cp("item"), identifier=ident(section.id, "section"))
        ET.SubElement(sec, cp("title")).text = section.title
        for lesson_id, item_title, rid, _type, _href in resources:
            if any(lesson.id == lesson_id for lesson in section.lessons):
                node = ET.SubElement(sec, cp("item"), identifier=f"{rid}_item", identifierref=rid)
                ET.SubElement(node, cp("title")).text = item_title
    res = ET.SubElement(root, cp("resources"))
    for _lesson, _title, rid, kind, href in resources:
        attrs = {"identifier": rid, "type": kind}
        if kind == "webcontent":
            attrs["href"] = href
        node = ET.SubElement(res, cp("resource"), attrs)
        ET.SubElement(node, cp("file"), href=href)
    return xml_text(root, CC_NS, lomimscc=LOM_NS)


def export_cc(course: Course, out: Path) -> ExportResult:
    result = ExportResult("cc", out, CC.type_map)
    items = quiz_items(course, CC, result.issues)
    for keyed in items.values():  # CC's multiple_choice profile needs three options or more
        for item in [i for i in keyed if i.exercise.type == "multiple_choice" and len(i.options) < 3]:
            keyed.remove(item)
            reason = "Common Cartridge's cc.multiple_choice needs at least 3 options"
            result.issues.append(ExportIssue(item.path, item.exercise.type, "skipped", reason))
    members: dict[str, str | bytes] = {}
    resources: list[tuple[str, str, str, str, str]] = []
    for lesson in course.lessons():
        base = ident(lesson.id)
        href = f"{base}/lesson.html"
        members[href] = page(lesson.title, lesson_body_html(lesson, []))
        resources.append((lesson.id, lesson.title, f"{base}_page", "webcontent", href))
        keyed = items.get(lesson.id, [])
        if keyed:
            quiz = f"{base}_quiz/assessment.xml"
            members[quiz] = _assessment(lesson, keyed)
            resources.append((lesson.id, f"Quiz: {lesson.title}", f"{base}_quiz", ASSESSMENT_TYPE, quiz))
        result.lessons += 1
        result.exercises += len(keyed)
    result.files = atomic_zip(out, {"imsmanifest.xml": _manifest(course, resources), **members})
    return result


CC = ExportFormat(
    "cc",
    "zip",
    "imscc",
    "application/zip",
    {
        "multiple_choice": "cc.multiple_choice.v0p1",
        "true_false": "cc.true_false.v0p1",
        "short_answer": "cc.fib.v0p1",
        "coding": "cc.essay.v0p1 (ungraded)",
        "open": "cc.essay.v0p1 (ungraded)",
    },
    lambda course, out, _options: export_cc(course, out),
)
