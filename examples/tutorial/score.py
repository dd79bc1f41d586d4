"""Score with the model train.py made, under Azure ML's contract: init() once, run(raw_data)
per request (`envrepo serve envrepo-tutorial --model outputs/model.pkl --entry-script
score.py`)."""

import json
import os
import pickle
from pathlib import Path

model = None


def init():
    global model
    model = pickle.loads((Path(os.environ["AZUREML_MODEL_DIR"]) / "model.pkl").read_bytes())


def run(raw_data):
    rows = json.loads(raw_data)["data"]
    return {"predictions": model.predict(rows).tolist()}
