# The pipeline image: this project on the exact lock it is tested with, so every component's pod can import
# components.* and mtrank.* (Transform and Trainer code is named by dotted path, not uploaded), and
# Dataflow's workers can too (--sdk_container_image: this is a Beam SDK image).
#
#   docker build -t gcr.io/<project>/mtrank:0.1.0 .      (from the repository root)
#   docker push gcr.io/<project>/mtrank:0.1.0
#   kubeflow.image: gcr.io/<project>/mtrank:0.1.0        (in the configuration, or mtrank compile --image)
#
# Why not FROM gcr.io/tfx-oss-public/tfx:1.16.0: TFX 1.16 supports Python 3.9-3.10 and its image is
# Python 3.10, while the lock below is the set verified on Python 3.11 (cp311 wheels; installed with
# --ignore-requires-python). Beam's own Python 3.11 SDK image of the pinned Beam version (Debian 12, the
# glibc the lock was verified on) runs the same lock, so the image is what the tests ran.
FROM apache/beam_python3.11_sdk:2.60.0

# tf.Transform 1.16 and TFMA 0.47 need Keras 2 (tf_keras): set before any process imports TensorFlow.
ENV TF_USE_LEGACY_KERAS=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /mtrank

# The same pinned lock as `make install`: the TFX 1.16 stack installs only from the full pin, without
# resolving (--no-deps) and ignoring Python-version markers. Copied first so code changes reuse this layer.
COPY requirements/stack-py311.lock requirements/extras-py311.lock requirements/
RUN python -m pip install --no-cache-dir --no-deps --ignore-requires-python \
        -r requirements/stack-py311.lock -r requirements/extras-py311.lock

COPY setup.py ./
COPY mtrank/ mtrank/
COPY components/ components/
COPY pipeline/ pipeline/
COPY serving/ serving/
COPY schemas/ schemas/
COPY configs/ configs/
RUN python -m pip install --no-cache-dir --no-deps --no-build-isolation . \
    && python -c "import components.preprocessing, components.trainer, components.window, pipeline.pipeline"
