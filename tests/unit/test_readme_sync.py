"""README.md and the code stay in step: every command, every option and every config key
has a row with a description in one of the README's tables.

Walks click's command tree (``gateway.cli.main``) and the config dataclasses
(``gateway.config.Config``, as dotted keys like ``sms.smsc.port``), so a command, an
option or a key added without its documentation fails here, naming what is missing.
"""

from __future__ import annotations

import dataclasses
import re
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import click

from gateway.cli import main
from gateway.config import Config

README = Path(__file__).resolve().parents[2] / "README.md"
NOT_KEYS = {"source"}  # Config fields that are not read from the file


def table_rows(text: str) -> list[tuple[str, list[str]]]:
    """Every body row of every Markdown table, with the header's first cell of its table."""
    rows: list[tuple[str, list[str]]] = []
    header: str | None = None
    for line in text.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if header is None:
            header = cells[0] if cells else ""
        elif not all(set(c) <= set("-: ") for c in cells):
            rows.append((header, cells))
    return rows


def config_keys(cls: type[Any] = Config, prefix: str = "") -> Iterator[str]:
    """Every leaf field of the config dataclasses as a dotted key."""
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not prefix and f.name in NOT_KEYS:
            continue
        key = f"{prefix}{f.name}"
        nested = _dataclass_in(hints[f.name])
        if nested is None or nested.__name__ == "Secret":
            yield key
        else:
            yield from config_keys(nested, key + ".")


def _dataclass_in(hint: Any) -> type[Any] | None:
    candidates = get_args(hint) if get_origin(hint) in (Union, types.UnionType) else (hint,)
    found = [c for c in candidates if dataclasses.is_dataclass(c) and isinstance(c, type)]
    return found[0] if found else None


def commands(group: click.Group = main, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    """Every runnable command as ``("user set", command)``."""
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            yield from commands(command, path + " ")
        else:
            yield path, command


def long_names(option: click.Option) -> list[str]:
    return [name for name in (*option.opts, *option.secondary_opts) if name.startswith("--")]


def options(command: click.Command) -> Iterator[click.Option]:
    for param in command.params:
        if isinstance(param, click.Option) and "--help" not in param.opts:
            yield param


def _mentions(cell: str, name: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", cell) is not None


def missing(text: str) -> list[str]:
    """What the README's tables lack, one line each (empty: all documented)."""
    rows = [(header, cells) for header, cells in table_rows(text) if len(cells) >= 2 and cells[-1]]
    gaps: list[str] = []
    for key in config_keys():
        if not any(f"`{key}`" in cells[0] for _, cells in rows):
            gaps.append(f"config key {key}: no table row with a description")
    for option in options(main):
        names = long_names(option)
        if not any(h == "global option" and all(_mentions(c[0], n) for n in names) for h, c in rows):
            gaps.append(f"global option {'/'.join(names)}: no row in the 'global option' table")
    for path, command in commands():
        synopsis = re.compile(rf"`passerelle {re.escape(path)}(?=[ `])")
        if not any(synopsis.search(cells[0]) for _, cells in rows):
            gaps.append(f"command passerelle {path}: no table row with a description")
        for option in options(command):
            names = long_names(option)
            documented = any(
                len(cells) >= 3 and cells[0] == f"`{path}`" and all(_mentions(cells[1], n) for n in names)
                for _, cells in rows
            )
            if not documented:
                gaps.append(f"option {'/'.join(names)} of passerelle {path}: no row in the options table")
    return gaps


def test_every_command_option_and_config_key_is_in_the_readme() -> None:
    gaps = missing(README.read_text(encoding="utf-8"))
    assert gaps == [], "README.md is behind the code:\n" + "\n".join(gaps)


def test_the_walk_sees_what_it_must_check() -> None:
    """The tree and the dataclasses are walked to the leaves (so the test above can fail)."""
    keys = set(config_keys())
    assert {"sms.smsc.port", "sms.limits.global_per_day", "msn.server.login_url", "metrics.listen"} <= keys
    assert {"admin.socket", "convergence.prefer", "sms.secret"} <= keys and "source" not in keys
    paths = dict(commands())
    assert {"status", "db backup", "user set", "contact unlink"} <= set(paths)
    assert ["--always-connected", "--not-always-connected"] in [
        long_names(o) for o in options(paths["user set"])
    ]


def test_a_row_removed_or_left_without_description_is_reported() -> None:
    text = README.read_text(encoding="utf-8")
    without = "\n".join(
        line
        for line in text.splitlines()
        if not line.startswith(("| `metrics.listen`", "| `passerelle status", "| `user set` | `--no-msn`"))
    )
    blank = re.sub(r"(\| `sms.smsc.window` \|[^|]*\|)[^\n]*", r"\1 |", text)
    assert sorted(missing(without)) == [
        "command passerelle status: no table row with a description",
        "config key metrics.listen: no table row with a description",
        "option --no-msn of passerelle user set: no row in the options table",
    ]
    assert missing(blank) == ["config key sms.smsc.window: no table row with a description"]
