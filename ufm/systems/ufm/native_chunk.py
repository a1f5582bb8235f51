"""The UFM's whole-chunk optimiser kernel: :func:`ufm.kernels.native.ufm_chunk` registered for
:class:`UFMSpec` (:func:`ufm.kernels.register_chunk`), which :func:`ufm.optimize` takes by default.

It applies to the balanced model the fused value-and-gradient kernel implements (fields ``K, n, d,
loss, bias, dtype`` and the lambdas at their meaning, ``N = n K``), float32 or float64 parameters
on CPU, ``K, d <= 64``, and plain gradient descent or heavy-ball momentum (:func:`ufm.gd`,
:func:`ufm.momentum` without Nesterov); everything else runs the XLA path.
"""

from __future__ import annotations

from ...kernels import register_chunk
from ...kernels.native import supports, ufm_chunk
from .objective import UFMParams
from .spec import UFMSpec
from .structure import _fused_applies

__all__ = ["ufm_chunk_kernel"]


def ufm_chunk_kernel(spec: UFMSpec, rule, dtype):
    """``None`` where the native chunk does not apply (module docstring), else its runner.
    :func:`ufm.optimize` asks only for inputs on CPU devices."""
    if rule is None or rule[0] not in ("gd", "momentum") or not _fused_applies(spec):
        return None
    if not supports(spec.K, spec.d, dtype):
        return None
    learning_rate = rule[1]
    beta = rule[2] if rule[0] == "momentum" else None

    def run(
        spec, params, trace, loss, grad_norm, status, steps, limits, *, num_records, record_every
    ):
        lambdas = (spec.lambda_W, spec.lambda_H, spec.lambda_b)
        tr = None if trace is None else (trace.W, trace.H, trace.b)
        W, H, b, tr, loss, grad_norm, status, steps, rl, rg = ufm_chunk(
            params.W,
            params.H,
            params.b,
            tr,
            loss,
            grad_norm,
            status,
            steps,
            lambdas,
            limits,
            n=spec.n,
            kind=spec.loss,
            bias=spec.bias,
            learning_rate=learning_rate,
            beta=beta,
            num_records=num_records,
            record_every=record_every,
        )
        trace = None if tr is None else UFMParams(*tr)
        records = {"loss": rl, "grad_norm": rg}
        return UFMParams(W, H, b), trace, loss, grad_norm, status, steps, records

    return run


register_chunk(UFMSpec, ufm_chunk_kernel)
