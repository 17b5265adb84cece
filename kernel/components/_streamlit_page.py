"""The page ``ServeStreamlit`` runs under ``streamlit run``: the Work's ``render()`` on its state."""

from __future__ import annotations

import json
import os
import pydoc
from typing import Any


def _work() -> Any:
    module = pydoc.importfile(os.environ["LK_STREAMLIT_WORK_FILE"])
    cls: Any = module
    for part in os.environ["LK_STREAMLIT_WORK_CLASS"].split("."):
        cls = getattr(cls, part)
    work = object.__new__(cls)  # no __init__: the instance only carries the Work's state
    work.__dict__.update(json.loads(os.environ.get("LK_STREAMLIT_WORK_STATE") or "{}"))
    return work


def main() -> None:
    import streamlit as st

    work = _work()
    if "_model" not in st.session_state:
        with st.spinner("Building model..."):
            st.session_state["_model"] = work.build_model()
    work.__dict__["_model"] = st.session_state["_model"]
    work.render()


if __name__ == "__main__":
    main()
