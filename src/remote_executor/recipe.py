"""Recipes: parse, say what is wrong, and add what the executor owns (sink, run id).

The recipe keeps its ``${NAME}`` placeholders: the ``datahub`` CLI expands them
from the values handed to it, so resolved secret values never reach a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from remote_executor.errors import RecipeError
from remote_executor.models import ExecutionRequest
from remote_executor.secrets.references import rename_references

# The child reads the GMS token for the injected sink from this variable.
TOKEN_ENV = "DATAHUB_GMS_TOKEN"
SERVER_ENV = "DATAHUB_GMS_URL"


@dataclass(frozen=True)
class PreparedRecipe:
    """The recipe the child runs, and what the executor changed in it, for the report."""

    text: str
    source_type: str
    sink_type: str | None = None
    notes: list[str] = field(default_factory=list)


def parse_recipe(text: str) -> dict[str, Any]:
    """Parse a YAML or JSON recipe; raise RecipeError that says what and where."""
    try:
        recipe = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise RecipeError(f"recipe is not valid YAML or JSON{where}: {problem}") from exc
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        # PyYAML's constructors raise these for values such as "when: 2001-13-45".
        raise RecipeError(f"recipe has a value YAML cannot read: {exc!r}") from exc
    if not isinstance(recipe, dict):
        raise RecipeError(
            f"recipe must be a mapping with a 'source' section, got {type(recipe).__name__}"
        )
    source = recipe.get("source")
    if source is None:
        raise RecipeError("recipe has no 'source' section: add source.type and source.config")
    if not isinstance(source, dict) or not isinstance(source.get("type"), str):
        raise RecipeError("recipe 'source' has no 'type' (e.g. type: postgres)")
    return recipe


def _strip_datahub_reporting(recipe: dict[str, Any], notes: list[str]) -> None:
    # A datahub reporter writes its own result to the request's urn (it is keyed
    # by run_id); the executor must stay the single writer of that result.
    reporting = recipe.get("reporting")
    if not isinstance(reporting, list):
        return
    kept = [r for r in reporting if not (isinstance(r, dict) and r.get("type") == "datahub")]
    if len(kept) != len(reporting):
        notes.append("Removed the recipe's 'datahub' reporter: the executor reports the result.")
        recipe["reporting"] = kept


def default_sink(
    gms_url: str | None, token: str | None, file_sink: Path | None
) -> dict[str, Any] | None:
    """The sink a recipe without one gets: datahub-rest to our GMS (with the token as
    ``${DATAHUB_GMS_TOKEN}``), else a file sink at ``file_sink`` if given."""
    if gms_url:
        config: dict[str, Any] = {"server": gms_url}
        if token:
            config["token"] = f"${{{TOKEN_ENV}}}"
        return {"type": "datahub-rest", "config": config}
    if file_sink is not None:
        return {"type": "file", "config": {"filename": str(file_sink)}}
    return None


def _sink_type(recipe: dict[str, Any]) -> str | None:
    sink = recipe.get("sink")
    kind = sink.get("type") if isinstance(sink, dict) else None
    return kind if isinstance(kind, str) else None


def prepare_recipe(
    request: ExecutionRequest, default_sink: dict[str, Any] | None
) -> PreparedRecipe:
    """The recipe as the child runs it: the default sink if it has none, run_id, pipeline_name."""
    # Names the CLI cannot expand (``${db-password}``) are renamed to variables it can.
    recipe = parse_recipe(rename_references(request.recipe))
    notes: list[str] = []
    if "sink" not in recipe and default_sink is not None:
        recipe["sink"] = default_sink
        target = default_sink["config"].get("server") or default_sink["config"].get("filename")
        notes.append(f"The recipe has no sink: added a {default_sink['type']} sink to {target}.")
    recipe["run_id"] = request.request_id
    if request.ingestion_source and not recipe.get("pipeline_name"):
        recipe["pipeline_name"] = request.ingestion_source
    _strip_datahub_reporting(recipe, notes)
    return PreparedRecipe(
        text=yaml.safe_dump(recipe, sort_keys=False),
        source_type=recipe["source"]["type"],
        sink_type=_sink_type(recipe),
        notes=notes,
    )
