"""Background jobs of a session: started, watched, read a piece at a time, stopped.

``session.jobs.start("python -m http.server 8000")`` starts a command in the background and
returns a :class:`Job` with an id (``job-1``, ``job-2``, ... per session). The job runs in a
process group of its own (``setsid``) under a small shell that records its exit code, and
everything it prints goes to a log file in the sandbox. From then on:

- :meth:`Jobs.status` says whether it is running, or how it ended (exit code);
- :meth:`Jobs.output` returns what it printed since the last look, the head and the tail when
  that is more than the budget; with ``wait`` it first waits (up to that many seconds) for the job
  to end, passing each new chunk to ``on_output`` as it is printed;
- :meth:`Jobs.stop` stops the whole process group (SIGTERM, then SIGKILL after a grace period).

Each operation is written once as steps (:func:`langchain_e2b._tool_base.call`) and run by a
blocking or an async driver, as the tools are. Jobs are listed per session and stopped when the
session closes. A job does not survive its sandbox: after a restart its status says so.
"""

from __future__ import annotations

import builtins
import itertools
import shlex
import threading
import time
import uuid
from collections.abc import Generator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from langchain_e2b._sdk import OUTPUT_DIR, OutputCallback
from langchain_e2b._tool_base import Call, adrive, call, drive
from langchain_e2b.errors import E2BToolInputError

if TYPE_CHECKING:
    from langchain_e2b.session import E2BSandboxSession

JOBS_DIR = f"{OUTPUT_DIR}/jobs"
STOP_GRACE = 3.0
"""Seconds between SIGTERM and SIGKILL when a job is stopped."""
DEFAULT_OUTPUT_BYTES = 16_000
MAX_WAIT = 600.0

State = Literal["running", "exited", "stopped", "lost"]

JobSteps = Generator[Call, Any, Any]


@dataclass
class Job:
    """One background job.

    Attributes:
        id: ``job-N``, unique in its session.
        command: The command as given.
        pid: The job's process id (also its process group id).
        log_path: Where its stdout and stderr go, inside the sandbox.
        sandbox_id: The sandbox it runs in.
        state: ``running``, ``exited``, ``stopped`` (by :meth:`Jobs.stop`) or ``lost`` (its
            sandbox was replaced).
        exit_code: Its exit code once it ended (128 + signal number when a signal ended it).
        read_bytes: How much of its log has been returned by :meth:`Jobs.output` so far.
        started_at: ``time.time()`` when it started.
    """

    id: str
    command: str
    pid: int | None
    log_path: str
    sandbox_id: str | None
    state: State = "running"
    exit_code: int | None = None
    read_bytes: int = 0
    started_at: float = 0.0

    def describe(self) -> str:
        """One line for the model: what runs, and how it is (or ended)."""
        command = self.command if len(self.command) <= 80 else self.command[:77] + "..."
        if self.state == "running":
            ran = time.time() - self.started_at
            how = f"running for {ran:.0f} s (pid {self.pid})"
        elif self.state == "lost":
            how = (
                "lost: its sandbox stopped and was replaced by a new one, so the job no longer "
                "runs (start it again if it is still needed)"
            )
        elif self.state == "stopped":
            how = f"stopped (exit code {self.exit_code})"
        else:
            how = f"exited with code {self.exit_code}"
        return f"{self.id} `{command}`: {how}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy."""
        return asdict(self)


@dataclass
class JobOutput:
    """What :meth:`Jobs.output` returns: the new output and the job as it is now."""

    job: Job
    text: str
    start: int
    """Byte offset in the log where ``text`` starts."""
    end: int
    """Byte offset where it ends: the next look starts there."""
    omitted: int
    """Bytes of the middle left out (0 when all the new output fit)."""

    def render(self) -> str:
        """The text the model reads."""
        lines = [self.job.describe() + "."]
        if self.end == self.start:
            lines.append("No new output since the last look.")
        else:
            lines.append(f"New output (bytes {self.start}-{self.end} of {self.job.log_path}):")
            lines.append(self.text.rstrip("\n"))
            if self.omitted:
                lines.append(
                    f"[{self.omitted} bytes of the middle not shown; read them from "
                    f"{self.job.log_path} if needed]"
                )
        return "\n".join(lines)


def _paths(job_id: str, token: str) -> tuple[str, str]:
    base = f"{JOBS_DIR}/{job_id}-{token}"
    return f"{base}.pid", f"{base}.exit"


def _launcher(command: str, pid_file: str, exit_file: str, limit: float | None) -> str:
    """The shell that runs ``command`` in its own process group and records its exit code."""
    inner = f"bash -c {shlex.quote(command)} </dev/null"
    if limit is not None:
        inner = f"timeout -k 5 {limit:g} {inner}"
    return (
        f"mkdir -p {JOBS_DIR}\n"
        f"if command -v setsid >/dev/null; then setsid {inner} & else {inner} & fi\n"
        f'child=$!; echo "$child" > {pid_file}\n'
        f'wait "$child"; echo "$?" > {exit_file}.tmp && mv {exit_file}.tmp {exit_file}'
    )


def _look(job: Job, exit_file: str, budget: int) -> str:
    """One command: exit code (or ``running``), log size, then the new output within budget."""
    log = shlex.quote(job.log_path)
    half = max(budget // 2, 1)
    offset = job.read_bytes
    return (
        f"E=$(cat {exit_file} 2>/dev/null); S=$(stat -c %s {log} 2>/dev/null || echo 0)\n"
        f'printf "%s %s\\n" "${{E:-running}}" "$S"\n'
        f"N=$((S-{offset}))\n"
        f'if [ "$N" -le {2 * half} ]; then tail -c +{offset + 1} {log} | head -c "$N"\n'
        f"else tail -c +{offset + 1} {log} | head -c {half}; printf '\\n{_CUT}\\n'; "
        f"tail -c +$((S-{half}+1)) {log} | head -c {half}; fi"
    )


_CUT = "\x1elangchain-e2b-cut"


class Jobs:
    """The background jobs of one session (``session.jobs``), sync and async.

    Args:
        session: The session the jobs run in.
    """

    def __init__(self, session: E2BSandboxSession) -> None:
        self.session = session
        self._jobs: dict[str, Job] = {}
        self._tokens: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    # --- bookkeeping ---------------------------------------------------------------------

    def list(self) -> list[Job]:
        """Every job started through this session, oldest first (as last seen; no I/O)."""
        with self._lock:
            return list(self._jobs.values())

    def get(self, job_id: str) -> Job:
        """The job ``job_id``.

        Raises:
            E2BToolInputError: No such job in this session (the message lists the jobs there are).
        """
        with self._lock:
            job = self._jobs.get(job_id.strip())
            known = ", ".join(self._jobs) or "none yet"
        if job is None:
            raise E2BToolInputError(
                f"There is no job {job_id!r} in this sandbox session (jobs: {known}). Start one "
                "with run_command and background=true."
            )
        return job

    def _exit_file(self, job: Job) -> str:
        return _paths(job.id, self._tokens[job.id])[1]

    def _check_sandbox(self, job: Job) -> bool:
        """Whether the job's sandbox is still the session's; marks the job lost if not."""
        current = self.session.sandbox_id
        if job.state == "running" and current is not None and current != job.sandbox_id:
            job.state = "lost"
        return job.state != "lost"

    # --- operations, written once as steps -----------------------------------------------

    def steps_start(self, command: str, cwd: str | None, timeout: float | None = None) -> JobSteps:
        """Steps of :meth:`start`; they return ``(job, the launcher's CommandResult)``."""
        if not command.strip():
            raise E2BToolInputError("command must not be empty.")
        with self._lock:
            job_id = f"job-{next(self._ids)}"
        token = uuid.uuid4().hex[:8]
        pid_file, exit_file = _paths(job_id, token)
        session = self.session
        result = yield call(
            session.run_command,
            session.arun_command,
            _launcher(command, pid_file, exit_file, timeout),
            cwd=cwd,
            background=True,
        )
        # The launcher writes the job's pid at once; wait for it (briefly) so `pid` is the job's.
        found = yield call(
            session.run_command,
            session.arun_command,
            f"for i in $(seq 100); do [ -s {pid_file} ] && break; sleep 0.02; done; "
            f"cat {pid_file} 2>/dev/null",
            timeout=30,
        )
        text = found.stdout.strip()
        job = Job(
            id=job_id,
            command=command,
            # Without the pid file (a sandbox with no setsid or a slow start), the launcher's.
            pid=int(text) if text.isdigit() else result.pid,
            log_path=str(result.log_path),
            sandbox_id=result.sandbox_id,
            started_at=time.time(),
        )
        with self._lock:
            self._jobs[job_id] = job
            self._tokens[job_id] = token
        return job, result

    def steps_status(self, job_id: str) -> JobSteps:
        """Steps of :meth:`status`."""
        job = self.get(job_id)
        if job.state != "running" or not self._check_sandbox(job):
            return job
        session = self.session
        done = yield call(
            session.run_command,
            session.arun_command,
            f"cat {self._exit_file(job)} 2>/dev/null || echo running",
            timeout=30,
        )
        if self._check_sandbox(job):  # the command may have found the sandbox gone
            self._settle(job, done.stdout.strip().splitlines()[-1:] or ["running"])
        return job

    def _settle(self, job: Job, words: builtins.list[str]) -> None:
        word = words[0].strip() if words else "running"
        if word.lstrip("-").isdigit() and job.state == "running":
            job.exit_code = int(word)
            job.state = "exited"

    def steps_output(
        self, job_id: str, wait: float, budget: int, on_output: OutputCallback | None
    ) -> JobSteps:
        """Steps of :meth:`output`."""
        job = self.get(job_id)
        if not 0 <= wait <= MAX_WAIT:
            raise E2BToolInputError(f"wait must be between 0 and {MAX_WAIT:g} seconds.")
        if not self._check_sandbox(job):
            return JobOutput(job, "", job.read_bytes, job.read_bytes, 0)
        session = self.session
        if wait > 0 and job.state == "running" and job.pid is not None:
            # Follow the log until the job ends or `wait` passes; each chunk reaches on_output.
            # When the job has ended, its launcher writes the exit code a moment later: give it
            # that moment, so the look below does not report a finished job as running.
            exit_file = shlex.quote(self._exit_file(job))
            follow = (
                f"timeout {wait:g} tail -c +{job.read_bytes + 1} --pid={job.pid} -f "
                f"{shlex.quote(job.log_path)}; "
                f"if ! kill -0 {job.pid} 2>/dev/null; then "
                f"for _ in $(seq 30); do [ -e {exit_file} ] && break; sleep 0.1; done; fi; true"
            )
            yield call(
                session.run_command,
                session.arun_command,
                follow,
                timeout=wait + 30,
                on_output=on_output,
            )
        look = yield call(
            session.run_command,
            session.arun_command,
            _look(job, self._exit_file(job), budget),
            timeout=60,
        )
        if not self._check_sandbox(job):  # the commands may have found the sandbox gone
            return JobOutput(job, "", job.read_bytes, job.read_bytes, 0)
        first, _, rest = look.stdout.partition("\n")
        words = first.split()
        self._settle(job, words[:1])
        size = int(words[1]) if len(words) > 1 and words[1].isdigit() else job.read_bytes
        start = job.read_bytes
        omitted = 0
        if _CUT in rest:
            head, _, tail = rest.partition(f"\n{_CUT}\n")
            shown = len(head.encode()) + len(tail.encode())
            omitted = max(size - start - shown, 0)
            rest = f"{head}\n[... {omitted} bytes omitted ...]\n{tail}"
        job.read_bytes = max(size, start)
        return JobOutput(job, rest, start, job.read_bytes, omitted)

    def steps_stop(self, job_id: str) -> JobSteps:
        """Steps of :meth:`stop`."""
        job = self.get(job_id)
        yield from self._steps_stop_many([job])
        return job

    def _steps_stop_many(self, jobs: builtins.list[Job]) -> JobSteps:
        """Stop several jobs with one command: SIGTERM to all, one grace period, SIGKILL."""
        jobs = [j for j in jobs if j.state == "running" and self._check_sandbox(j)]
        if not jobs:
            return None
        pids = " ".join(str(j.pid) for j in jobs)
        exits = " ".join(self._exit_file(j) for j in jobs)
        stop = (
            f"for P in {pids}; do kill -TERM -- -$P 2>/dev/null || kill -TERM $P 2>/dev/null; "
            "done\n"
            f"for i in $(seq {int(STOP_GRACE * 10)}); do alive=; for P in {pids}; do "
            "kill -0 -- -$P 2>/dev/null || kill -0 $P 2>/dev/null && alive=1; done; "
            '[ -z "$alive" ] && break; sleep 0.1; done\n'
            f"for P in {pids}; do kill -KILL -- -$P 2>/dev/null; kill -KILL $P 2>/dev/null; done\n"
            f"for F in {exits}; do for i in $(seq 50); do [ -s $F ] && break; sleep 0.02; done; "
            'echo "$(cat $F 2>/dev/null || echo gone)"; done'
        )
        session = self.session
        done = yield call(session.run_command, session.arun_command, stop, timeout=60)
        words = done.stdout.split()
        for job, word in zip(jobs, words + ["gone"] * len(jobs), strict=False):
            if self._check_sandbox(job):
                job.state = "stopped"
                job.exit_code = int(word) if word.lstrip("-").isdigit() else None
        return None

    # --- public methods ------------------------------------------------------------------

    def start(self, command: str, *, cwd: str | None = None, timeout: float | None = None) -> Job:
        """Start ``command`` (bash) in the background; its output goes to ``job.log_path``.

        Args:
            command: The command line.
            cwd: Working directory; relative to the session's ``cwd``.
            timeout: Seconds after which the job is killed (exit code 124); no limit by default.
        """
        job, _ = drive(self.steps_start(command, cwd, timeout))
        return cast(Job, job)

    async def astart(
        self, command: str, *, cwd: str | None = None, timeout: float | None = None
    ) -> Job:
        """Async :meth:`start`."""
        job, _ = await adrive(self.steps_start(command, cwd, timeout))
        return cast(Job, job)

    def status(self, job_id: str) -> Job:
        """The job, with its state and exit code brought up to date."""
        return cast(Job, drive(self.steps_status(job_id)))

    async def astatus(self, job_id: str) -> Job:
        """Async :meth:`status`."""
        return cast(Job, await adrive(self.steps_status(job_id)))

    def output(
        self,
        job_id: str,
        *,
        wait: float = 0,
        max_bytes: int = DEFAULT_OUTPUT_BYTES,
        on_output: OutputCallback | None = None,
    ) -> JobOutput:
        """What the job printed since the last look (head and tail past ``max_bytes``).

        Args:
            job_id: The job.
            wait: Seconds to wait first for the job to end, following its output.
            max_bytes: Most bytes returned; past it, the first and last halves.
            on_output: Called as ``on_output(stream, text)`` with each chunk while waiting.
        """
        return cast(JobOutput, drive(self.steps_output(job_id, wait, max_bytes, on_output)))

    async def aoutput(
        self,
        job_id: str,
        *,
        wait: float = 0,
        max_bytes: int = DEFAULT_OUTPUT_BYTES,
        on_output: OutputCallback | None = None,
    ) -> JobOutput:
        """Async :meth:`output`; ``on_output`` may be a coroutine function."""
        return cast(JobOutput, await adrive(self.steps_output(job_id, wait, max_bytes, on_output)))

    def stop(self, job_id: str) -> Job:
        """Stop the job's process group (SIGTERM, SIGKILL after a grace period)."""
        return cast(Job, drive(self.steps_stop(job_id)))

    async def astop(self, job_id: str) -> Job:
        """Async :meth:`stop`."""
        return cast(Job, await adrive(self.steps_stop(job_id)))

    def running(self) -> builtins.list[Job]:
        """The jobs last seen running in the session's current sandbox."""
        return [j for j in self.list() if j.state == "running" and self._check_sandbox(j)]

    def stop_all(self) -> None:
        """Stop every running job (the session does this when it closes); failures are ignored."""
        running = self.running()
        if running:
            try:
                drive(self._steps_stop_many(running))
            except Exception:  # the sandbox may be gone already, and its jobs with it
                for job in running:
                    job.state = "lost"

    async def astop_all(self) -> None:
        """Async :meth:`stop_all`."""
        running = self.running()
        if running:
            try:
                await adrive(self._steps_stop_many(running))
            except Exception:  # the sandbox may be gone already, and its jobs with it
                for job in running:
                    job.state = "lost"


__all__ = ["Job", "JobOutput", "Jobs"]
