"""SpectralSpec validation, presets, rows of a training result and the stability verdict.

Cheap tests (nothing is trained): every field of the spec refuses bad values with a one-line
error naming the field (the rule the conformance test applies to sweepable systems; this system is
not sweepable, so it is checked here), cross-field errors, presets, the row builder on a hand-made
:class:`ufm.optim.TrainResult` with a failed seed, and the power-sweep criteria on hand-made rows.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import ufm
from ufm.optim import TrainResult
from ufm.systems import spectral as sp
from ufm.systems.spectral.experiment import arch_spec
from ufm.systems.spectral.summary import StabilityCriteria, power_sweep, stable_range, verdict


def _bad_values(value):
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [-(10**9)]
    if isinstance(value, float):
        return [-1.0, float("nan")]
    if isinstance(value, str):
        return ["no-such-option"]
    return []


def test_every_field_refuses_bad_values_with_a_one_line_error_naming_it():
    spec = sp.SpectralSpec()
    checked = 0
    for field in dataclasses.fields(spec):
        for bad in _bad_values(getattr(spec, field.name)):
            with pytest.raises(ufm.core.SpecError) as err:
                dataclasses.replace(spec, **{field.name: bad})
            msg = str(err.value)
            assert field.name in msg and len(msg.splitlines()) == 1, (field.name, msg)
            checked += 1
    assert checked >= 30


@pytest.mark.parametrize(
    "changes,field",
    [
        ({"data": "latent", "encoder": "cnn"}, "encoder"),
        ({"data_dir": "/tmp"}, "data_dir"),
        ({"data": "folder"}, "data_dir"),
        ({"batch_size": 2000}, "batch_size"),
        ({"latent_rank": 70, "data": "latent"}, "latent_rank"),
        ({"method": "intl", "side": "feature", "proj_dim": 4}, "proj_dim"),
        ({"method": "power", "eps": 0.0}, "eps"),
        ({"widths": (0,)}, "widths"),
        ({"beta": -0.5}, "beta"),
        ({"p": 2.5}, "p"),
    ],
)
def test_inconsistent_fields_are_refused(changes, field):
    with pytest.raises(ufm.core.SpecError, match=field) as err:
        sp.SpectralSpec(**changes)
    assert len(str(err.value).splitlines()) == 1


def test_labels_presets_and_the_shared_architecture():
    assert sp.SpectralSpec(method="alignment").label() == "alignment"
    assert sp.SpectralSpec(method="intl", side="instance").label() == "intl T=4 (instance)"
    assert ufm.core.spec_label(sp.SpectralSpec(method="wmse", eps=0.0)) == "wmse"
    digits = sp.PRESETS["digits"].specs()
    labels = [s.label() for s in digits]
    assert len(set(labels)) == len(labels) == 12
    powers = sorted(
        s.p if s.method == "power" else 0.5
        for s in digits
        if s.method != "alignment" and s.method in ("power", "whiten")
    )
    assert powers == [0.0, 0.25, 0.4, 0.5, 0.6, 0.75, 1.0]
    # every method of a comparison starts from the same network per seed
    assert len({arch_spec(s) for s in digits if s.side == "feature"}) == 1
    with pytest.raises(ufm.core.SpecError, match="data_dir"):
        sp.PRESETS["paper"].specs()
    with pytest.raises(ufm.core.SpecError, match="preset"):
        sp.get_preset("huge")
    assert ufm.core.get_system("spectral").sweepable is False


def _result(epoch_loss, status, steps, history):
    return TrainResult(
        params=None,
        status=np.asarray(status, np.int8),
        steps=np.asarray(steps),
        epoch_loss=np.asarray(epoch_loss, np.float64),
        history=history,
        history_epochs=np.array([0, 2, 4]),
        steps_per_epoch=5,
        wall_time=1.0,
        compile_time=0.5,
    )


def test_rows_of_a_run_with_a_failed_seed():
    loss = np.array([[1.0, 1.0], [0.5, 0.9], [0.4, np.nan], [0.3, np.nan]])  # seed 1 fails in 3
    hist = {"erank_z": np.arange(6.0).reshape(3, 2), "spectrum_z": np.ones((3, 2, 4)) / 4}
    spec = sp.SpectralSpec(method="whiten")
    rows = sp.rows_from_result(spec, [7, 9], _result(loss, [0, 3], [20, 10], hist))
    assert rows["seed"].tolist() == [7, 7, 7, 9, 9, 9]
    assert rows["epoch"].tolist() == [0, 2, 4] * 2
    assert rows["status"].tolist() == ["max_steps"] * 3 + ["max_steps", "max_steps", "nan"]
    assert rows["fail_epoch"].tolist() == [-1] * 3 + [3] * 3
    assert rows["steps"].tolist() == [0, 10, 20, 0, 10, 10]
    np.testing.assert_array_equal(rows["epoch_loss"][[1, 2, 4]], [0.5, 0.3, 0.9])
    assert np.isnan(rows["epoch_loss"][[0, 3, 5]]).all()
    assert rows["erank_z"].tolist() == [0.0, 2.0, 4.0, 1.0, 3.0, 5.0]
    assert rows["spectrum_z"].dtype == object and rows["spectrum_z"][0] == [0.25] * 4
    assert set(rows["label"]) == {"whiten (feature)"}


def _sweep_rows(table):
    """Rows of a hand-made p-sweep: ``table`` = [(p, erank_z, probe_acc_h, final/min loss, failed
    seeds)], two seeds each, checkpoints 0 and 10."""
    cols = {
        k: []
        for k in (
            "label method p side seed epoch status erank_z erank_zhat probe_acc_h knn_acc_h "
            "probe_acc_z epoch_loss"
        ).split()
    }
    for p, erank, acc, ratio, failed in table:
        for seed in (0, 1):
            for epoch, loss in ((0, np.nan), (5, 1.0), (10, ratio)):
                cols["label"].append(f"p{p}")
                cols["method"].append("whiten" if p == 0.5 else "power")
                cols["p"].append(0.5 if p == 0.5 else p)
                cols["side"].append("feature")
                cols["seed"].append(seed)
                cols["epoch"].append(epoch)
                bad = failed > seed and epoch == 10
                cols["status"].append("nan" if bad else "max_steps")
                for k, v in (("erank_z", erank), ("erank_zhat", erank), ("probe_acc_h", acc)):
                    cols[k].append(v)
                cols["knn_acc_h"].append(acc)
                cols["probe_acc_z"].append(acc)
                cols["epoch_loss"].append(loss)
    return {k: np.asarray(v) for k, v in cols.items()}


def test_power_sweep_criteria_and_the_stable_range():
    rows = _sweep_rows(
        [
            (0.0, 1.2, 0.90, 1.0, 0),  # collapsed
            (0.25, 2.0, 0.95, 1.0, 0),  # collapsed (2.0 < 0.5 * 20)
            (0.5, 20.0, 0.97, 1.0, 0),  # best
            (0.6, 18.0, 0.96, 1.0, 0),
            (0.75, 16.0, 0.96, 2.0, 0),  # loss blew up late
            (1.0, 15.0, 0.96, 1.0, 1),  # a seed failed
        ]
    )
    entries = power_sweep(rows, StabilityCriteria(collapse_frac=0.5, acc_drop=0.02, blowup=1.5))
    assert [e["p"] for e in entries] == [0.0, 0.25, 0.5, 0.6, 0.75, 1.0]
    assert [e["no_collapse"] for e in entries] == [False, False, True, True, True, True]
    assert [e["smooth"] for e in entries] == [True, True, True, True, False, True]
    assert [e["finite"] for e in entries] == [True] * 5 + [False]
    assert entries[0]["accuracy"] is False and entries[1]["accuracy"] is True
    assert stable_range(entries) == (0.5, 0.6)
    text = verdict(entries)
    assert "p in [0.5, 0.6]" in text and "1/2 seeds failed" in text
    assert "p = 0: erank Z 1.20 < 0.5 x the sweep's largest 20.00" in text
    assert "p = 0.75: final loss 2.00 x its minimum" in text
