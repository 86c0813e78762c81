"""The registry-level schema: type and range of every alignment hyper-parameter, by name.

A name means the same thing in every method (``chunk_rows`` is always a row count), so one table
covers all of them; :func:`modgap.paramcheck.check_params` falls back to the default's type.
Choices among strings (``steps``, ``variant``, ...) stay in each method's ``_check_params``.
"""

from __future__ import annotations

from modgap.paramcheck import COUNT, FRACTION, NON_NEGATIVE, POSITIVE, SEED, Int, Num, Rule

ALIGN_RULES: dict[str, Rule] = {
    # sizes and counts: 0 rows per chunk or batch would loop forever or divide by zero
    **dict.fromkeys(
        (
            "chunk_rows",
            "block_rows",
            "memory_size",
            "stage1_batch",
            "stage2_batch",
            "stage1_max_rows",
            "stage2_max_rows",
            "quantile_knots",
            "score_width",
            "refiner_width",
            "graph_degree",
            "check_rows",
            "torch_threads",
        ),
        COUNT,
    ),
    "blas_threads": Int(1, nullable=True),
    # 0 hidden layers = a linear network (a tested configuration)
    "score_depth": Int(0),
    "refiner_depth": Int(0),
    # 0 steps/epochs is a legitimate "skip this training stage"; negative is a typo that would skip it silently
    "stage1_steps": Int(0),
    "stage2_epochs": Int(0),
    "seed": SEED,
    "stage1_lr": POSITIVE,
    "stage2_lr": POSITIVE,
    "tau": POSITIVE,
    "drift_step": POSITIVE,
    "sigma_min": POSITIVE,
    "sigma_max": POSITIVE,
    # noise std; 0 = no noise (an ablation); null = C3's noise_norm / sqrt(d) (CapDec rejects null itself)
    "sigma": Num(0, nullable=True),
    "noise_norm": NON_NEGATIVE,
    "stage1_ema": Num(0, 1, hi_open=True),
    **dict.fromkeys(("eps", "polar_eps", "v_eps", "frame_ridge_scale", "ridge_scale"), NON_NEGATIVE),
    "energy": FRACTION,
    "rank": Int(1, nullable=True),
    "wrap_terms": Int(1, nullable=True),
    "lambda_phi": Num(0, nullable=True),
    "shift_lambda": Num(nullable=True),
    **dict.fromkeys(("bound_theta", "bound_rho", "bound_v"), NON_NEGATIVE),
}
