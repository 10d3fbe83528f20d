"""Show results in a notebook (rich output) or on a terminal (plain text)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
    plotly.js: JupyterLab renders them, and the report renders them offline. A
    vextrus_nb.figures.Figure is that JSON already; a plotly figure is shown through
    plotly's own mimetype renderer."""
    from vextrus_nb.figures import Figure

    if in_notebook():
        if isinstance(fig, Figure):
            from IPython.display import display

            display(fig)
        else:
            fig.show(renderer="plotly_mimetype")
    else:
        title = fig.title if isinstance(fig, Figure) else fig.layout.title.text
        print(f"[figure: {title or 'untitled'}]")


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


def table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    cell_style: Mapping[str, Callable[[Any], str]] | None = None,
) -> Shown:
    """Rows as a table without pandas (the smoke run's: importing pandas is 0.4 s of a 3 s run),
    looking like a pandas table in both forms: numbered rows, the text form aligned as
    `DataFrame.to_string` aligns it. `cell_style` gives a column's cells a CSS style by value."""
    from html import escape

    styles = cell_style or {}
    cells = [[_cell_text(row.get(column)) for column in columns] for row in rows]
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = []
    for number, (row, texts) in enumerate(zip(rows, cells, strict=True)):
        tds = []
        for column, text in zip(columns, texts, strict=True):
            style = styles[column](row.get(column)) if column in styles else ""
            tds.append(
                f'<td style="{escape(style)}">{escape(text)}</td>' if style else f"<td>{escape(text)}</td>"
            )
        body.append(f"<tr><th>{number}</th>{''.join(tds)}</tr>")
    html = (
        f'<table class="dataframe"><thead><tr><th></th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )
    return Shown(html, _aligned([["", *columns], *([str(n), *t] for n, t in enumerate(cells))]))


def key_values(pairs: Mapping[str, Any]) -> Shown:
    """A two-column table of names and values (a run's header), without pandas."""
    from html import escape

    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(_cell_text(v))}</td></tr>" for k, v in pairs.items())
    width = max((len(k) for k in pairs), default=0)
    text = "\n".join(f"{k:<{width}}  {_cell_text(v)}" for k, v in pairs.items())
    return Shown(f'<table class="dataframe"><tbody>{body}</tbody></table>', text)


def _cell_text(value: Any) -> str:
    return "None" if value is None else str(value)


def _aligned(lines: list[list[str]]) -> str:
    """Columns padded to their widest cell, text to the right as pandas aligns it."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True)) for line in lines)


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

    In a kernel: one line in the notebook, updated in place (an IPython display with a display id,
    so JupyterLab shows it moving and an executed notebook keeps only its final state, which says
    what was done), and one line per step onto the kernel process's own stderr, which is the
    terminal of `vextrus-nb run` and papermill (ipykernel's stream hands out that descriptor as
    its fileno, so these lines never reach the notebook).
    Elsewhere (a Python shell, a script): a tqdm bar on the terminal.
    """

    def __init__(self, total: int, what: str):
        import time

        self.total, self.what, self.done = total, what, 0
        self.latest = ""
        self._started = time.perf_counter()
        self._seconds: float | None = None  # set once finished
        self._bar: Any = None
        self._handle: Any = None
        if not in_notebook():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=what, unit="step")
            return
        from IPython.display import display

        self._handle = display(self._shown(), display_id=True)

    def step(self, latest: str) -> None:
        self.done += 1
        self.latest = latest
        if self._bar is not None:
            self._bar.set_postfix_str(latest)
            self._bar.update(1)
            return
        if self.done >= self.total:
            self._finish()
        self._update()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            return
        if self._seconds is None:  # stopped short (an exception on the way), or nothing to do
            self._finish()
            self._update()

    def _finish(self) -> None:
        import time

        self._seconds = time.perf_counter() - self._started

    def text(self) -> str:
        """The line as it stands: while running, how far; once finished, what was done and how long
        it took; stopped short, where it stopped."""
        line = f"{self.what}: {self.done}/{self.total}"
        if self._seconds is not None:
            line += f" {'done' if self.done >= self.total else 'stopped'} in {self._seconds:.1f} s"
        if self.latest:
            line += f" (last: {self.latest})" if self._seconds is not None else f" ({self.latest})"
        return line

    def _shown(self) -> Shown:
        from html import escape

        text = self.text()
        stopped = self._seconds is not None and self.done < self.total
        colour = "#cf222e" if stopped else "#57606a"
        bar = f'<progress value="{self.done}" max="{max(self.total, 1)}" style="margin-right:8px"></progress>'
        return Shown(f'<div style="color:{colour}">{bar}{escape(text)}</div>', text)

    def _update(self) -> None:
        """The notebook's line rewritten in place, and the same line onto the terminal."""
        import contextlib
        import os
        import sys

        if self._handle is not None:
            self._handle.update(self._shown())
        line = self.text() + "\n"
        with contextlib.suppress(OSError, ValueError, AttributeError):  # no terminal behind this kernel
            os.write(sys.stderr.fileno(), line.encode())
