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


class Shown:
    """Something with both an HTML form (JupyterLab, the report) and a plain-text
    form (a terminal, a raw .ipynb, grep): evidence must read well in both."""

    def __init__(self, html: str, text: str):
        self.html, self.text = html, text

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return self.text


def styled_table(styler: Any) -> Shown:
    """A pandas Styler, keeping the underlying table as its text form."""
    return Shown(styler.to_html(), styler.data.to_string())


def badge(passed: bool, text: str) -> Shown:
    from html import escape

    colour = "#1a7f37" if passed else "#cf222e"
    label = "PASSED" if passed else "FAILED"
    html = (
        f'<div style="padding:8px 12px;border-radius:6px;background:{colour};color:white;'
        f'font-weight:600">{label} &mdash; {escape(text)}</div>'
    )
    return Shown(html, f"{label}: {text}")


def note(text: str) -> Shown:
    """A sentence for the reader, shown as a paragraph rather than as a quoted Python string."""
    from html import escape

    return Shown(f"<p>{escape(text)}</p>", text)


def preformatted(text: str) -> Shown:
    """Lines that must be read whole and as they are (log lines): a <pre> block, never cut short."""
    from html import escape

    return Shown(f"<pre>{escape(text)}</pre>", text)


class Progress:
    """Progress of a long step (dumps, restores), for both places an operator watches.

    In a kernel: one line per step into the notebook's stderr stream (a log the auditor reads),
    and the same line onto the kernel process's own stderr, which is the terminal of
    `vextrus-nb run` and papermill (ipykernel's stream hands out that descriptor as its fileno).
    Elsewhere (a Python shell, a script): a tqdm bar on the terminal.
    """

    def __init__(self, total: int, what: str):
        self.total, self.what, self.done = total, what, 0
        self._bar: Any = None
        if not in_notebook():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=what, unit="step")

    def step(self, latest: str) -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.set_postfix_str(latest)
            self._bar.update(1)
            return
        import contextlib
        import os
        import sys

        line = f"{self.what}: {self.done}/{self.total} ({latest})\n"
        sys.stderr.write(line)
        sys.stderr.flush()
        with contextlib.suppress(OSError, ValueError, AttributeError):  # no terminal behind this kernel
            os.write(sys.stderr.fileno(), line.encode())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
