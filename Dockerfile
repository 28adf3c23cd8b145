# One image for every server component; compose picks the component with `command`.
# No PySide6 here: only the server extra is installed.
ARG PYTHON_IMAGE=python:3.12-slim
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so code changes reuse this layer.
# Versions are pinned by the constraints file (hadolint cannot see that).
COPY pyproject.toml requirements/server-constraints.txt ./
# hadolint ignore=DL3013
RUN mkdir -p chatroom/storage services/bus services/auth services/social services/media \
        services/tcp_edge client \
    && touch chatroom/__init__.py chatroom/storage/__init__.py services/__init__.py \
        services/bus/__init__.py services/auth/__init__.py services/social/__init__.py \
        services/media/__init__.py services/tcp_edge/__init__.py client/__init__.py \
    && pip install -c server-constraints.txt ".[server]" \
    && pip uninstall -y chatroom \
    && rm -rf chatroom services client

COPY chatroom/ chatroom/
COPY services/ services/
# The desktop client is not part of server images: an empty placeholder satisfies the
# package list in pyproject.toml.
RUN mkdir client && touch client/__init__.py \
    && pip install --no-deps . \
    && rm -rf build chatroom services client \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin chat

USER 10001
# Every component reads CHAT_* settings; compose sets them per service.
CMD ["python", "-m", "chatroom.services.tcp_edge"]
