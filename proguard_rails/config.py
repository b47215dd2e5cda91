"""Policy files: what a guard does with each category, in YAML or TOML.

Loaded by ``ProGuard(config=PATH)``, the ``PROGUARD_CONFIG`` variable and
``proguard-rails serve --config PATH`` (and ``check``/``scan``/``eval`` ``--config``)::

    # proguard.yaml
    version: 1
    fail_mode: closed           # what a guard error does: closed (block) | open (allow)
    out_of_policy: block        # a risk the model names outside the policy: block | allow | flag
    default: block              # unsafe categories not listed below: block | allow | flag
    labels: both                # which labels count: both | request | response
    categories:
      C1: allow                 # a main category covers its subcategories ...
      C1S1: block               # ... and the most specific id wins
      C3S3: flag                # allowed, with Decision.flagged (the moderation API reports it flagged)
      C9S1: {action: block, threshold: 0.3}   # judges with scores (lite): act from p(unsafe) >= 0.3
    taxonomy: my_policy.yaml    # optional custom taxonomy, relative to this file
    hold_out: [C5]              # optional: hide categories from the policy shown to the model

Every key is checked (unknown keys, bad ids, bad actions and thresholds outside [0, 1] are
errors that name the key and the file). Precedence: ``ProGuard(policy=...)`` wins over a
config file; an explicit ``fail_mode=`` argument wins over the file's ``fail_mode``; the
file's ``fail_mode`` wins over ``PROGUARD_FAIL_MODE``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigurationError
from .policy import Action, Policy
from .taxonomy import Taxonomy, normalize_id


class CategoryRule(BaseModel):
    """One category's entry: an action and, for judges with scores, a threshold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Action = "block"
    threshold: float | None = Field(None, ge=0.0, le=1.0, description="minimum p(unsafe) for the action")


class GuardConfig(BaseModel):
    """A validated policy file."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    version: Literal[1] = 1
    fail_mode: Literal["closed", "open"] | None = Field(
        None, description="what a guard error does; unset: the guard's setting (PROGUARD_FAIL_MODE)"
    )
    out_of_policy: Action = "block"
    default: Action = Field("block", description="action for unsafe categories not listed")
    unknown_category: Literal["block", "allow"] = "block"
    labels: Literal["both", "request", "response"] = "both"
    input_errors: Literal["block", "fail_mode"] = "block"
    unjudgeable: Literal["block", "allow"] = "block"
    categories: dict[str, Action | CategoryRule] = Field(default_factory=dict)
    taxonomy: str | None = Field(None, description="custom taxonomy YAML, relative to the config file")
    hold_out: list[str] = Field(default_factory=list)
    #: the file this came from (set by ``load_config``), for relative paths and messages
    source: str | None = Field(None, exclude=True)

    @field_validator("categories", mode="before")
    @classmethod
    def _check_ids(cls, v: Any) -> Any:
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise ValueError("categories must be a mapping of category id to an action or {action, threshold}")
        out: dict[str, Any] = {}
        for key, rule in v.items():
            nid = normalize_id(str(key))
            if nid is None:
                raise ValueError(f"{key!r} is not a category id (C<k> or C<k>S<j>)")
            if nid in out:
                raise ValueError(f"category {nid} is listed twice")
            out[nid] = rule
        return out

    @field_validator("hold_out", mode="before")
    @classmethod
    def _check_hold_out(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [v]
        return v

    # ------------------------------------------------------------------
    def rules(self) -> dict[str, CategoryRule]:
        return {k: (r if isinstance(r, CategoryRule) else CategoryRule(action=r)) for k, r in self.categories.items()}

    def to_policy(self, *, fail_mode: Literal["closed", "open"] | None = None) -> Policy:
        """The Policy this file describes; ``fail_mode`` is used when the file sets none."""
        rules = self.rules()
        return Policy(
            fail_mode=self.fail_mode or fail_mode or "closed",
            out_of_policy=self.out_of_policy,
            default_action=self.default,
            unknown_category=self.unknown_category,
            labels=self.labels,
            input_errors=self.input_errors,
            unjudgeable=self.unjudgeable,
            category_actions={k: r.action for k, r in rules.items()},
            thresholds={k: r.threshold for k, r in rules.items() if r.threshold is not None},
        )

    def load_taxonomy(self) -> Taxonomy | None:
        """The taxonomy the file names (with its hold-outs), or None for the default."""
        if not self.taxonomy and not self.hold_out:
            return None
        tax = Taxonomy.default()
        if self.taxonomy:
            path = Path(self.taxonomy)
            if not path.is_absolute() and self.source:
                path = Path(self.source).parent / path
            try:
                tax = Taxonomy.from_yaml(path)
            except (OSError, ValueError) as exc:
                raise ConfigurationError(f"{self.source or 'config'}: taxonomy {str(path)!r}: {exc}") from exc
        if self.hold_out:
            try:
                tax = tax.hold_out(self.hold_out)
            except (KeyError, ValueError) as exc:
                raise ConfigurationError(f"{self.source or 'config'}: hold_out: {exc}") from exc
        return tax

    def check_against(self, taxonomy: Taxonomy) -> None:
        """Raise if a listed category is in neither ``taxonomy`` nor the file's hold-outs (a typo
        would otherwise silently do nothing)."""
        held = [normalize_id(h) or h for h in self.hold_out]
        unknown = sorted(
            k for k in self.categories
            if k not in taxonomy and not any(k == h or k.startswith(h + "S") for h in held)
        )
        if unknown:
            raise ConfigurationError(
                f"{self.source or 'config'}: categories {', '.join(unknown)} are not in the policy "
                f"(its ids: {', '.join(taxonomy.ids()[:6])}, ...; see `proguard-rails taxonomy --yaml`)"
            )


def _format_validation(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  {loc}: {err['msg']}")
    return f"invalid policy file {source}:\n" + "\n".join(lines)


def parse_config(data: Any, *, source: str = "<config>") -> GuardConfig:
    """Validate already-parsed YAML/TOML data."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigurationError(f"invalid policy file {source}: the top level must be a mapping, "
                                 f"not {type(data).__name__}")
    try:
        cfg = GuardConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigurationError(_format_validation(exc, source)) from None
    return cfg.model_copy(update={"source": source})


def load_config(path: str | os.PathLike[str]) -> GuardConfig:
    """Read and validate a policy file (``.yaml``/``.yml`` or ``.toml``)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read policy file {str(p)!r}: {exc.strerror or exc}") from exc
    if p.suffix.lower() == ".toml":
        try:
            import tomllib
        except ImportError:  # Python 3.10
            raise ConfigurationError("TOML policy files need Python 3.11+; use YAML on 3.10") from None
        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"policy file {p} is not valid TOML: {exc}") from exc
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"policy file {p} is not valid YAML: {exc}") from exc
    return parse_config(data, source=str(p))


def as_config(config: GuardConfig | str | os.PathLike[str] | dict[str, Any]) -> GuardConfig:
    if isinstance(config, GuardConfig):
        return config
    if isinstance(config, dict):
        return parse_config(config, source="<dict>")
    return load_config(config)


__all__ = ["CategoryRule", "GuardConfig", "as_config", "load_config", "parse_config"]
