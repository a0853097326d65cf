"""Tools for background jobs: ``job_status``, ``job_output`` and ``job_stop``.

``run_command`` with ``background=true`` starts a job (:mod:`langchain_e2b.jobs`); these tools let
the model watch it, read what it printed since it last looked, and stop it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from langchain_e2b._tool_base import Context, InjectedRuntime, SandboxTool, Steps
from langchain_e2b.jobs import MAX_WAIT, Job, JobOutput

OUTPUT_MARGIN = 400
"""Characters of the text budget kept for the status line and the markers around the output."""


def started_text(job: Job) -> str:
    """What ``run_command`` says after starting a job."""
    return (
        f"Started {job.id} in the background (pid {job.pid}). Its output goes to "
        f"{job.log_path}. Use job_output (job_id={job.id!r}) to read what it printed since "
        "you last looked (wait=seconds to wait for more or for its end), job_status to see "
        "whether it still runs and its exit code, job_stop to stop it."
    )


class JobIdInput(BaseModel):
    """Arguments of ``job_status`` and ``job_stop``."""

    job_id: str = Field(description="The job's id, e.g. 'job-1', as run_command returned it.")
    runtime: InjectedRuntime = None


class JobStatusInput(BaseModel):
    """Arguments of ``job_status``."""

    job_id: str | None = Field(
        default=None, description="The job's id, e.g. 'job-1'. Omit to list every job."
    )
    runtime: InjectedRuntime = None


class JobOutputInput(BaseModel):
    """Arguments of ``job_output``."""

    job_id: str = Field(description="The job's id, e.g. 'job-1', as run_command returned it.")
    wait: float = Field(
        default=0,
        ge=0,
        le=MAX_WAIT,
        description=(
            "Seconds to wait first for the job to finish (returns earlier when it does). 0 reads "
            "at once."
        ),
    )
    runtime: InjectedRuntime = None


class E2BJobStatusTool(SandboxTool):
    """Whether a background job still runs, or its exit code; or every job of the sandbox."""

    name: str = "job_status"
    description: str = (
        "Tell whether a background job (started by run_command with background=true) is still "
        "running, or how it ended and its exit code. Omit job_id to list every job."
    )
    args_schema: type[BaseModel] = JobStatusInput

    def _steps(self, context: Context, /, *, job_id: str | None = None) -> Steps:
        jobs = context.session.jobs
        if job_id is not None:
            job = yield from jobs.steps_status(job_id)
            return job.describe() + ".", job.to_dict()
        listed = []
        for known in jobs.list():
            listed.append((yield from jobs.steps_status(known.id)))
        if not listed:
            return "No background jobs were started in this sandbox.", {"jobs": []}
        text = "\n".join(job.describe() for job in listed)
        return text, {"jobs": [job.to_dict() for job in listed]}


class E2BJobOutputTool(SandboxTool):
    """What a background job printed since the last look, and whether it still runs."""

    name: str = "job_output"
    description: str = (
        "Read what a background job printed (stdout and stderr) since you last looked, and "
        "whether it still runs. Use wait to give it time to finish first."
    )
    args_schema: type[BaseModel] = JobOutputInput

    def _steps(self, context: Context, /, *, job_id: str, wait: float = 0) -> Steps:
        budget = max(context.max_output_chars - OUTPUT_MARGIN, 100)
        out: JobOutput = yield from context.session.jobs.steps_output(
            job_id, wait, budget, context.on_output
        )
        artifact: dict[str, Any] = {
            **out.job.to_dict(),
            "start": out.start,
            "end": out.end,
            "omitted": out.omitted,
        }
        return out.render(), artifact


class E2BJobStopTool(SandboxTool):
    """Stop a background job and everything it started."""

    name: str = "job_stop"
    description: str = (
        "Stop a background job and the processes it started (SIGTERM, then SIGKILL after a few "
        "seconds). Its output stays readable with job_output."
    )
    args_schema: type[BaseModel] = JobIdInput

    def _steps(self, context: Context, /, *, job_id: str) -> Steps:
        job = yield from context.session.jobs.steps_stop(job_id)
        return job.describe() + ".", job.to_dict()


__all__ = ["E2BJobOutputTool", "E2BJobStatusTool", "E2BJobStopTool", "started_text"]
