"""Variance of the life-table S(t) from DP noise in its cells, for bands that include it.

The released curves come from a life table on *noised* counts: each cell (failures d_k,
censored c_k, survivors r and, with delayed entry, entries e_k) carries the sum of the
nodes' independent noise shares, of total variance v = sum over nodes of sigma_node^2.
S is a smooth function of the cells away from the clipping guards, so the delta method
gives Var_noise S(t_j) = v * sum_x (dS(t_j)/dx)^2 over the cells x. The band variance is
Greenwood (sampling) + this term; :mod:`models.curves` turns it into a log(-log) band.

Gradient (notation of :mod:`models.life_table`; 0-based intervals k, indicator [.]):

    n_k = sum_{i>=k} (d_i + c_i) + r - w c_k               without entries
    n_k = sum_{i<=k} e_i - sum_{i<k} (d_i + c_i) - w c_k   with entries (r unused)

    dn_k/dd_i = [i >= k]              | -[i < k]
    dn_k/dc_i = [i > k] + (1 - w)[i = k] | -[i < k] - w [i = k]
    dn_k/dr   = 1                     | 0
    dn_k/de_i = 0                     | [i <= k]

    h_k = d_k / n_k:          dh_k/dx = ([x = d_k] - h_k dn_k/dx) / n_k
    log S(t_{j+1}) = sum_{k<=j} log(1 - h_k):
                              dS(t_{j+1})/dx = -S(t_{j+1}) sum_{k<=j} (dh_k/dx) / (1 - h_k)

Mixed federations (:class:`models.curve_estimator.HistogramSum`): a node without an entry
histogram adds its noisy total (the sum of its d, c, r cells) to e_0, so its noise in a
cell x moves x and e_0 together. With ``implicit_var`` the part of ``cell_var`` coming from
such nodes, and ``entry_var`` the variance of each explicit entry cell:

    Var_noise S = sum_{x in d,c,r} [(cell_var - implicit_var) g_x^2
                                    + implicit_var (g_x + g_{e_0})^2]
                  + entry_var sum_k g_{e_k}^2,          g = dS/dcell

Intervals where the life table's guards act (n_k <= 0, or h_k = 1 so that S is 0 from
there on) contribute no gradient: S is locally constant there. The clipping of negative
counts at 0 is ignored (treated as the identity), which is exact wherever the noisy count
is positive.
"""

from __future__ import annotations

import numpy as np

from models.life_table import LifeTable

__all__ = ["survival_jacobian", "noise_survival_var", "band_survival_var"]


def survival_jacobian(table: LifeTable, *, with_entries: bool = False) -> np.ndarray:
    """dS(t_j)/dcell, shape (J + 1, n_cells); cells are [d_0..d_{J-1}, c_0..c_{J-1}, r]
    then, ``with_entries``, [e_0..e_{J-1}]. Row 0 (S(t_0) = 1) is zero."""
    n, h, w = np.asarray(table.n_at_risk), np.asarray(table.hazard), table.censor_weight
    n_intervals = len(n)
    dn = _risk_set_jacobian(n_intervals, w, with_entries)
    select_d = np.zeros_like(dn)
    select_d[:, :n_intervals] = np.eye(n_intervals)
    live = (n > 0) & (h < 1.0)
    scale = np.zeros(n_intervals)
    np.divide(1.0, n * (1.0 - h), out=scale, where=live)
    # d log(1 - h_k)/dx = -(dh_k/dx) / (1 - h_k) = -([x = d_k] - h_k dn_k/dx) / (n_k (1 - h_k))
    dlog = -(select_d - h[:, None] * dn) * scale[:, None]
    dlog_s = np.cumsum(dlog, axis=0)
    survival = np.asarray(table.survival)
    return np.vstack([np.zeros((1, dn.shape[1])), survival[1:, None] * dlog_s])


def noise_survival_var(
    table: LifeTable,
    cell_var: float,
    *,
    with_entries: bool = False,
    entry_var: float | None = None,
    implicit_var: float = 0.0,
) -> np.ndarray:
    """Delta-method Var S(t_j) per edge from independent noise of variance ``cell_var``
    in every exit and survivor cell (0 for no noise). ``with_entries``: entry cells carry
    ``entry_var`` (default ``cell_var``) and ``implicit_var`` of ``cell_var`` comes from
    nodes whose noisy totals were put at e_0 (see the module docstring)."""
    entry_var = cell_var if entry_var is None else entry_var
    for name, value in (("cell_var", cell_var), ("entry_var", entry_var)):
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be finite and >= 0, got {value}")
    if not 0.0 <= implicit_var <= cell_var:
        raise ValueError(f"implicit_var must lie in [0, cell_var], got {implicit_var}")
    if cell_var == 0 and entry_var == 0:
        return np.zeros(len(table.survival))
    jacobian = survival_jacobian(table, with_entries=with_entries)
    n_exit_cells = 2 * len(table.hazard) + 1
    exits = jacobian[:, :n_exit_cells]
    variance = (cell_var - implicit_var) * np.sum(exits**2, axis=1)
    if not with_entries:
        return variance + implicit_var * np.sum(exits**2, axis=1)
    entries = jacobian[:, n_exit_cells:]
    variance += implicit_var * np.sum((exits + entries[:, :1]) ** 2, axis=1)
    return variance + entry_var * np.sum(entries**2, axis=1)


def band_survival_var(
    table: LifeTable,
    cell_var: float,
    *,
    with_entries: bool = False,
    entry_var: float | None = None,
    implicit_var: float = 0.0,
) -> np.ndarray:
    """Var S(t_j) for the band: Greenwood (sampling) + the DP-noise term."""
    noise = noise_survival_var(
        table,
        cell_var,
        with_entries=with_entries,
        entry_var=entry_var,
        implicit_var=implicit_var,
    )
    return np.asarray(table.greenwood_var) + noise


def _risk_set_jacobian(n_intervals: int, censor_weight: float, with_entries: bool) -> np.ndarray:
    """dn_k/dcell, shape (J, n_cells), in the cell order of :func:`survival_jacobian`."""
    k = np.arange(n_intervals)[:, None]
    i = np.arange(n_intervals)[None, :]
    same = (i == k).astype(float)
    if with_entries:
        dd = -(i < k).astype(float)
        dc = dd - censor_weight * same
        dr = np.zeros((n_intervals, 1))
        de = (i <= k).astype(float)
        return np.hstack([dd, dc, dr, de])
    dd = (i >= k).astype(float)
    dc = (i > k).astype(float) + (1.0 - censor_weight) * same
    dr = np.ones((n_intervals, 1))
    return np.hstack([dd, dc, dr])
