"""Score with the model train.py made, under Azure ML's contract: init() once, run(raw_data)
per request (`envrepo serve envrepo-tutorial --model outputs/model.pkl --entry-script
score.py`)."""

import json
import os
import pickle

model = None


def init():
    global model
    folder = os.environ["AZUREML_MODEL_DIR"]
    with open(os.path.join(folder, "model.pkl"), "rb") as handle:
        model = pickle.load(handle)


def run(raw_data):
    rows = json.loads(raw_data)["data"]
    return {"predictions": model.predict(rows).tolist()}
