"""The run workflow, as phases (see :mod:`app.workflows.run.workflow`)."""

from app.workflows.run.workflow import RunWorkflow

__all__ = ["RunWorkflow"]
