"""Documentation of the result columns of ``spectral`` rows (registered on import; they appear in
docs/results.md and in the Parquet metadata of every file)."""

from __future__ import annotations

from ufm.runs.schema import register_column_docs

_Z = "Z (projector output) of the training samples (at most 10000)"
_ZB = "Z on the evaluation batches of batch_size samples, mean over batches"
_ZH = "Z_hat (Z after the method's transform) on the evaluation batches, mean over batches"

COLUMN_DOCS = {
    "fail_epoch": "spectral: epoch in which the seed's training failed (diverged / nan; -1: never)",
    "erank_h": "spectral: covariance effective rank exp(H(lambda/sum lambda)) of H (encoder "
    "output) of the training samples",
    "rankme_h": "spectral: RankMe (Garrido et al. 2023) of H, singular values, uncentred",
    "count_h": "spectral: covariance eigenvalues of H above eval_rel * lambda_max (count)",
    "erank_z": f"spectral: covariance effective rank of {_Z}",
    "rankme_z": f"spectral: RankMe of {_Z}",
    "count_z": f"spectral: eigenvalues above eval_rel * lambda_max of {_Z} (count)",
    "erank_zb": f"spectral: covariance effective rank of {_ZB}",
    "rankme_zb": f"spectral: RankMe of {_ZB}",
    "count_zb": f"spectral: eigenvalues above eval_rel * lambda_max of {_ZB}",
    "erank_zhat": f"spectral: covariance effective rank of {_ZH}",
    "rankme_zhat": f"spectral: RankMe of {_ZH}",
    "count_zhat": f"spectral: eigenvalues above eval_rel * lambda_max of {_ZH}",
    "knn_acc_h": "spectral: test accuracy of the weighted cosine kNN (eval_knn_k neighbours) on H",
    "probe_acc_h": "spectral: test accuracy of the ridge linear probe on H",
    "knn_acc_z": "spectral: test accuracy of the weighted cosine kNN on Z",
    "probe_acc_z": "spectral: test accuracy of the ridge linear probe on Z",
    "spectrum_z": f"spectral: trace-normalised covariance spectrum (descending, list) of {_Z}",
    "spectrum_zb": f"spectral: trace-normalised covariance spectrum (list) of {_ZB}",
    "spectrum_zhat": f"spectral: trace-normalised covariance spectrum (list) of {_ZH}",
    "eval_knn_k": "spectral: neighbours of the kNN probe (setting)",
    "eval_ridge": "spectral: penalty (times n_train) of the ridge linear probe (setting)",
    "eval_rel": "spectral: relative eigenvalue threshold of the count_* columns (setting)",
}

register_column_docs(COLUMN_DOCS)
