"""modgap.gap: modality-gap statistics and diagnostics (spec gap-theory.md).

- :mod:`~modgap.gap.marginal`  unpaired statistics: C_lambda, O_q vs q/d, G_mu, G_Sigma, spectra, ranks
- :mod:`~modgap.gap.paired`    paired residuals: Sigma_r, D_center, R_dist, R_energy, A_r, E(K), d_eff, gain, eta_U
- :mod:`~modgap.gap.frame`     ReAlign fixed frame: beta/gamma, delta/zeta, kappa_eff, coupling, leakage, vMF
- :mod:`~modgap.gap.phantom`   phantom drift: Monte Carlo vs the second-order formula
- :mod:`~modgap.gap.transforms` AnisoAlign diagnostic transforms T_id, T_mu, T_Sigma, T_perm, T_alpha
- :mod:`~modgap.gap.dynamics`  gap dynamics while training a tiny open_clip dual encoder from scratch
- :mod:`~modgap.gap.stage`, :mod:`~modgap.gap.report`, :mod:`~modgap.gap.figures`, :mod:`~modgap.gap.commands`
"""

from modgap.gap.frame import Frame, decompose, fit_frame, mean_bias
from modgap.gap.marginal import MarginalStats, marginal_stats
from modgap.gap.paired import PairedMoments, aniso_summary, frame_summary, paired_moments
from modgap.gap.phantom import phantom_drift_2nd, phantom_drift_mc

__all__ = [
    "Frame",
    "MarginalStats",
    "PairedMoments",
    "aniso_summary",
    "decompose",
    "fit_frame",
    "frame_summary",
    "marginal_stats",
    "mean_bias",
    "paired_moments",
    "phantom_drift_2nd",
    "phantom_drift_mc",
]
