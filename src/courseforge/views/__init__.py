"""HTML views of a course, a generation report and eval results: the dashboard's pages
(`service.ui`) and `courseforge report --html` render through the same functions. Pure
rendering: no I/O beyond reading the package's own stylesheet and eval files asked for."""

from .course import course_html
from .evals import evals_html, load_evals
from .markup import document, esc, markdown_html, stylesheet
from .report_charts import call_kinds, report_document, report_html

__all__ = [
    "call_kinds",
    "course_html",
    "document",
    "esc",
    "evals_html",
    "load_evals",
    "markdown_html",
    "report_document",
    "report_html",
    "stylesheet",
]
