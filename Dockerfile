# lbipam operator image.
#   docker build -t lbipam:latest .
# Builder: install the package and its dependencies into a virtualenv at /opt/lbipam.
FROM python:3.12-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/lbipam
ENV PATH="/opt/lbipam/bin:${PATH}"

WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ ./operator/
RUN pip install --no-cache-dir .

# Final: only the virtualenv, run as an unprivileged user.
FROM python:3.12-slim

LABEL org.opencontainers.image.title="lbipam" \
      org.opencontainers.image.description="Assigns LoadBalancer Service addresses from IPPool resources" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH="/opt/lbipam/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

COPY --from=builder /opt/lbipam /opt/lbipam

USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["lbipam", "run"]
