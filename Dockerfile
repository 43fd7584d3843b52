# The notebook app. CPU by default:
#   docker build -t lab-notebook .
#   docker run -p 8501:8501 -v lab-notebook:/data lab-notebook
# With CUDA (needs the NVIDIA container toolkit on the host; run with --gpus all):
#   docker build --build-arg BASE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 -t lab-notebook:cuda .
# requirements.txt pins torch 2.14.1, whose Linux wheel carries its own CUDA libraries: the same install serves
# both bases; the CUDA base only adds the driver-facing runtime.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 DEBIAN_FRONTEND=noninteractive \
    LAB_NOTEBOOK_URL=sqlite:////data/notebook.db LAB_RUNS_DIR=/data/runs LAB_DATA_DIR=/data/datasets
# fonts-noto-cjk (≈ 90 MB; Debian and Ubuntu both name it so): the journal is partly in Chinese, and a browser run
# inside the container (screenshots, the browser tests) draws it as boxes without a CJK font.
RUN if ! command -v python3.11 >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends python3.11 python3.11-venv curl fonts-noto-cjk \
      && rm -rf /var/lib/apt/lists/*; \
    else apt-get update && apt-get install -y --no-install-recommends curl fonts-noto-cjk \
      && rm -rf /var/lib/apt/lists/*; fi \
    && python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /srv/notebook
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY app ./app
COPY engine ./engine
COPY lab_notes ./lab_notes
COPY data ./data
COPY .streamlit ./.streamlit

RUN useradd --create-home --uid 1000 researcher && mkdir -p /data && chown researcher /data
USER researcher
VOLUME ["/data"]
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
  CMD curl --fail --silent http://127.0.0.1:8501/_stcore/health || exit 1
# Inside the container the server must bind every interface to be reachable at all; publish the port on the
# host's loopback (-p 127.0.0.1:8501:8501, as the README does) unless the network is trusted.
CMD ["streamlit", "run", "app/streamlit_app.py", "--server.address=0.0.0.0", "--server.port=8501", \
     "--server.headless=true", "--browser.gatherUsageStats=false"]
