"""Static checks over the runtime code (gateway/, transports/):

* SQL is built only with parameters: the statement given to every execute/write call is a
  constant string, built only from constants and a few whitelisted constant fragments;
* nothing from a peer can become a format string: ``.format`` and ``%`` only on literal
  templates (or the constant error registry), and log calls with arguments have a literal
  message;
* no shell or code evaluation: no subprocess, os.system/popen, eval, exec, pickle.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = [p for d in ("gateway", "transports") for p in sorted((ROOT / d).rglob("*.py"))]
# development tools that start processes on purpose; not part of the running gateway
# development tools that start test servers as processes (never imported by `passerelle run`)
NOT_RUNTIME = {
    ROOT / "gateway/devtools/prosody.py",
    ROOT / "gateway/devtools/ejabberd.py",
    ROOT / "gateway/devtools/demo.py",
}

SQL_CALLS = {"execute", "executemany", "executescript", "write", "write_many", "write_group"}
# Names that may appear inside a SQL f-string or concatenation: constant fragments, each
# assigned once from a literal (checked below), or a schema version number.
FRAGMENTS = {
    ("gateway/storage/sms.py", "used"),
    ("gateway/storage/store.py", "version"),
    ("gateway/storage/store.py", "MIGRATIONS"),
}
# Functions that pass a caller's (already checked) statement through.
PASS_THROUGH = {("gateway/storage/writer.py", "sql"), ("gateway/storage/writer.py", "statements")}


@functools.cache
def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def literal_assignments(scope: ast.AST) -> dict[str, list[ast.expr]]:
    found: dict[str, list[ast.expr]] = {}
    for node in ast.walk(scope):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found.setdefault(target.id, []).append(node.value)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            found.setdefault(node.target.id, []).append(node.value)
    return found


class SqlChecker:
    def __init__(self, path: Path, func: ast.AST, module: ast.Module) -> None:
        self.file = rel(path)
        self.local = literal_assignments(func)
        self.module = {
            t.id: [n.value]
            for n in module.body
            if isinstance(n, ast.Assign)
            for t in n.targets
            if isinstance(t, ast.Name)
        }

    def safe(self, node: ast.expr, depth: int = 0) -> bool:
        if depth > 10:
            return False
        match node:
            case ast.Constant(value=str()):
                return True
            case ast.BinOp(op=ast.Add(), left=left, right=right):
                return self.safe(left, depth + 1) and self.safe(right, depth + 1)
            case ast.JoinedStr(values=values):
                return all(
                    isinstance(v, ast.Constant)
                    or (isinstance(v, ast.FormattedValue) and self.fragment(v.value))
                    for v in values
                )
            case ast.Subscript(value=ast.Name(id=name)):
                return (self.file, name) in FRAGMENTS
            case ast.Name(id=name):
                if (self.file, name) in PASS_THROUGH or (self.file, name) in FRAGMENTS:
                    return True
                values = self.local.get(name) or self.module.get(name)
                return bool(values) and all(self.safe(v, depth + 1) for v in values)
            case ast.List(elts=elts) | ast.Tuple(elts=elts):
                # write_group([(sql, params), ...]): the first item of each pair is the SQL
                pairs = [e for e in elts if isinstance(e, ast.Tuple) and e.elts]
                return (
                    bool(pairs)
                    and len(pairs) == len(elts)
                    and all(self.safe(p.elts[0], depth + 1) for p in pairs)
                )
            case ast.ListComp(elt=ast.Tuple(elts=[first, *_])):
                return self.safe(first, depth + 1)
        return False

    def fragment(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            return (self.file, node.id) in FRAGMENTS
        return False


def sql_violations() -> tuple[list[str], int]:
    bad = []
    checked = 0
    for path in RUNTIME:
        module = parsed(path)
        for func in functions(module):
            checker = SqlChecker(path, func, module)
            for node in ast.walk(func):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in SQL_CALLS
                    and node.args
                    and _is_db_call(node.func.attr, node.func.value)
                ):
                    checked += 1
                    if not checker.safe(node.args[0]):
                        bad.append(f"{rel(path)}:{node.lineno}: {ast.unparse(node.args[0])[:80]}")
    return bad, checked


def _is_db_call(method: str, receiver: ast.expr) -> bool:
    """``self._db.execute``, ``db.execute``, ``conn.execute``, the store's ``self._w.write``:
    not a socket's ``writer.write``."""
    text = ast.unparse(receiver)
    if method.startswith("execute"):
        return "writer" not in text
    return text == "self._w"


def test_sql_is_built_only_with_parameters() -> None:
    bad, checked = sql_violations()
    assert bad == []
    assert checked > 50  # the scan saw the store's statements, it did not pass vacuously


def test_the_fragment_whitelist_holds_only_literals() -> None:
    """The whitelisted fragments are themselves literal SQL (or an int version number)."""
    sms = ast.parse((ROOT / "gateway/storage/sms.py").read_text())
    (used,) = literal_assignments(sms)["used"]
    assert isinstance(used, ast.Constant) and isinstance(used.value, str) and "?" in used.value
    migrations = ast.parse((ROOT / "gateway/storage/migrations.py").read_text())
    (value,) = literal_assignments(migrations)["MIGRATIONS"]
    assert isinstance(value, ast.Tuple) and all(
        isinstance(e, ast.Constant) and isinstance(e.value, str) for e in value.elts
    )


def test_the_checker_catches_what_it_should() -> None:
    sample = ast.parse(
        "async def f(db, name):\n"
        "    await db.execute(f'SELECT * FROM t WHERE n = {name}')\n"
        "    await db.execute('SELECT * FROM t WHERE n = %s' % name)\n"
        "    await db.execute('SELECT * FROM t WHERE n = {}'.format(name))\n"
        "    q = 'SELECT 1 WHERE ? = ?'\n"
        "    await db.execute(q, (name, name))\n"
    )
    checker = SqlChecker(ROOT / "gateway/x.py", sample.body[0], sample)
    calls = [
        n for n in ast.walk(sample) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "execute"
    ]
    assert [checker.safe(c.args[0]) for c in calls] == [False, False, False, True]


# -- format strings and shells -----------------------------------------------------------------

LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical", "log"}


def format_violations() -> list[str]:
    bad = []
    for path in RUNTIME:
        module = parsed(path)
        constants = {
            name
            for name, values in literal_assignments(module).items()
            if all(isinstance(v, ast.Constant) and isinstance(v.value, str) for v in values)
        }
        for node in ast.walk(module):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            where = f"{rel(path)}:{node.lineno}"
            receiver = node.func.value
            if node.func.attr == "format" and not _template(receiver, constants):
                bad.append(f"{where}: .format on {ast.unparse(receiver)[:60]}")
            if (
                node.func.attr in LOG_METHODS
                and isinstance(receiver, ast.Name)
                and receiver.id in ("log", "logger")
            ):
                message = (
                    node.args[1]
                    if node.func.attr == "log" and len(node.args) > 1
                    else (node.args or [None])[0]
                )
                extra = node.args[2:] if node.func.attr == "log" else node.args[1:]
                if message is not None and extra and not isinstance(message, ast.Constant):
                    bad.append(f"{where}: log message with arguments is not a literal")
        for node in ast.walk(parsed(path)):
            if (
                isinstance(node, ast.BinOp)
                and isinstance(node.op, ast.Mod)
                and isinstance(node.left, ast.JoinedStr)
            ):
                bad.append(f"{rel(path)}:{node.lineno}: %-format on an f-string")
    return bad


def _template(node: ast.expr, constants: set[str]) -> bool:
    """A literal template (or a name only ever bound to one), or the error registry's
    constant text (``self.spec.text``)."""
    if isinstance(node, ast.Constant) or (isinstance(node, ast.Name) and node.id in constants):
        return True
    return ast.unparse(node) in ("self.spec.text", "spec.text")


def test_nothing_from_a_peer_becomes_a_format_string() -> None:
    assert format_violations() == []


def test_no_shell_eval_or_pickle_in_runtime_code() -> None:
    banned_modules = {"subprocess", "pickle", "marshal", "shelve"}
    banned_calls = {"eval", "exec", "compile", "__import__"}
    banned_attrs = {("os", "system"), ("os", "popen"), ("os", "execv"), ("os", "execvp"), ("os", "spawnv")}
    bad = []
    for path in RUNTIME:
        if path in NOT_RUNTIME:
            continue
        for node in ast.walk(parsed(path)):
            where = f"{rel(path)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + (
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
                )
                bad += [f"{where}: import {n}" for n in names if n and n.split(".")[0] in banned_modules]
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in banned_calls
            ):
                bad.append(f"{where}: {node.func.id}()")
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and (node.value.id, node.attr) in banned_attrs
            ):
                bad.append(f"{where}: {node.value.id}.{node.attr}")
            elif isinstance(node, ast.keyword) and node.arg == "shell":
                bad.append(f"{where}: shell=")
    assert bad == []
