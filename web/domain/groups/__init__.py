"""Groups (群组/呼叫组): destinations rung together under one strategy."""
