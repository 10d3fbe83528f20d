"""Parameters as an operator types them: `-p` text, YAML files, and what "unset" means."""

from __future__ import annotations

from pathlib import Path

import pytest

from vextrus_nb.errors import RunRefused
from vextrus_nb.run.parameters import declared_parameters, papermill_value, parse_assignments, validate

from .helpers import write_runbook

PARAMETERS = """\
env = "sandbox"
dry_run = True
timeout_s: "Optional[float]" = None   # None: the environment's setting
concurrency: "Optional[int]" = None
kafka_lag_max = 10000
services = ""
"""


@pytest.fixture(scope="module")
def declared(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("runbooks")
    return declared_parameters(write_runbook(folder, "params", PARAMETERS))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        *[(word, True) for word in ("true", "True", "TRUE", "yes", "Yes", "on", "ON", "1")],
        *[(word, False) for word in ("false", "False", "FALSE", "no", "NO", "off", "Off", "0")],
    ],
)
def test_bool_parameters_take_the_words_every_cli_takes(declared: dict, text: str, expected: bool) -> None:
    assert validate(declared, parse_assignments([f"dry_run={text}"])) == {"dry_run": expected}


@pytest.mark.parametrize("text", ["maybe", "2", "tru", "", "none-of-these"])
def test_other_words_for_a_bool_are_refused_naming_the_parameter_and_the_words(
    declared: dict, text: str
) -> None:
    with pytest.raises(RunRefused) as refused:
        validate(declared, parse_assignments([f"dry_run={text}"]))
    assert "parameter 'dry_run' expects bool (true/yes/on/1/false/no/off/0, any case)" in str(refused.value)


def test_a_bool_word_is_only_a_bool_where_a_bool_is_declared(declared: dict) -> None:
    assert validate(declared, parse_assignments(["services=yes"])) == {"services": "yes"}
    with pytest.raises(RunRefused, match="'kafka_lag_max' expects int, got str 'yes'"):
        validate(declared, parse_assignments(["kafka_lag_max=yes"]))


def test_zero_means_zero_and_none_means_unset(declared: dict) -> None:
    assert declared["timeout_s"].nullable and declared["timeout_s"].type_name == "float"
    assert declared["timeout_s"].default is None
    assert validate(declared, parse_assignments(["timeout_s=0", "kafka_lag_max=0"])) == {
        "timeout_s": 0.0,
        "kafka_lag_max": 0,
    }
    assert validate(declared, parse_assignments(["timeout_s=None", "concurrency=None"])) == {
        "timeout_s": None,
        "concurrency": None,
    }
    with pytest.raises(RunRefused, match="'kafka_lag_max' expects int, got NoneType None"):
        validate(declared, parse_assignments(["kafka_lag_max=None"]))
    with pytest.raises(RunRefused, match="'concurrency' expects int or None, got str 'many'"):
        validate(declared, parse_assignments(["concurrency=many"]))


def test_every_problem_is_named_at_once(declared: dict, tmp_path: Path) -> None:
    with pytest.raises(RunRefused) as refused:
        validate(declared, parse_assignments(["colour=red", "dry_run=maybe"]))
    assert "unknown parameter 'colour'" in str(refused.value) and "'dry_run'" in str(refused.value)


@pytest.mark.parametrize(
    "raw",
    [
        "True",
        "False",
        "None",
        "true",
        "0",
        "-7",
        " 5",
        "1_000",
        "0x10",
        "1.5",
        "1e3",
        "nan",
        "-inf",
        "",
        "=",
        "a b",
        "12abc",
        "TRUE",
        "none",
        "3.",
        ".5",
    ],
)
def test_our_reading_of_a_value_is_papermills(raw: str) -> None:
    from papermill.cli import _resolve_type

    ours, theirs = papermill_value(raw), _resolve_type(raw)
    assert type(ours) is type(theirs)
    assert ours == theirs or (ours != ours and theirs != theirs)  # nan is not equal to itself
