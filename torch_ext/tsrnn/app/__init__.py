"""The applications built on tsrnn, apart from the library (``import tsrnn`` loads only torch and the ops):
the seed notebook's forecasting job (``forecast``: TorchRNNForecaster with a backend switch and its training;
``job``: data, metrics, rollout, gate heatmaps; ``report``: the HTML report) and the benchmark (``bench``).
Their extra dependencies (numpy, plotly, tqdm) are the package's ``app`` extra: ``pip install "tsrnn[app]"``.
"""

from .forecast import TorchRNNForecaster

__all__ = ["TorchRNNForecaster"]
