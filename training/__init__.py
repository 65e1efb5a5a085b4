"""Training-time code for the gateway's local models (not imported by the gateway at run time).

Needs the ``train`` extra: ``pip install -e '.[train]'``. Entry point: ``edge-gateway model train``
(or ``python -m training.train_text``).
"""
