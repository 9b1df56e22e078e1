"""Training new styles: the Johnson et al. 2016 recipe on the losses of :mod:`nst`.

``python -m train --style PAINTING --data PHOTOS --out RUN_DIR`` trains (``torchrun`` for
several processes), ``python -m train.export RUN_DIR`` re-exports a checkpoint and
``python -m train.publish RUN_DIR/export --repo USER/NAME`` uploads it to the Hub and adds
it to the zoo. Nothing here imports gradio or the app: it runs on bare GPU machines.
"""
