"""Every shell and Python block of README.md and docs/*.md runs, as written, in a test of its own.

The conventions (docs/contributing.md says the same for writers):

- Blocks are fenced code blocks. One test per block, named ``PAGE:LINE`` (the line of its opening fence).
- The blocks of one page run in order, in one fresh directory of that page holding a copy of the
  repository's ``pricebooks/`` and ``examples/``, with this venv's ``rating`` and ``python`` first on PATH.
  A block's test first runs the page's earlier blocks that have not run yet (so ``-k`` on one block works).
- ``console``: run by bash as one script. A line starting with ``$ `` is a command; it goes on over the next
  lines while it ends with a backslash or leaves a quote open. Every other line is expected output: each
  must appear, in that order, among the lines the block printed (stdout and stderr together; trailing
  blanks ignored; ``...`` matches anything). Each command must exit 0, or N when the command ends with a
  comment ending in ``(exit code N)`` (``# (exit code N)``). Whatever a command started in the background
  (``&``) is stopped at the end of the block.
- ``sh`` / ``bash``: run by bash as one script with ``set -e``.
- ``python``: run with ``exec`` in a namespace of its own, in the page's directory.
- Anything else (yaml, json, text, toml) is not run, unless a marker makes it a file.
- Markers are HTML comments (invisible when rendered) on the line right before the opening fence:

  ``<!-- test: file NAME -->``      the block is the content of the file NAME, written when its turn comes;
  ``<!-- test: after-demo -->``     the block needs the data of ``rating demo`` (made once per session);
  ``<!-- test: free-port 8000 -->`` every ``8000`` in the block becomes a free port;
  ``<!-- test: not-run TWIN -->``   the block cannot run in CI as written (a million events, a remote Dask
                                    scheduler, a production database URL): the paragraph right before the
                                    marker must say "not run in CI", and the test function TWIN, somewhere
                                    under tests/, runs a twin of it that CI can afford;
  ``<!-- test: setup -->``          ``python3 -m venv .venv && .venv/bin/pip install ... && COMMAND``: the test
                                    runs in that venv already, so only COMMAND runs (without ``.venv/bin/``);
  ``<!-- test: ci-command -->``     the line ``.ci/run`` reads from README.md and runs: checked to be found there.

  Several markers go in one comment, separated by ``;`` (``<!-- test: after-demo; free-port 8000 -->``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: What a page's directory starts with: the example files the blocks name.
SHIPPED = ["pricebooks", "examples"]
RUN = {"console", "sh", "bash", "python"}
MARKER = re.compile(r"^<!-- test: (.*) -->$")
EXIT_CODE = re.compile(r"\(exit code (\d+)\)\s*$")
TIMEOUT = 120  # seconds for one block


@dataclass
class Block:
    """One fenced block of a page: where it is, its language, its text and the markers before it."""

    page: Path
    line: int
    language: str
    text: str
    markers: dict[str, str] = field(default_factory=dict)
    before: str = ""  # the paragraph before the markers (where a not-run block says so)

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def runs(self) -> bool:
        return "file" in self.markers or (self.language in RUN and "not-run" not in self.markers)


def parse(page: Path) -> list[Block]:
    """The fenced blocks of a page, each with the markers on the lines right before its fence."""
    lines = page.read_text().splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[index])
        if not fence:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        markers: dict[str, str] = {}
        above = index - 1
        while above >= 0 and (found := MARKER.match(lines[above].strip())):
            for marker in found.group(1).split(";"):
                key, _, value = marker.strip().partition(" ")
                markers[key] = value.strip()
            above -= 1
        paragraph: list[str] = []
        while above >= 0 and not lines[above].strip():
            above -= 1
        while above >= 0 and lines[above].strip():
            paragraph.insert(0, lines[above])
            above -= 1
        blocks.append(Block(page, index + 1, fence.group(1), "\n".join(lines[index + 1 : end]) + "\n", markers))
        blocks[-1].before = " ".join(paragraph)
        index = end + 1
    return blocks


BLOCKS = [block for page in PAGES for block in parse(page)]


def complete(command: str) -> bool:
    """Whether a console command is whole: no trailing backslash, no quote left open."""
    if command.endswith("\\"):
        return False
    try:
        shlex.split(command, comments=True)
    except ValueError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("RATING_DB", None)
    env.pop("RATING_PRICEBOOK", None)
    return env


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data of ``rating demo`` (the README's first command), made once for the blocks that need it."""
    where = tmp_path_factory.mktemp("demo")
    shutil.copytree(ROOT / "pricebooks", where / "pricebooks")
    done = subprocess.run(["rating", "demo"], cwd=where, env=environment(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return where


class Page:
    """A page's directory and how far its blocks have run."""

    def __init__(self, where: Path, demo: Path) -> None:
        self.where = where
        self.demo = demo
        self.done: set[int] = set()
        self.demo_copied = False
        where.mkdir()
        for name in SHIPPED:
            shutil.copytree(ROOT / name, where / name)

    def run(self, block: Block) -> None:
        """Run one block in the page's directory (its earlier blocks must have run)."""
        self.done.add(block.line)
        if "after-demo" in block.markers and not self.demo_copied:
            for name in ("rating-demo.db", "demo-events.jsonl"):
                shutil.copy(self.demo / name, self.where / name)
            self.demo_copied = True
        text = block.text
        if "free-port" in block.markers:
            text = text.replace(block.markers["free-port"], str(free_port()))
        if "file" in block.markers:
            (self.where / block.markers["file"]).write_text(text)
        elif "setup" in block.markers:
            self.setup(block, text)
        elif "ci-command" in block.markers:
            ci = (ROOT / ".ci" / "run").read_text()
            assert 'grep -m1 -E "^python3 -m venv \\.venv && .*pytest" README.md' in ci
            readme = (ROOT / "README.md").read_text().splitlines()
            picked = next(line for line in readme if re.match(r"^python3 -m venv \.venv && .*pytest", line))
            assert picked == text.strip(), f"{block.name}: .ci/run runs {picked!r}, not this block"
        elif block.language == "python":
            self.python(text)
        elif block.language == "console":
            self.console(block, text)
        else:
            self.script(block, "set -e\n" + text, expected=[], codes=[])

    def setup(self, block: Block, text: str) -> None:
        found = re.match(r"^python3 -m venv \.venv && \.venv/bin/pip install -e \S+ && (.*)$", text.strip())
        assert found, f"{block.name}: not a set-up line"
        command = found.group(1).replace(".venv/bin/", "")
        self.script(block, command + "\n", expected=[], codes=[])

    def python(self, text: str) -> None:
        cwd = os.getcwd()
        os.chdir(self.where)
        sys.path.insert(0, str(self.where))  # the modules earlier blocks wrote as files
        modules = set(sys.modules)
        try:
            exec(compile(text, "<docs block>", "exec"), {"__name__": "docs_block"})
        finally:
            os.chdir(cwd)
            sys.path.remove(str(self.where))
            for name in set(sys.modules) - modules:
                if getattr(sys.modules[name], "__file__", None) and str(self.where) in str(sys.modules[name].__file__):
                    del sys.modules[name]

    def console(self, block: Block, text: str) -> None:
        commands: list[str] = []
        expected: list[str] = []
        for line in text.splitlines():
            if commands and not complete(commands[-1]):
                commands[-1] += "\n" + line
            elif line.startswith("$ "):
                commands.append(line[2:])
            elif line.strip():
                expected.append(line.rstrip())
        assert commands, f"{block.name}: a console block without a command"
        codes = []
        script = []
        for number, command in enumerate(commands):
            wanted = EXIT_CODE.search(command.splitlines()[0]) or EXIT_CODE.search(command)
            codes.append(int(wanted.group(1)) if wanted else 0)
            script.append(command)
            script.append(f"printf '\\n@@exit {number} %d\\n' $? >&2")  # after output without a final newline
        self.script(block, "\n".join(script) + "\n", expected, codes)

    def script(self, block: Block, script: str, expected: list[str], codes: list[int]) -> None:
        # Output goes to a file, not a pipe: a server the block started in the background keeps a pipe open.
        log = self.where / f".block-{block.line}.log"
        with log.open("w") as sink:
            process = subprocess.Popen(
                ["bash", "-c", script + "kill $(jobs -p) 2>/dev/null\nexit 0\n" if codes else script],
                cwd=self.where,
                env=environment(),
                stdout=sink,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            try:
                process.wait(timeout=TIMEOUT)
            finally:
                with contextlib.suppress(ProcessLookupError):  # whatever the block left running in the background
                    os.killpg(process.pid, signal.SIGTERM)
                process.wait()
        output = log.read_text()
        log.unlink()
        lines = output.splitlines()
        shown = "\n".join(lines)
        if not codes:
            assert process.returncode == 0, f"{block.name} failed (exit code {process.returncode}):\n{shown}"
            return
        exits = {int(m.group(1)): int(m.group(2)) for m in re.finditer(r"@@exit (\d+) (\d+)", output)}
        for number, code in enumerate(codes):
            assert exits.get(number) == code, (
                f"{block.name}: command {number + 1} exited {exits.get(number)}, expected {code}:\n{shown}"
            )
        printed = [line.rstrip() for line in lines if not line.startswith("@@exit")]
        position = 0
        for want in expected:
            pattern = re.compile("^" + ".*".join(re.escape(part) for part in want.split("...")) + "$")
            while position < len(printed) and not pattern.match(printed[position]):
                position += 1
            assert position < len(printed), f"{block.name}: {want!r} not printed (in order):\n{shown}"
            position += 1


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory, demo: Path) -> dict[Path, Page]:
    return {page: Page(tmp_path_factory.mktemp("docs") / page.stem, demo) for page in PAGES}


@pytest.mark.parametrize("block", [block for block in BLOCKS if block.runs], ids=lambda block: block.name)
def test_block(block: Block, pages: dict[Path, Page]) -> None:
    page = pages[block.page]
    for earlier in BLOCKS:
        if earlier.page == block.page and earlier.line < block.line and earlier.runs and earlier.line not in page.done:
            page.run(earlier)
    if block.line not in page.done:
        page.run(block)


def test_every_shell_and_python_block_runs_or_has_a_twin() -> None:
    """A block that is not run says so where readers see it, and its twin test exists."""
    sources = "\n".join(path.read_text() for path in (ROOT / "tests").rglob("test_*.py"))
    for block in BLOCKS:
        if block.language in RUN and not block.runs:
            twin = block.markers["not-run"]
            assert "not run in ci" in block.before.lower(), f"{block.name}: say 'not run in CI' before the marker"
            assert re.search(rf"^def {re.escape(twin)}\(", sources, re.M), f"{block.name}: no test {twin}"


def test_markers_are_known() -> None:
    known = {"file", "after-demo", "free-port", "not-run", "setup", "ci-command"}
    for block in BLOCKS:
        assert set(block.markers) <= known, f"{block.name}: unknown marker {set(block.markers) - known}"
