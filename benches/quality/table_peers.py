#!/usr/bin/env python3
"""Churn on a snapshot table: scikit-learn's LogisticRegression and
HistGradientBoostingClassifier against Rapport, on the same rows.

Splits the table 70/30 (stratified, seeded), writes it with a split column
`rapport_split` ("test" for the held-out rows), fits both peers on the
training rows and prints their held-out ROC AUC and ECE (10 equal-width
bins, as Rapport's `churn.ece`). Rapport then trains on the written file with
`split_column = "rapport_split"`, so its holdout metrics are on the same rows:

    python3 benches/quality/table_peers.py ../shared/data/mlc_churn.csv churn yes 42 /tmp/t.csv
"""
import sys

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def ece(p, y, bins=10):
    edges = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = edges == b
        if m.any():
            total += m.sum() / len(p) * abs(p[m].mean() - y[m].mean())
    return total


def main():
    path, label, positive, seed, out = sys.argv[1:6]
    drop = sys.argv[6].split(",") if len(sys.argv) > 6 and sys.argv[6] else []
    df = pd.read_csv(path)
    y = (df[label].astype(str).str.lower() == positive.lower()).astype(int).values
    train, test = train_test_split(np.arange(len(df)), test_size=0.3, stratify=y, random_state=int(seed))
    split = np.array(["train"] * len(df), dtype=object)
    split[test] = "test"
    df.assign(rapport_split=split).to_csv(out, index=False)
    X = df.drop(columns=[label] + drop)
    cat = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    num = [c for c in X.columns if c not in cat]
    pre = ColumnTransformer([("num", StandardScaler(), num), ("cat", OneHotEncoder(handle_unknown="ignore"), cat)])
    models = {
        "LogisticRegression": make_pipeline(pre, LogisticRegression(max_iter=2000)),
        "HistGradientBoosting": make_pipeline(
            ColumnTransformer([("num", "passthrough", num), ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), cat)]),
            HistGradientBoostingClassifier(random_state=int(seed)),
        ),
    }
    for name, m in models.items():
        m.fit(X.iloc[train], y[train])
        p = m.predict_proba(X.iloc[test])[:, 1]
        print(f"{name} roc_auc {roc_auc_score(y[test], p):.4f} ece {ece(p, y[test]):.4f}")


if __name__ == "__main__":
    main()
