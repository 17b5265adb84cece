"""PL's module path `utilities.model_summary`: the summary table (``ModelSummary`` here is the table,
as in PL; the callback is ``callbacks.ModelSummary``)."""

from ..callbacks._model_summary import ModelSummaryTable as ModelSummary
from ..callbacks._model_summary import get_human_readable_count, summarize

__all__ = ["ModelSummary", "get_human_readable_count", "summarize"]
