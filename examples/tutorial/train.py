"""Train a model in the curated tutorial environment (`envrepo run envrepo-tutorial -- python
train.py`): a logistic regression on the iris data scikit-learn ships, written to
./outputs/model.pkl, where Azure ML's scripts write their outputs."""

import json
import os
import pickle
from pathlib import Path

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

outputs = Path(os.environ.get("ENVREPO_OUTPUT_DIR", "outputs"))
outputs.mkdir(parents=True, exist_ok=True)
features, labels = load_iris(return_X_y=True)
train_x, test_x, train_y, test_y = train_test_split(features, labels, random_state=0)
model = LogisticRegression(max_iter=500).fit(train_x, train_y)
accuracy = model.score(test_x, test_y)
(outputs / "model.pkl").write_bytes(pickle.dumps(model))
(outputs / "metrics.json").write_text(json.dumps({"accuracy": accuracy}))
print(f"accuracy {accuracy:.3f}")
