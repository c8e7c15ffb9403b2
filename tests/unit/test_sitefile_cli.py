"""`linebox apply FILE [--dry-run]` and `linebox export [-o FILE]` as a person
runs them: what they print and the exit status."""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance import settings as settings_mod
from appliance.sitefile.cli import EXIT_PROBLEMS, add_commands

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_FILE = ROOT / "examples" / "site.toml"


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    previous = settings_mod._current
    data = tmp_path / "data"
    # The commands configure and migrate the database themselves.
    settings_mod.override(settings_mod.load(environ={"LINEBOX_DATA_DIR": str(data)}))
    yield data
    settings_mod._current = previous


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="linebox")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_apply_prints_the_changes_and_then_nothing_to_do(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("apply", str(EXAMPLE_FILE)) == 0
    out, err = capsys.readouterr()
    assert "+ hotline 4001234567" in out.splitlines()
    assert "warning: line 83: tenants[0].prompts[2].file: prompts/hold-music.wav not found" in err
    assert run("apply", str(EXAMPLE_FILE)) == 0
    assert capsys.readouterr().out == "no changes\n"


def test_a_bad_file_lists_every_problem_and_exits_2(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        EXAMPLE_FILE.read_text(encoding="utf-8")
        .replace('pin = "2468"', 'pin = "2"')
        .replace("ring_timeout = 15", "ring_timeout = 1"),
        encoding="utf-8",
    )
    assert run("apply", str(bad)) == EXIT_PROBLEMS
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{bad}: 2 problem(s), nothing was changed:" in err
    assert "  line 61: tenants[0].groups[0].ring_timeout: 1 is out of range: 5 to 300" in err
    assert "  line 127: tenants[0].hotlines[1].pin: '2' is not a PIN: 4 to 8 digits" in err
    # Nothing was written: exporting shows an empty appliance.
    assert run("export") == 0
    assert tomllib.loads(capsys.readouterr().out) == {}


def test_dry_run_shows_changes_without_making_them(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("apply", "--dry-run", str(EXAMPLE_FILE)) == 0
    out = capsys.readouterr().out
    assert "+ tenant acme" in out and out.endswith("dry run: nothing was changed\n")
    run("export")
    assert tomllib.loads(capsys.readouterr().out) == {}


def test_export_writes_a_file_that_applies_to_no_change(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run("apply", str(EXAMPLE_FILE))
    target = tmp_path / "out" / "exported.toml"
    assert run("export", "-o", str(target)) == 0
    assert tomllib.loads(target.read_text(encoding="utf-8"))["tenants"][0]["slug"] == "acme"
    capsys.readouterr()
    assert run("apply", str(target)) == 0
    assert capsys.readouterr().out == "no changes\n"


def test_export_to_stdout_is_only_toml(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run("apply", str(EXAMPLE_FILE))
    capsys.readouterr()
    run("export")
    out = capsys.readouterr().out
    assert tomllib.loads(out)["trunks"][0]["name"] == "unicom"
