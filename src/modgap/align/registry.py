"""Registry of alignment methods: the config names a method (or a preset variant) and its params.

``make(name, params)`` builds an estimator; ``params_table()`` renders every method's
hyper-parameters with their defaults and reasons (the documented ``PARAMS`` table).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modgap.align.base import AlignMethod
from modgap.align.classes import CLASS_PATHS, method_class
from modgap.errors import ConfigError


@dataclass(frozen=True)
class Entry:
    method: str  # key of CLASS_PATHS
    preset: dict[str, Any] = field(default_factory=dict)
    doc: str = ""

    @property
    def cls(self) -> type[AlignMethod]:
        return method_class(self.method)


REGISTRY: dict[str, Entry] = {
    "identity": Entry("identity", doc="no alignment (T_id, 'W/o Align')"),
    "unicorn": Entry("unicorn", doc="Unicorn mean shift y - mean(y), unnormalised"),
    "liang": Entry("liang", doc="Liang et al. shift along the gap direction"),
    "c3": Entry("c3", doc="C3 Align n(y - mu_y + mu_x + xi)"),
    "capdec": Entry("capdec", doc="CapDec noise injection n(y + xi)"),
    "capdec_offset": Entry("capdec", {"offset": True}, "CapDec + modality offset (= C3 Align operator)"),
    "decap": Entry("decap", doc="DeCap projection onto an image memory"),
    "standardise": Entry("standardise", doc="per-dimension standardisation (project ablation)"),
    "coral": Entry("coral", doc="full-covariance matching, CORAL = T_Sigma (project ablation)"),
    "blockwise": Entry("blockwise", doc="blockwise whitening-colouring BC ([RA] App. F)"),
    "realign": Entry("realign", doc="ReAlign: anchor + trace + centroid"),
    "realign_anchor": Entry("realign", {"steps": "anchor"}, "ReAlign step 1 only ([RA] Table 5)"),
    "realign_anchor_trace": Entry("realign", {"steps": "anchor_trace"}, "ReAlign steps 1+2 ([RA] Table 5)"),
    "anisoalign": Entry("anisoalign", doc="AnisoAlign, full (L_II + lambda_Phi L_Phi)"),
    "aniso_global_init": Entry("anisoalign", {"variant": "global_init"}, "[AA] Table 4: global init only"),
    "aniso_refine": Entry("anisoalign", {"variant": "refine"}, "[AA] Table 4: + refinement (L_base = MMD^2)"),
    "aniso_refine_lii": Entry("anisoalign", {"variant": "refine_lii"}, "[AA] Table 4: + refinement + L_II"),
    "aniso_refine_lphi": Entry("anisoalign", {"variant": "refine_lphi"}, "[AA] Table 4: + refinement + L_Phi"),
}


def make(name: str, params: dict[str, Any] | None = None) -> AlignMethod:
    """Build the estimator registered as ``name`` with ``params`` over the preset's."""
    try:
        entry = REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown alignment method {name!r}; known: {sorted(REGISTRY)}") from None
    obj = entry.cls(**{**entry.preset, **(params or {})})
    obj.name = name
    return obj


def params_table() -> str:
    """Markdown table of every method's hyper-parameters, defaults and reasons."""
    lines = ["| method | param | default | meaning and reason |", "|---|---|---|---|"]
    for cls in map(method_class, CLASS_PATHS):
        for key, p in cls.PARAMS.items():
            lines.append(f"| {cls.method} | `{key}` | `{p.default!r}` | {p.doc} |")
    lines += ["", "| registry name | class | preset | description |", "|---|---|---|---|"]
    for name, e in REGISTRY.items():
        lines.append(f"| {name} | {e.method} | `{e.preset}` | {e.doc} |")
    return "\n".join(lines) + "\n"
