"""Keep a slow, unused import out of every `vextrus-nb` process.

jsonschema >= 4.25 (pulled in by nbformat, which papermill imports) loads
`rfc3987_syntax` for its `iri` format check, and that module builds about 35 Lark
parsers at import: 2.7 s of every CLI run on these machines, more than the rest of
a refused run (python-jsonschema/jsonschema#1428). No notebook schema uses the `iri`
format; marked as missing, the module is skipped by jsonschema, which then leaves
that one format unchecked.
"""

from __future__ import annotations

import sys

SLOW_UNUSED = "rfc3987_syntax"


def skip_slow_unused_imports() -> None:
    # None in sys.modules makes `import rfc3987_syntax` raise ImportError, which
    # jsonschema._format expects and handles. Nothing is done if it is already loaded.
    sys.modules.setdefault(SLOW_UNUSED, None)  # type: ignore[arg-type]  # typeshed: modules only
