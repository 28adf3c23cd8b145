# One image for every server component; compose picks the component with `command`.
# No PySide6 here: only the server extra is installed.
ARG PYTHON_IMAGE=python:3.12-slim
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so code changes reuse this layer: with no
# package folders yet, setuptools' find includes nothing and pip installs only the
# dependencies. Versions are pinned by the constraints file (hadolint cannot see that).
COPY pyproject.toml requirements/server-constraints.txt ./
# hadolint ignore=DL3013
RUN pip install -c server-constraints.txt ".[server]" \
    && pip uninstall -y chatroom

# The desktop client (client/) is not part of server images.
COPY chatroom/ chatroom/
COPY services/ services/
RUN pip install --no-deps . \
    && rm -rf build chatroom services chatroom.egg-info \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin chat

# The release this image was built from (scripts/image-tag.sh), also its tag.
ARG CHATROOM_VERSION=unknown
LABEL org.opencontainers.image.title="chatroom-server" \
      org.opencontainers.image.version="${CHATROOM_VERSION}"

USER 10001
# Every component reads CHAT_* settings; compose sets them per service.
CMD ["python", "-m", "services.tcp_edge"]
