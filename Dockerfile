# The notebook app. CPU by default:
#   docker build -t lab-notebook .
#   docker run -p 127.0.0.1:8501:8501 -v lab-notebook:/data lab-notebook
# With CUDA (needs the NVIDIA container toolkit on the host; run with --gpus all):
#   docker build --build-arg BASE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 -t lab-notebook:cuda .
# A team server (PostgreSQL, the app with sign-in, workers): compose.yaml beside this file.
# requirements.txt pins torch 2.14.1, whose Linux wheel carries its own CUDA libraries: the same install serves
# both bases; the CUDA base only adds the driver-facing runtime.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 DEBIAN_FRONTEND=noninteractive \
    LAB_NOTEBOOK_URL=sqlite:////data/notebook.db LAB_ARTIFACT_ROOT=/data/runs LAB_DATA_DIR=/data/datasets
# Python: the base's own when it has one with venv (python:3.11-slim), else the distribution's python3 (Ubuntu
# 24.04, the CUDA base, has 3.12 and no python3.11 package; every pin in requirements.txt has a cp312 wheel).
# fonts-noto-cjk (≈ 90 MB; Debian and Ubuntu both name it so): the journal is partly in Chinese, and a browser run
# inside the container (screenshots, the browser tests) draws it as boxes without a CJK font.
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl fonts-noto-cjk \
       $(python3 -c 'import ensurepip, venv' 2>/dev/null || echo python3 python3-venv) \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv \
    && /opt/venv/bin/python -c 'import sys; assert sys.version_info >= (3, 11), sys.version'
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /srv/notebook
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY app ./app
COPY engine ./engine
COPY lab_notes ./lab_notes
COPY data ./data
COPY .streamlit ./.streamlit
# the checkout as a package (its pins are installed above): a script the worker runs in its own folder imports
# lab_notes too
COPY pyproject.toml README.md ./
RUN pip install --no-deps -e .

# Ubuntu 24.04 (the CUDA base) ships a user `ubuntu` with uid 1000: it goes, so that the researcher keeps uid 1000
# (the owner files on a bind mount get) on both bases. /artifacts: where compose.yaml mounts the volume the app
# and its workers share; made here so that a new named volume takes this owner (else root's: unwritable).
RUN if id -u ubuntu >/dev/null 2>&1; then userdel --remove ubuntu; fi \
    && useradd --create-home --uid 1000 researcher && mkdir -p /data /artifacts && chown researcher /data /artifacts
USER researcher
VOLUME ["/data"]
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
  CMD curl --fail --silent http://127.0.0.1:8501/_stcore/health || exit 1
# Single-user: nobody signs in. Inside the container the server must bind every interface to be reachable at
# all; publish the port on the host's loopback (-p 127.0.0.1:8501:8501, as the README does). A team server runs
# the same image without --allow-anonymous, with sign-in (compose.yaml).
CMD ["python", "-m", "app", "--address", "0.0.0.0", "--port", "8501", "--allow-anonymous"]
