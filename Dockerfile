# Scoreboard: one app instance. Configure with SCOREBOARD_* variables (see README).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /srv/scoreboard

COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

COPY app ./app
COPY static ./static
COPY templates ./templates
COPY config.toml run.py ./

RUN useradd --system --uid 10001 scoreboard && mkdir -p data && chown scoreboard data
USER scoreboard

EXPOSE 8080
# Production: the server refuses to start without real secrets (SCOREBOARD_JWT_SECRET and
# SCOREBOARD_ACTION_SECRET, 32 bytes or more, different from each other).
ENV SCOREBOARD_ENV=production SCOREBOARD_HOST=0.0.0.0 SCOREBOARD_PORT=8080
HEALTHCHECK --interval=10s --timeout=2s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=2)"
CMD ["python", "run.py"]
