"""Smoke test run inside the built image: the tutorial stack imports and works."""

import matplotlib.pyplot as plt
import pandas as pd
from sklearn.linear_model import LinearRegression

frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [1.0, 3.0, 5.0, 7.0]})
model = LinearRegression().fit(frame[["x"]], frame["y"])
assert abs(model.coef_[0] - 2.0) < 1e-9, model.coef_
figure, axes = plt.subplots()
axes.plot(frame["x"], frame["y"])
print("tutorial stack OK")
