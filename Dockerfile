# The remote executor with the datahub CLI and common source plugins.
#   docker build -t remote-executor .
#   docker build --build-arg DATAHUB_VERSION=1.7.0.17 \
#     --build-arg DATAHUB_PLUGINS=datahub-rest,postgres,snowflake -t remote-executor .
#   docker build --build-arg BUNDLED_VENVS=postgres@1.2.0.5,snowflake@1.3.1 -t remote-executor .
#     (prebuilds /opt/datahub/venvs/<plugin>-bundled, for requests whose version is "bundled")
# Only /tmp is written (the task directories, and HOME); run it with a read-only
# root filesystem and a volume or tmpfs on /tmp.

FROM python:3.11-slim-bookworm AS build
ARG DATAHUB_VERSION=1.7.0.17
ARG DATAHUB_PLUGINS=datahub-rest,postgres,mysql,mssql,snowflake,bigquery,redshift,athena,glue,s3,dbt,looker,lookml,tableau,powerbi,kafka
ARG BUNDLED_VENVS=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/executor
ENV PATH=/opt/executor/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir . "acryl-datahub[${DATAHUB_PLUGINS}]==${DATAHUB_VERSION}"
# Relocatable environments, built by uv and verified, one per plugin@version.
RUN mkdir -p /opt/datahub/venvs \
    && if [ -n "${BUNDLED_VENVS}" ]; then \
        UV_CACHE_DIR=/tmp/uv-cache EXECUTOR_BUNDLED_VENV_DIR=/opt/datahub/venvs \
        executor venvs build --bundled "${BUNDLED_VENVS}" \
        && rm -rf /tmp/uv-cache; \
    fi

FROM python:3.11-slim-bookworm
# tini as PID 1 with -g: a signal reaches the worker's whole process group, and the
# zombies of ingestion subprocesses are reaped.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini=0.19.0-1+b3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --no-log-init --no-create-home --uid 10001 --user-group executor
COPY --from=build /opt/executor /opt/executor
COPY --from=build /opt/datahub/venvs /opt/datahub/venvs
# HOME under /tmp too: the datahub CLI keeps its settings in ~/.datahub.
ENV PATH=/opt/executor/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp/home \
    EXECUTOR_WORK_DIR=/tmp/remote-executor \
    EXECUTOR_LOG_FORMAT=json \
    EXECUTOR_HEALTH_PORT=8080
USER 10001
WORKDIR /tmp
VOLUME ["/tmp"]
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["executor", "health"]
ENTRYPOINT ["tini", "-g", "--", "executor"]
CMD ["run"]
