"""Show results in a notebook (rich output) or on a terminal (plain text)."""

from __future__ import annotations

from typing import Any


def in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def show(obj: Any) -> None:
    if in_notebook():
        from IPython.display import display

        display(obj)
    else:
        print(obj)


def show_figure(fig: Any) -> None:
    """Plotly figures travel as their JSON (mimetype), not as a 3.5 MB inline
    plotly.js: JupyterLab renders them, and the report renders them offline."""
    if in_notebook():
        fig.show(renderer="plotly_mimetype")
    else:
        print(f"[figure: {fig.layout.title.text or 'untitled'}]")


def badge(passed: bool, text: str) -> Any:
    colour = "#1a7f37" if passed else "#cf222e"
    label = "PASSED" if passed else "FAILED"
    if not in_notebook():
        return f"{label}: {text}"
    from html import escape

    from IPython.display import HTML

    return HTML(
        f'<div style="padding:8px 12px;border-radius:6px;background:{colour};color:white;'
        f'font-weight:600">{label} &mdash; {escape(text)}</div>'
    )
