"""The training engine: epoch sources, steps, the trainer and its callbacks.

* :mod:`ncf.train.sources` - each epoch's shuffled rows (uniform / all / shared-softmax
  negatives; per-interaction weights such as recency as a wrapper);
* :mod:`ncf.train.steps` - one optimisation step per loss through autograd;
  :mod:`ncf.train.fused` (+ :mod:`ncf.train.kernels`) its hand-written twin;
* :mod:`ncf.train.trainer` - the loop and its callbacks (early stopping, divergence guard,
  checkpoints, progress/TensorBoard, the data-parallel stop broadcast);
* :mod:`ncf.train.optim`, :mod:`ncf.train.checkpoint`, :mod:`ncf.train.distributed`.
"""
