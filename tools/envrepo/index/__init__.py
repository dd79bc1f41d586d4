"""The published index's contract, below every stage that reads it (lock, consume, publish):
how a reference names one of its versions."""
