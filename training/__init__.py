"""Retraining the HoechstScore model from multiplex immunofluorescence (mIF) slides.

Pipeline (``python -m training.retrain``): label cells on the mIF marker channels
(:mod:`training.label`), cut Hoechst patches with their label masks (:mod:`training.dataset`),
train the U-Net (:mod:`training.train`), evaluate it on held-out patches (:mod:`training.evaluate`)
and export/install it as a model card + safetensors (:mod:`training.export`). No Qt, ever: the
same code runs on a workstation, a headless server and under ``torchrun`` on a GPU cluster.
"""
