"""Expose every DramaConfig field as a `--section.field VALUE` option, documented from its docstring."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import typing
from functools import cache
from typing import Any

from drama_agent.config import DramaConfig


@cache
def field_docs(cls: type) -> dict[str, str]:
    """The string literal that follows each annotated field in the class body."""
    body = ast.parse(inspect.getsource(cls)).body[0].body
    docs = {}
    for node, following in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def _parser_for(value: Any, choices: tuple[Any, ...] | None):
    if isinstance(value, bool):

        def parse_bool(text: str) -> bool:
            lowered = text.lower()
            if lowered not in {"true", "false", "1", "0", "yes", "no"}:
                raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
            return lowered in {"true", "1", "yes"}

        return parse_bool
    if isinstance(value, tuple):
        item = type(value[0])
        return lambda text: tuple(item(part) for part in text.split(","))
    return type(value)


def add_config_arguments(parser: argparse.ArgumentParser, base: DramaConfig | None = None) -> None:
    """Add one option per leaf field of DramaConfig (defaults shown are the `xs` preset's)."""
    base = base or DramaConfig.preset("xs")
    group = parser.add_argument_group("config fields (override the preset; e.g. --train.lr 1e-4)")
    for section in dataclasses.fields(base):
        value = getattr(base, section.name)
        if not dataclasses.is_dataclass(value):
            continue
        docs = field_docs(type(value))
        hints = typing.get_type_hints(type(value))
        for leaf in dataclasses.fields(value):
            default = getattr(value, leaf.name)
            hint = hints[leaf.name]
            literal = typing.get_args(hint) if typing.get_origin(hint) is typing.Literal else None
            group.add_argument(
                f"--{section.name}.{leaf.name}",
                dest=f"cfg__{section.name}__{leaf.name}",
                type=_parser_for(default, literal),
                choices=literal,
                default=None,
                metavar=type(default).__name__.upper(),
                help=f"{docs.get(leaf.name, '')} (xs: {default})",
            )


def apply_config_arguments(cfg: DramaConfig, args: argparse.Namespace) -> DramaConfig:
    """Return `cfg` with every option the user gave on the command line applied (validated together)."""
    changes = {}
    for dest, value in vars(args).items():
        if dest.startswith("cfg__") and value is not None:
            _, section, name = dest.split("__")
            changes[f"{section}.{name}"] = value
    return cfg.replace_paths(changes)
