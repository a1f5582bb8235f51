"""The closed-form Hessian spectrum of the deep linear UFM at deep neural collapse
(:func:`ufm.systems.ufm.deep_spectra.dnc_spectrum`, docs/theory.md section 8.5) against the dense
Hessian in float64 (every eigenvalue with its multiplicity), against the UFM's closed form for
``L = 1`` (section 8.1), and its zero modes against the symmetry-orbit count."""

import jax
import numpy as np
import pytest

import ufm
from ufm.systems.deep_ufm.theory import dnc_point
from ufm.systems.ufm import collapse_spectrum
from ufm.systems.ufm.deep_spectra import dnc_spectrum

CASES = [  # per-layer lambdas, unequal widths, L = 2 and 3; large enough lambdas that t < 0.9
    dict(K=3, n=2, L=2, widths=(4, 5), lambda_H1=4e-2, lambda_W=(3e-2, 5e-2)),
    dict(K=2, n=3, L=3, widths=(3, 2, 4), lambda_H1=6e-2, lambda_W=(3e-2, 8e-2, 5e-2)),
]

_dense = jax.jit(ufm.hessian.hessian_spectrum_dense)


@pytest.mark.parametrize("kw", CASES)
def test_dnc_spectrum_matches_the_dense_hessian(kw):
    spec = ufm.DeepUFMSpec(activation="identity", **kw)
    sp = dnc_spectrum(spec)
    full = sp.full()
    assert full.size == spec.num_params
    ev = np.sort(np.asarray(_dense(spec, dnc_point(spec))))
    np.testing.assert_allclose(ev, full, rtol=0, atol=1e-12)
    # the zeros are the O(d_i) orbits at the L interfaces: K(K-1)/2 + K (d_i - K) each
    K, L = spec.K, spec.L
    orbit = sum(K * (K - 1) // 2 + K * (d - K) for d in spec.widths)
    assert sp.zero_modes == orbit == int(np.sum(np.abs(ev) < 1e-12))
    assert sp.smallest_nonzero == pytest.approx(float(ev[orbit]), rel=1e-10)
    # the DNC minimum's branch t > (L-1)/(2L): the symmetric block is positive definite
    p = dnc_point(spec)
    t = float(p.H1[0, 0]) * float(np.prod([W[0, 0] for W in p.Ws]))
    assert (L - 1) / (2 * L) < t < 0.9


def test_one_layer_is_the_ufm_closed_form_and_errors():
    deep = ufm.DeepUFMSpec(K=3, n=2, L=1, widths=4, activation="identity", lambda_H1=5e-3)
    flat = collapse_spectrum(ufm.UFMSpec(K=3, n=2, d=4, loss="mse", lambda_W=5e-3, lambda_H=5e-3))
    a, b = dnc_spectrum(deep), flat
    np.testing.assert_allclose(a.full(), b.full(), rtol=1e-12, atol=1e-15)
    assert a.zero_modes == b.zero_modes
    with pytest.raises(ufm.SpecError, match="identity"):
        dnc_spectrum(deep.replace(activation="relu"))
    with pytest.raises(ufm.SpecError, match="origin"):
        dnc_spectrum(
            ufm.DeepUFMSpec(
                K=3, n=2, L=2, widths=3, activation="identity", lambda_H1=1.0, lambda_W=1.0
            )
        )


def test_dnc_spectrum_matches_lanczos_and_block_arrow():
    spec = ufm.DeepUFMSpec(activation="identity", **CASES[0])
    full = dnc_spectrum(spec).full()
    p = dnc_point(spec)
    lz = ufm.hessian.lanczos_extremes(spec, p, jax.random.key(0), num_matvecs=spec.num_params)
    np.testing.assert_allclose(float(lz.lambda_max), full[-1], rtol=1e-9)
    ba = ufm.hessian.block_arrow(spec, p)
    # eigenvalues below sigma: none below -1e-9 (a minimum), the zero modes just above 0, and
    # everything up to the smallest non-zero eigenvalue (below lambda_H1, where the shift holds)
    top = min(dnc_spectrum(spec).smallest_nonzero, spec.lambda_H1) * (1 - 1e-6)
    for sigma in (-1e-9, 1e-9, top):
        count = int(ufm.hessian.block_arrow_inertia(ba, sigma))
        assert count == int(np.sum(full < sigma)), (sigma, count)
