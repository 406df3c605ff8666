"""The networks of the book, one module each (every model keeps its constructor arguments in
``hparams`` so that :func:`cryolab.train.load_model` can rebuild it from a checkpoint)."""
