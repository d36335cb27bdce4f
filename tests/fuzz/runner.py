"""Run one case in a forked, limited child and judge what it did.

The parent has imported torch, torchvision and tlrules once; a case costs a fork, not an
interpreter start. The child gets an empty folder (``ROOT/case``) holding the case's files
as its working directory, stdin from the case's ``stdin`` bytes (most often none), stdout
and stderr on pipes, its own process group, ``RLIMIT_FSIZE`` 0 (any write to a regular
file fails; a case with an output file may write ``OUTPUT_FILE_CAP`` bytes) and an
address-space limit of what it inherited plus ``Limits.memory``. The parent kills the
whole group after ``Limits.seconds`` and reads max RSS and CPU time from ``os.wait4``.
"""

from __future__ import annotations

import contextlib
import faulthandler
import hashlib
import importlib
import logging
import os
import resource
import selectors
import shutil
import signal
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch  # noqa: F401  (imported before any fork: a case must not pay for it)
import torchvision  # noqa: F401

import tlrules.cli
import tlrules.engine
import tlrules.models

from .apicase import run_api_case, run_undo_case

# the extras, when installed, with the models the 'hf:' cases build: an 'hf:' case then
# costs what tlrules does, not seconds of lazy imports
for _optional in (
    "timm",
    "transformers",
    "transformers.models.auto.modeling_auto",
    "transformers.models.bert.modeling_bert",
    "transformers.models.llama.modeling_llama",
):
    with contextlib.suppress(ImportError):
        importlib.import_module(_optional)

GIB = 1024**3
OUTPUT_CAP = 256 * 1024
"""Bytes of stdout and of stderr kept per case (the rest is read and dropped)."""

OUTPUT_FILE_CAP = 64 * 1024 * 1024
"""Bytes a case that names an output file (``Case.writes``) may write."""

ROOT_TOKEN = "@ROOT@"
"""Replaced, in argv and in file contents, by the case's root folder (for absolute paths)."""

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # model specs such as 'tests.toys:small_cnn'
    sys.path.insert(0, str(REPO))


@dataclass(frozen=True)
class Case:
    """One input: files in the case folder, and what to run on them.

    ``files`` are paths relative to the case folder (``../outside/x`` lands beside it);
    ``links`` are symbolic links to create there (path -> target), ``fifos`` named pipes
    (no process ever opens them: a command that opened one would wait). ``argv`` is a
    ``tlrules`` command line; with ``api`` set, the child instead applies the policy file
    ``argv[0]`` to the fixture model ``api`` through the Python API (``apicase``; with
    several policy files, applies each in turn and undoes them in a random order).
    ``stdin`` is what the child reads on its standard input (``-`` for a policy);
    ``writes`` the one file in the case folder the command may write (its ``-o``): the
    child may then write up to ``OUTPUT_FILE_CAP`` bytes, the file must exist after an
    exit 0 or 1, and must not after an exit 2 (when ``writes`` is one of ``links``, the
    file it points to is the one written).
    """

    label: str
    argv: tuple[str, ...]
    files: Mapping[str, bytes] = field(default_factory=dict)
    links: Mapping[str, str] = field(default_factory=dict)
    fifos: tuple[str, ...] = ()
    api: str | None = None
    seed: int = 0
    expect: frozenset[int] = frozenset({0, 1, 2})
    stdin: bytes = b""
    writes: str | None = None


@dataclass(frozen=True)
class Limits:
    seconds: float = 10.0
    memory: int = 4 * GIB
    """Address space the child may add to what it inherits, and the bound on its max RSS."""


@dataclass
class Outcome:
    code: int | None  # the exit code, or None when a signal ended the child
    signal: int | None
    hung: bool
    seconds: float
    cpu: float
    max_rss: int  # bytes
    stdout: bytes
    stderr: bytes
    changed_files: list[str]
    problems: list[str] = field(default_factory=list)

    @property
    def broken(self) -> bool:
        return bool(self.problems)

    def usage_error(self) -> bool:
        """Whether stderr is click's answer to a malformed command line."""
        text = self.stderr.decode("utf-8", "replace")
        return text.startswith("Usage: ") and "\nError: " in text

    def last_line(self) -> str:
        lines = self.stderr.decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else ""


def run(case: Case, limits: Limits | None = None) -> Outcome:
    """Run ``case`` in a sandboxed child; the outcome, judged (``Outcome.problems``)."""
    limits = limits or Limits()
    root = Path(tempfile.mkdtemp(prefix="tlrules-fuzz-"))
    try:
        write_inputs(case, root)
        before = _tree(root)
        outcome = _fork(case, root, limits)
        outcome.changed_files = _diff(before, _tree(root))
        outcome.problems = judge(case, outcome, limits)
        return outcome
    finally:
        shutil.rmtree(root, ignore_errors=True)


def write_inputs(case: Case, root: Path) -> Path:
    """The case's files and links under ``root/case`` (returned), ``@ROOT@`` expanded;
    its stdin in ``root/stdin``."""
    folder = root / "case"
    folder.mkdir()
    (root / "stdin").write_bytes(case.stdin)
    for rel, data in case.files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.replace(ROOT_TOKEN.encode(), str(root).encode()))
    for rel, target in case.links.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, folder / rel)
    for rel in case.fifos:
        os.mkfifo(folder / rel)
    return folder


def judge(case: Case, out: Outcome, limits: Limits) -> list[str]:
    """What broke the promise, one line each (empty: the case held)."""
    problems = []
    err = out.stderr.decode("utf-8", "replace")
    if out.hung:
        problems.append(f"hang: still running after {limits.seconds:g} s")
    elif out.signal is not None:
        problems.append(f"crash: killed by {signal.Signals(out.signal).name}")
    elif out.code not in case.expect:
        what = " (a bug)" if out.code == 3 else ""
        problems.append(f"exit {out.code}{what}, expected one of {sorted(case.expect)}")
    if "Traceback" in err:
        problems.append("a traceback on stderr")
    lines = [line for line in err.splitlines() if line.strip()]
    if out.code == 2 and out.usage_error():
        pass  # click's own answer to a malformed command line: usage, then 'Error: ...'
    elif out.code == 2:
        if not any(line.startswith("error: ") for line in lines):
            problems.append("exit 2 without an 'error:' line")
        noise = [line for line in lines if not line.startswith("error: ")]
        if noise:
            problems.append(f"noise on stderr beside the error: {noise[0][:200]!r}")
    elif out.code == 0:  # an audit's own warnings go to stderr, one 'warning[CODE]:' each
        noise = [line for line in lines if not line.startswith("warning[")]
        if noise:
            problems.append(f"noise on stderr of a successful run: {noise[0][:200]!r}")
    problems += _written(case, out)
    if out.max_rss > limits.memory:
        problems.append(f"max RSS {out.max_rss / GIB:.2f} GiB over {limits.memory / GIB:g} GiB")
    return problems


def _written(case: Case, out: Outcome) -> list[str]:
    """Files written or changed but the case's own output file, which must exist after
    an exit 0 or 1 and must not after an exit 2 (a failed command leaves no file)."""
    allowed = _output_file(case)
    changed = [f for f in out.changed_files if f != allowed]
    problems = []
    if changed:
        problems.append(f"files written or changed: {', '.join(changed[:5])}")
    if allowed and out.code in (0, 1) and allowed not in out.changed_files:
        problems.append(f"exit {out.code} without writing {case.writes!r}")
    if allowed and out.code == 2 and allowed in out.changed_files:
        problems.append(f"exit 2, yet {case.writes!r} was written")
    return problems


def _output_file(case: Case) -> str | None:
    """The file the case's ``-o`` writes, relative to the case's root: ``case/NAME``, or
    the file a link among ``links`` points to."""
    if not case.writes:
        return None
    target = case.links.get(case.writes)
    if target is None:
        return f"case/{case.writes}"
    return os.path.normpath(os.path.join("case", os.path.dirname(case.writes), target))


def _tree(root: Path) -> dict[str, str]:
    """Every entry under ``root``: its kind and, for a file, a digest of its bytes."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            found[rel] = "link:" + os.readlink(path)
        elif path.is_file():
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[rel] = "dir"
    return found


def _diff(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def _fork(case: Case, root: Path, limits: Limits) -> Outcome:
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child never returns
        try:
            os.close(out_r)
            os.close(err_r)
            _child(case, root / "case", limits, out_w, err_w)
        finally:
            os._exit(70)
    os.close(out_w)
    os.close(err_w)
    status, usage, hung, streams = _watch(pid, (out_r, err_r), started + limits.seconds)
    return Outcome(
        code=os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        signal=None if os.WIFEXITED(status) else os.WTERMSIG(status),
        hung=hung,
        seconds=time.monotonic() - started,
        cpu=usage.ru_utime + usage.ru_stime,
        max_rss=usage.ru_maxrss * 1024,
        stdout=streams[0],
        stderr=streams[1],
        changed_files=[],
    )


def _watch(
    pid: int, fds: tuple[int, int], deadline: float
) -> tuple[int, resource.struct_rusage, bool, list[bytes]]:
    """Read the child's output until it ends or ``deadline`` passes (then kill its group)."""
    streams = [bytearray(), bytearray()]
    selector = selectors.DefaultSelector()
    for i, fd in enumerate(fds):
        selector.register(fd, selectors.EVENT_READ, i)
    hung = False
    ended: tuple[int, int, resource.struct_rusage] | None = None
    while True:
        for key, _ in selector.select(timeout=0.02):
            chunk = os.read(key.fd, 65536)
            if not chunk:
                selector.unregister(key.fd)
                os.close(key.fd)
            elif len(streams[key.data]) < OUTPUT_CAP:
                streams[key.data] += chunk[: OUTPUT_CAP - len(streams[key.data])]
        if ended is None:
            waited = os.wait4(pid, os.WNOHANG)
            if waited[0] == pid:
                ended = waited
                _kill_group(pid)  # whatever it started ends with it
            elif time.monotonic() > deadline:
                hung = True
                _kill_group(pid)
                ended = os.wait4(pid, 0)
        if ended is not None and (not selector.get_map() or time.monotonic() > deadline + 5):
            break
    for key in list(selector.get_map().values()):
        os.close(key.fd)
    selector.close()
    return ended[1], ended[2], hung, [bytes(s) for s in streams]


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _child(case: Case, folder: Path, limits: Limits, out_w: int, err_w: int) -> None:
    """In the forked child: isolate, limit, run the case, exit with its code."""
    os.setpgid(0, 0)
    stdin = os.open(folder.parent / "stdin", os.O_RDONLY)
    os.dup2(stdin, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    _reopen_std_streams()
    os.chdir(folder)
    faulthandler.disable()  # pytest's, if any: a real interpreter has none
    sys.breakpointhook = sys.__breakpointhook__
    sys.excepthook = sys.__excepthook__
    for name in ("TLRULES_DEBUG", "PYTEST_CURRENT_TEST"):
        os.environ.pop(name, None)
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    _default_warnings()
    _limit(limits, OUTPUT_FILE_CAP if case.writes else 0)
    argv = [a.replace(ROOT_TOKEN, str(folder.parent)) for a in case.argv]
    code = _exit_code(lambda: _entry(case, argv))
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:  # as the interpreter: output that cannot be written ends with 120
        code = 120
    os._exit(code)


def _reopen_std_streams() -> None:
    """``sys.std*`` on fds 0-2 as a real interpreter opens them (stdout strict UTF-8,
    stderr with backslash escapes), and logging handlers that wrote to the parent's
    streams (e.g. pytest's capture) moved to the new ones."""
    old = {id(sys.stdout): "stdout", id(sys.stderr): "stderr"}
    old.update({id(sys.__stdout__): "stdout", id(sys.__stderr__): "stderr"})
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, logging.StreamHandler) and id(handler.stream) in old:
                handler.setStream(getattr(sys, old[id(handler.stream)]))


def _limit(limits: Limits, file_size: int) -> None:
    inherited = _address_space()
    cap = int(inherited + limits.memory)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write fails (EFBIG), visibly
    cpu = int(limits.seconds) + 2
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _address_space() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _default_warnings() -> None:
    """The interpreter's default warning filters (pytest's 'error' must not leak in), and
    warnings shown on stderr as the interpreter shows them (pytest records them instead),
    so that a warning reaching the user is seen as noise."""
    warnings.resetwarnings()
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.simplefilter("ignore", category)
    warnings.showwarning = _show_on_stderr


def _show_on_stderr(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: str | None = None,
) -> None:
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _entry(case: Case, argv: list[str]) -> int:
    if case.api is None:
        return tlrules.cli.main(argv)
    if len(argv) > 1:  # several policies applied in turn, then undone in a random order
        return run_undo_case(case.api, argv, case.seed)
    return run_api_case(case.api, argv[0], case.seed)


def _exit_code(command: Callable[[], int]) -> int:
    """``command()``'s code, or what the interpreter would exit with when it raises."""
    try:
        return command()
    except SystemExit as done:
        if done.code is None or isinstance(done.code, int):
            return done.code or 0
        print(done.code, file=sys.stderr)
        return 1
    except BaseException:
        traceback.print_exc()
        return 1
