"""Scoring services: an entry script with Azure ML's contract and a model on top of an
environment's image, behind uvicorn (the app itself runs inside that image: `app.py`)."""
