"""Command-line flags generated from the models' parameters, so the CLI and the API share names, defaults
and ranges. A name two models share (``--resolution``, ``--fps``, ...) is one flag, read as the chosen
``--model``'s field."""

import argparse
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ValidationError

from core.contract.params import DEFAULT_MODEL, MODEL_NAMES, PARAMS_BY_MODEL, ModelParams


def add_model_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", choices=MODEL_NAMES, default=None, help=f"The model to run (default: {DEFAULT_MODEL})."
    )


def add_job_param_flags(
    parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None, models: tuple[str, ...] = MODEL_NAMES
) -> None:
    """Add ``--resolution``, ``--tile-size``, ``--prompt``, ... (one per field of the ``models``' parameters,
    or the fields in ``only``); values are checked by the chosen model's parameters in ``job_params_from_args``."""
    helps: dict[str, list[str]] = {}
    for model in models:
        for name, field in PARAMS_BY_MODEL[model].model_fields.items():
            if only is None or name in only:
                shown = "random" if field.default is None else field.default
                helps.setdefault(name, []).append(f"{model}: {field.description} (default: {shown})")
    for name, texts in helps.items():
        flag = "--" + name.replace("_", "-")
        if all(
            _is_bool(PARAMS_BY_MODEL[model], name) for model in models if name in PARAMS_BY_MODEL[model].model_fields
        ):
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=texts[0])
        else:
            parser.add_argument(flag, dest=name, default=None, help="; ".join(texts) if len(texts) > 1 else texts[0])


def job_params_from_args(args: argparse.Namespace, model: str | None = None) -> ModelParams:
    """The chosen model's parameters from the flags given; exits with the field's message on a bad value."""
    model = model or getattr(args, "model", None) or DEFAULT_MODEL
    params_type = PARAMS_BY_MODEL[model]
    given = {name: getattr(args, name) for name in params_type.model_fields if getattr(args, name, None) is not None}
    foreign = [
        name
        for other in MODEL_NAMES
        if other != model
        for name in PARAMS_BY_MODEL[other].model_fields
        if name not in params_type.model_fields and getattr(args, name, None) is not None
    ]
    if foreign:
        flags = ", ".join("--" + name.replace("_", "-") for name in dict.fromkeys(foreign))
        raise SystemExit(f"mimicmotion: error: {flags}: not a parameter of {model}")
    try:
        return params_type(**{name: _typed(params_type, name, value) for name, value in given.items()})
    except ValidationError as exc:
        messages = "; ".join(
            f"--{'-'.join(str(part) for part in error['loc']).replace('_', '-')}: {error['msg']} (model {model})"
            if error["loc"]
            else error["msg"]
            for error in exc.errors()
        )
        raise SystemExit(f"mimicmotion: error: {messages}") from None


def _is_bool(params_type: type[BaseModel], name: str) -> bool:
    return params_type.model_fields[name].annotation is bool


def _typed(params_type: type[BaseModel], name: str, value: Any) -> Any:
    """A flag's text as the field's type (the params are strict: "25" is not 25); left as is when it does not
    parse, so that validation names the field."""
    if not isinstance(value, str):
        return value
    annotation = params_type.model_fields[name].annotation
    kinds = {type(choice) for choice in get_args(annotation)} if get_origin(annotation) is Literal else set()
    target = int if annotation in (int, int | None) or kinds == {int} else float if annotation is float else None
    if target is None:
        return value
    try:
        return target(value)
    except ValueError:
        return value
