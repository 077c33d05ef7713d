"""Command-line flags generated from JobParams, so the CLI and the API share names, defaults and ranges."""

import argparse
from typing import Any, Literal, get_args, get_origin

from pydantic import ValidationError

from core.contract.params import JobParams


def add_job_param_flags(parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None) -> None:
    """Add ``--resolution``, ``--tile-size``, ... (one per JobParams field, or the fields in ``only``)."""
    for name, field in JobParams.model_fields.items():
        if only is not None and name not in only:
            continue
        annotation = field.annotation
        default = field.default
        shown = "random" if default is None else default
        # A Literal field (sigma_schedule) is a string flag limited to its values.
        choices = get_args(annotation) if get_origin(annotation) is Literal else None
        flag_type = str if choices else float if annotation is float else int
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=flag_type,
            choices=choices,
            default=None,
            help=f"{field.description} (default: {shown})",
        )


def job_params_from_args(args: argparse.Namespace) -> JobParams:
    """Build JobParams from the flags given; argparse exits with the field's message on a bad value."""
    given: dict[str, Any] = {
        name: getattr(args, name)
        for name in JobParams.model_fields
        if getattr(args, name, None) is not None
    }
    try:
        return JobParams(**given)
    except ValidationError as exc:
        messages = "; ".join(
            f"--{'-'.join(str(part) for part in error['loc']).replace('_', '-')}: {error['msg']}"
            if error["loc"]
            else error["msg"]
            for error in exc.errors()
        )
        raise SystemExit(f"mimicmotion: error: {messages}") from None
